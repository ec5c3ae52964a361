"""The shared store: PostgreSQL through psycopg 3 (async), safe for several replicas at once.

* Claims lock candidate rows with `FOR UPDATE OF j SKIP LOCKED`, so concurrent claimers never wait on
  nor return the same job; a candidate must be the oldest queued job of its key, so one key is never
  leased twice.
* Enqueues take a transaction-level advisory lock on a hash of (pipeline, key): ids of one key are then
  committed in `seq` order, and no claimer can observe a later job of a key before an earlier one.
* Migrations run under `pg_advisory_xact_lock`, so replicas starting together migrate once.
* Poller leases and idempotency reservations are rows with an expiry, never session advisory locks: a
  pooled connection serves many tasks, and a session lock would outlive or escape its owner.

Connections come from a small built-in pool (`?pool_size=N` in the URL, default 4): `psycopg_pool` is
not a dependency. Every operation is one short transaction on an autocommit connection.

JSON values come back exactly as they were stored, as on SQLite. `jsonb` alone would not give them
back so: it holds no NUL character (`"\u0000"`) and no lone surrogate, which an ERP's JSON can carry,
and it gives `1e+16` back as an integer and `-0.0` as `0.0`. Such a value is stored as its JSON text,
wrapped (`_json_text`). A text column (a key, an error message) holds no NUL either: there it is U+FFFD.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from engine.lazy import lazy_import

if TYPE_CHECKING:
    import psycopg
    from psycopg.types.json import Jsonb
else:
    psycopg = lazy_import("psycopg")  # its import costs ~0.2 s; `mesbridge check` never needs it

from engine.errors import EventConflict, LeaseLostError, StoreError
from engine.store.base import (
    STORES,
    Attempt,
    Clock,
    DeadLetter,
    Job,
    PolledItem,
    PruneKind,
    QueuedEvent,
    Seen,
    Store,
    StoredTrace,
    TraceQuery,
    TraceSummary,
    as_utc,
    dead_kind,
    returned_id,
)
from engine.store.migrations import POSTGRES, POSTGRES_SCHEMA_VERSION_TABLE, check_order
from engine.store.urls import hide_password, safe_url

# (classid, objid) of the migration lock; the two-int form never collides with one-bigint locks.
_MIGRATION_LOCK = (0x6D657362, 1)
_JOB_COLUMNS = (
    "event_id, seq, pipeline, key, payload, enqueued_at, attempts, history, leased_by, lease_until, "
    "finished_at, error, kind"
)
_QUEUED_COLUMNS = (
    "event_id, pipeline, key, enqueued_at, available_at, attempts, history, leased_by, lease_until"
)
_MARK_SEEN = (
    # at the store's time, or just after the key's last version (never a tie); an existing version is
    # updated only when another one is later: coming back to it is new, staying on it is not
    "INSERT INTO seen (pipeline, key, version, seen_at) VALUES (%(p)s, %(k)s, %(v)s, GREATEST("
    "%(now)s, (SELECT max(seen_at) + interval '1 microsecond' FROM seen "
    "WHERE pipeline = %(p)s AND key = %(k)s))) "
    "ON CONFLICT (pipeline, key, version) DO UPDATE SET seen_at = EXCLUDED.seen_at "
    "WHERE seen.seen_at < (SELECT max(later.seen_at) FROM seen AS later "
    "WHERE later.pipeline = EXCLUDED.pipeline AND later.key = EXCLUDED.key)"
)
_LAST_SEEN = (
    "SELECT version, seen_at FROM seen WHERE pipeline = %(p)s AND key = %(k)s "
    "ORDER BY seen_at DESC, version DESC LIMIT 1"
)
_PRUNE = {
    "jobs": ("jobs", "state = 'done' AND finished_at < %(cutoff)s"),
    "seen": ("seen", "seen_at < %(cutoff)s"),
    "replies": (
        "replies",
        "(state = 'done' AND created_at < %(cutoff)s) OR (state = 'pending' AND expires_at <= %(now)s)",
    ),
}

Row = dict[str, Any]


def _history(items: list[dict[str, str]]) -> tuple[Attempt, ...]:
    return tuple(Attempt.from_json(item) for item in items)


_WRAPPER = "$json"


def _json_text(value: Any) -> str:
    """The JSON sent for a jsonb value: as `json.dumps` writes it, or `{"$json": "<that text>"}` when
    jsonb would not give it back as it is (a float in it), or it has the wrapper's shape."""
    text = json.dumps(value)
    kept = type(value) is not dict or len(value) != 1 or _WRAPPER not in value
    return _wrapped(text, wrap=not (kept and _no_float(value)))


def _wrapped(text: str, *, wrap: bool = False) -> str:
    """JSON text as jsonb can hold it: wrapped when asked, or when it holds a NUL or a surrogate."""
    return json.dumps({_WRAPPER: text}) if wrap or "\\u0000" in text or "\\ud" in text else text


def _no_float(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
        elif isinstance(item, float):
            return False
    return True


def _json_value(data: bytes | str) -> Any:
    """A jsonb value read back: what `_json_text` was given."""
    value = json.loads(data)
    if type(value) is dict and len(value) == 1 and type(value.get(_WRAPPER)) is str:
        return json.loads(value[_WRAPPER])
    return value


@functools.cache
def _text_dumpers() -> tuple[type, ...]:
    """psycopg's dumpers of `str`, with each NUL character made U+FFFD (text columns hold none)."""
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    class Text(StrDumperUnknown):
        def dump(self, obj: str) -> Any:
            return super().dump(obj.replace("\x00", "\ufffd"))

    class Binary(StrBinaryDumper):
        def dump(self, obj: str) -> Any:
            return super().dump(obj.replace("\x00", "\ufffd"))

    return Text, Binary


def _adapt(conn: psycopg.AsyncConnection[Row]) -> None:
    """Make a new connection store NUL characters as the module docstring says, and read every
    timestamp back in UTC, whatever the server's or the session's time zone."""
    psycopg.types.json.set_json_dumps(_json_text, conn)
    psycopg.types.json.set_json_loads(_json_value, conn)
    for dumper in _text_dumpers():
        conn.adapters.register_dumper(str, dumper)
    for loader in _utc_loaders():
        conn.adapters.register_loader("timestamptz", loader)


@functools.cache
def _utc_loaders() -> tuple[type, ...]:
    """psycopg's loaders of `timestamptz`, giving UTC rather than the session's time zone (a server set
    to Asia/Jerusalem): the times an operator reads (`queue list`, `dlq list`) are UTC on every backend."""
    from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

    class Text(TimestamptzLoader):
        def load(self, data: Any) -> datetime:
            return super().load(data).astimezone(UTC)

    class Binary(TimestamptzBinaryLoader):
        def load(self, data: Any) -> datetime:
            return super().load(data).astimezone(UTC)

    return Text, Binary


def _jsonb(value: Any) -> Jsonb:
    return psycopg.types.json.Jsonb(value)


def _history_json(history: tuple[Attempt, ...]) -> Jsonb:
    """The attempts as jsonb, never wrapped (a reclaim appends to them in SQL): NUL made U+FFFD."""
    items = [{**a.to_json(), "error": a.error.replace("\x00", "\ufffd")} for a in history]
    return psycopg.types.json.Jsonb(items, dumps=json.dumps)


def _job(row: Row) -> Job:
    return Job(
        event_id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        payload=row["payload"],
        attempts=row["attempts"],
        enqueued_at=row["enqueued_at"],
        history=_history(row["history"]),
        worker_id=row["leased_by"] or "",
        lease_until=row["lease_until"],
    )


def _queued(row: Row, now: datetime) -> QueuedEvent:
    return QueuedEvent(
        id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        enqueued_at=row["enqueued_at"],
        available_at=row["available_at"],
        attempts=row["attempts"],
        history=_history(row["history"]),
        leased_by=row["leased_by"] or "",
        lease_until=row["lease_until"],
        leased=row["lease_until"] is not None and row["lease_until"] > now,
    )


def _dead(row: Row) -> DeadLetter:
    return DeadLetter(
        id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        payload=row["payload"],
        attempts=_history(row["history"]),
        enqueued_at=row["enqueued_at"],
        died_at=row["finished_at"],
        error=row["error"] or "",
        kind=row["kind"] or "error",
    )


def split_url(url: str) -> tuple[str, int]:
    """The libpq connection URL without our own `pool_size` parameter, and the pool size."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    size = 4
    kept = []
    for name, value in query:
        if name == "pool_size":
            if not value.strip().isdigit():
                raise StoreError(f"pool_size must be a whole number, not {value!r}")
            size = int(value)
        else:
            kept.append((name, value))
    if size < 1:
        raise StoreError("pool_size must be at least 1")
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote))), size


class _Pool:
    """At most `size` autocommit connections, opened on demand, reused, dropped when broken."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Row]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
        if self._closed:
            raise StoreError("store is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, row_factory=psycopg.rows.dict_row
                    )
                    _adapt(conn)
                except psycopg.Error as exc:  # also a URL libpq cannot parse (ProgrammingError)
                    reason = hide_password(str(exc), self._conninfo)  # libpq may quote the URL
                    raise StoreError(f"cannot connect to PostgreSQL: {reason}") from None
            try:
                yield conn
            finally:
                idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                if self._closed or conn.closed or not idle:
                    await conn.close()
                else:
                    self._idle.append(conn)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


@STORES.register(name="postgres")
@STORES.register(name="postgresql")
class PostgresStore(Store):
    """`Store` on a PostgreSQL database shared by any number of replicas."""

    latest_schema = len(POSTGRES)

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        super().__init__(clock)
        conninfo, size = split_url(url)
        self._pool = _Pool(conninfo, size)

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> PostgresStore:
        """postgresql://user@host:port/db (also postgres://); `?pool_size=N` (default 4), every other
        parameter goes to libpq."""
        try:  # reject malformed URLs here rather than at first use
            urlsplit(url)
        except ValueError as exc:
            raise StoreError(f"malformed PostgreSQL URL {safe_url(url)}: {exc}") from None
        return cls(url, clock=clock)

    async def close(self) -> None:
        await self._pool.close()

    async def _tx(self, fn: Callable[[psycopg.AsyncCursor[Row]], Any]) -> Any:
        """Run the coroutine function `fn(cursor)` in one transaction; server trouble is a StoreError."""
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                return await fn(cur)
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        except psycopg.DataError as exc:  # a value PostgreSQL cannot hold (a date out of its range)
            raise StoreError(f"PostgreSQL cannot store a value: {exc}") from exc

    async def _fetchone(self, sql: str, params: dict[str, Any]) -> Row | None:
        async def run(cur: psycopg.AsyncCursor[Row]) -> Row | None:
            await cur.execute(sql, params)
            return await cur.fetchone()

        result: Row | None = await self._tx(run)
        return result

    async def _fetchall(self, sql: str, params: dict[str, Any]) -> list[Row]:
        async def run(cur: psycopg.AsyncCursor[Row]) -> list[Row]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        result: list[Row] = await self._tx(run)
        return result

    async def _rowcount(self, sql: str, params: dict[str, Any]) -> int:
        async def run(cur: psycopg.AsyncCursor[Row]) -> int:
            await cur.execute(sql, params)
            return cur.rowcount

        result: int = await self._tx(run)
        return result

    # -- lifecycle -------------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async def read(cur: psycopg.AsyncCursor[Row]) -> int:
            await cur.execute("SELECT to_regclass('schema_version') IS NOT NULL AS present")
            row = await cur.fetchone()
            if not row or not row["present"]:
                return 0
            await cur.execute("SELECT coalesce(max(version), 0) AS version FROM schema_version")
            row = await cur.fetchone()
            return int(row["version"]) if row else 0

        result: int = await self._tx(read)
        return result

    async def migrate(self) -> int:
        check_order(POSTGRES)
        now = self.now()

        async def apply(cur: psycopg.AsyncCursor[Row]) -> int:
            await cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
            await cur.execute(POSTGRES_SCHEMA_VERSION_TABLE)
            await cur.execute("SELECT coalesce(max(version), 0) AS version FROM schema_version")
            row = await cur.fetchone()
            current = row["version"] if row else 0
            for migration in POSTGRES[current:]:
                for statement in migration.statements:
                    await cur.execute(statement)
                await cur.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.description, now),
                )
            return len(POSTGRES)

        result: int = await self._tx(apply)
        return result

    # -- queue -----------------------------------------------------------------------------------------

    async def enqueue_new(
        self,
        pipeline: str,
        key: str,
        payload: dict[str, Any],
        *,
        event_id: str,
        not_before: datetime | None = None,
    ) -> bool:
        now = self.now()
        params = {
            "event_id": event_id,
            "pipeline": pipeline,
            "key": key,
            "payload": _jsonb(payload),
            "now": now,
            "available": max(now, as_utc(not_before)) if not_before else now,
        }

        async def insert(cur: psycopg.AsyncCursor[Row]) -> bool:
            await cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%(pipeline)s || chr(1) || %(key)s, 0))",
                params,
            )
            await cur.execute(
                "INSERT INTO jobs (event_id, pipeline, key, payload, enqueued_at, available_at) "
                "VALUES (%(event_id)s, %(pipeline)s, %(key)s, %(payload)s, %(now)s, %(available)s) "
                "ON CONFLICT (event_id) DO NOTHING",
                params,
            )
            added = cur.rowcount == 1
            if not added and "fingerprint" in payload:
                await cur.execute(
                    "SELECT payload, enqueued_at FROM jobs WHERE event_id = %(event_id)s", params
                )
                row = await cur.fetchone()
                if (
                    row is not None
                    and row["payload"].get("fingerprint", payload["fingerprint"]) != payload["fingerprint"]
                ):
                    raise EventConflict(event_id, row["enqueued_at"])
            return added

        result: bool = await self._tx(insert)
        return result

    async def claim(
        self,
        worker_id: str,
        limit: int = 1,
        lease_seconds: float = 30.0,
        pipelines: Collection[str] | None = None,
    ) -> list[Job]:
        now = self.now()
        rows = await self._fetchall(
            "WITH candidates AS ("
            "  SELECT j.event_id, j.lease_until AS earlier_lease FROM jobs AS j"
            "  WHERE j.state = 'queued' AND j.available_at <= %(now)s"
            "  AND (j.lease_until IS NULL OR j.lease_until <= %(now)s)"
            "  AND (%(served)s::text[] IS NULL OR j.pipeline = ANY(%(served)s::text[]))"
            "  AND NOT EXISTS (SELECT 1 FROM jobs AS o WHERE o.state = 'queued'"
            "    AND o.pipeline = j.pipeline AND o.key = j.key AND o.event_id <> j.event_id"
            "    AND (o.seq < j.seq OR o.lease_until > %(now)s))"
            "  ORDER BY j.seq LIMIT %(limit)s"
            "  FOR UPDATE OF j SKIP LOCKED) "
            "UPDATE jobs AS j SET leased_by = %(worker)s, lease_until = %(until)s, attempts = j.attempts + 1,"
            "  history = CASE WHEN j.lease_until IS NULL THEN j.history"
            "    ELSE j.history || jsonb_build_array(jsonb_build_object("
            "      'at', %(now_iso)s::text, 'error', 'lease of ' || j.leased_by || ' expired')) END "
            "FROM candidates AS c WHERE j.event_id = c.event_id "
            "RETURNING j.*, c.earlier_lease IS NOT NULL AS reclaimed",
            {
                "now": now,
                "now_iso": as_utc(now).isoformat(),
                "limit": limit,
                "worker": worker_id,
                "until": now + timedelta(seconds=lease_seconds),
                "served": None if pipelines is None else sorted(pipelines),
            },
        )
        rows.sort(key=lambda row: row["seq"])
        return [replace(_job(row), reclaimed=row["reclaimed"]) for row in rows]

    async def _finish(self, job: Job, assignments: str, params: dict[str, Any]) -> None:
        """Update a job the caller still holds; raise LeaseLostError otherwise."""
        count = await self._rowcount(
            f"UPDATE jobs SET {assignments} "
            "WHERE event_id = %(event_id)s AND state = 'queued' AND leased_by = %(worker)s "
            "AND attempts = %(attempts)s",
            {**params, "event_id": job.event_id, "worker": job.worker_id, "attempts": job.attempts},
        )
        if count != 1:
            raise LeaseLostError(f"job {job.event_id} is no longer leased by {job.worker_id}")

    async def complete(self, job: Job, result: Any = None) -> None:
        await self._finish(
            job,
            "state = 'done', finished_at = %(now)s, result = %(result)s, "
            "leased_by = NULL, lease_until = NULL",
            {"now": self.now(), "result": _jsonb(result)},
        )

    async def retry(self, job: Job, error: str, delay: float) -> None:
        now = self.now()
        await self._finish(
            job,
            "available_at = %(available)s, history = %(history)s, leased_by = NULL, lease_until = NULL",
            {
                "available": now + timedelta(seconds=delay),
                "history": _history_json(job.history + (Attempt(now, error),)),
            },
        )

    async def renew(self, job: Job, lease_seconds: float) -> None:
        await self._finish(
            job, "lease_until = %(until)s", {"until": self.now() + timedelta(seconds=lease_seconds)}
        )

    async def dead_letter(self, job: Job, error: str, kind: str = "error") -> None:
        now = self.now()
        history = _history_json(job.history + (Attempt(now, error),))
        await self._finish(
            job,
            "state = 'dead', finished_at = %(now)s, history = %(history)s, error = %(error)s, "
            "kind = %(kind)s, leased_by = NULL, lease_until = NULL",
            {"now": now, "history": history, "error": error, "kind": kind},
        )

    async def queue_depth(self) -> dict[str, int]:
        rows = await self._fetchall(
            "SELECT pipeline, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY pipeline", {}
        )
        return {row["pipeline"]: row["n"] for row in rows}

    async def list_queued(
        self, pipelines: Collection[str] | None = None, limit: int = 100
    ) -> list[QueuedEvent]:
        now = self.now()
        rows = await self._fetchall(
            f"SELECT {_QUEUED_COLUMNS} FROM jobs WHERE state = 'queued' "
            "AND (%(only)s::text[] IS NULL OR pipeline = ANY(%(only)s::text[])) "
            "ORDER BY seq LIMIT %(limit)s",
            {"only": None if pipelines is None else sorted(pipelines), "limit": limit},
        )
        return [_queued(row, now) for row in rows]

    async def _take_queued(
        self, id: str, now: datetime, act: Callable[[psycopg.AsyncCursor[Row], Row, QueuedEvent], Any]
    ) -> QueuedEvent | None:
        """Lock queued event `id` and, unless it is leased at `now`, `act` on it, in one transaction.
        A claim that locked the row first is waited for and its lease seen; one that comes after
        skips the locked row (`SKIP LOCKED`) and finds it gone or dead."""

        async def take(cur: psycopg.AsyncCursor[Row]) -> QueuedEvent | None:
            await cur.execute(
                f"SELECT {_QUEUED_COLUMNS}, payload FROM jobs "
                "WHERE event_id = %(id)s AND state = 'queued' FOR UPDATE",
                {"id": id},
            )
            row = await cur.fetchone()
            if row is None:
                return None
            event = _queued(row, now)
            if row["payload"].get("verify_first"):
                event = replace(event, verify_first=True)
            if not event.leased:
                await act(cur, row, event)
            return event

        result: QueuedEvent | None = await self._tx(take)
        return result

    async def drop_queued(self, id: str) -> QueuedEvent | None:
        async def delete(cur: psycopg.AsyncCursor[Row], row: Row, event: QueuedEvent) -> None:
            await cur.execute("DELETE FROM jobs WHERE event_id = %(id)s", {"id": id})

        return await self._take_queued(id, self.now(), delete)

    async def dead_letter_queued(self, id: str, error: str, kind: str) -> QueuedEvent | None:
        now = self.now()

        async def move(cur: psycopg.AsyncCursor[Row], row: Row, event: QueuedEvent) -> None:
            abandoned = bool(event.leased_by)
            history = event.history
            if abandoned:
                history += (Attempt(now, f"lease of {event.leased_by} expired"),)
            await cur.execute(
                "UPDATE jobs SET state = 'dead', finished_at = %(now)s, history = %(history)s, "
                "error = %(error)s, kind = %(kind)s, leased_by = NULL, lease_until = NULL "
                "WHERE event_id = %(id)s",
                {
                    "id": id,
                    "now": now,
                    "history": _history_json(history + (Attempt(now, error),)),
                    "error": error,
                    "kind": dead_kind(row["payload"], abandoned, kind),
                },
            )

        return await self._take_queued(id, now, move)

    # -- dead letters ----------------------------------------------------------------------------------

    async def list_dead(self, pipeline: str | None = None, limit: int = 100) -> list[DeadLetter]:
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'dead' "
            "AND (%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s) "
            "ORDER BY finished_at, seq LIMIT %(limit)s",
            {"pipeline": pipeline, "limit": limit},
        )
        return [_dead(row) for row in rows]

    async def get_dead(self, id: str) -> DeadLetter | None:
        row = await self._fetchone(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'dead' AND event_id = %(id)s", {"id": id}
        )
        return _dead(row) if row else None

    async def replay_dead(self, id: str, *, verify_first: bool = False) -> bool:
        now = self.now()
        marker = _history_json((Attempt.replayed(now, verify_first),))
        params: dict[str, Any] = {"now": now, "id": id, "marker": marker}

        async def requeue(cur: psycopg.AsyncCursor[Row]) -> bool:
            await cur.execute(
                "SELECT payload FROM jobs WHERE event_id = %(id)s AND state = 'dead' FOR UPDATE", params
            )
            row = await cur.fetchone()
            if row is None:
                return False
            payload = {key: value for key, value in row["payload"].items() if key != "verify_first"}
            if verify_first:
                payload["verify_first"] = True
            payload["replayed"] = True
            params["payload"] = _jsonb(payload)
            await cur.execute(
                "UPDATE jobs SET state = 'queued', seq = nextval('jobs_seq'), enqueued_at = %(now)s, "
                "available_at = %(now)s, attempts = 0, history = history || %(marker)s, finished_at = NULL, "
                "error = NULL, kind = NULL, result = NULL, payload = %(payload)s WHERE event_id = %(id)s",
                params,
            )
            return True

        replayed: bool = await self._tx(requeue)
        return replayed

    async def drop_dead(self, id: str) -> bool:
        count = await self._rowcount(
            "DELETE FROM jobs WHERE event_id = %(id)s AND state = 'dead'", {"id": id}
        )
        return count == 1

    # -- idempotency -----------------------------------------------------------------------------------

    async def get_reply(self, pipeline: str, idem_key: str) -> Any | None:
        row = await self._fetchone(
            "SELECT reply FROM replies "
            "WHERE pipeline = %(pipeline)s AND idem_key = %(key)s AND state = 'done'",
            {"pipeline": pipeline, "key": idem_key},
        )
        return row["reply"] if row else None

    async def put_reply(self, pipeline: str, idem_key: str, reply: Any) -> Any:
        if reply is None:
            raise StoreError("a stored reply cannot be None")
        params = {"pipeline": pipeline, "key": idem_key, "reply": _jsonb(reply), "now": self.now()}

        async def upsert(cur: psycopg.AsyncCursor[Row]) -> Any:
            await cur.execute(
                "INSERT INTO replies (pipeline, idem_key, state, reply, created_at) "
                "VALUES (%(pipeline)s, %(key)s, 'done', %(reply)s, %(now)s) "
                "ON CONFLICT (pipeline, idem_key) DO UPDATE SET state = 'done', reply = EXCLUDED.reply, "
                "created_at = EXCLUDED.created_at, holder = NULL, expires_at = NULL "
                "WHERE replies.state = 'pending'",
                params,
            )
            await cur.execute(
                "SELECT reply FROM replies WHERE pipeline = %(pipeline)s AND idem_key = %(key)s", params
            )
            row = await cur.fetchone()
            return row["reply"] if row else None

        return await self._tx(upsert)

    async def reserve(self, pipeline: str, idem_key: str, ttl: float, *, holder: str = "") -> bool:
        now = self.now()
        row = await self._fetchone(
            "INSERT INTO replies (pipeline, idem_key, state, holder, expires_at, created_at) "
            "VALUES (%(pipeline)s, %(key)s, 'pending', %(holder)s, %(expires)s, %(now)s) "
            "ON CONFLICT (pipeline, idem_key) DO UPDATE SET holder = EXCLUDED.holder, "
            "expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at "
            "WHERE replies.state = 'pending' "
            "AND (replies.expires_at <= %(now)s OR replies.holder = EXCLUDED.holder) "
            "RETURNING 1 AS reserved",
            {
                "pipeline": pipeline,
                "key": idem_key,
                "holder": holder,
                "now": now,
                "expires": now + timedelta(seconds=ttl),
            },
        )
        return row is not None

    async def release(self, pipeline: str, idem_key: str, *, holder: str = "") -> bool:
        count = await self._rowcount(
            "DELETE FROM replies WHERE pipeline = %(pipeline)s AND idem_key = %(key)s "
            "AND state = 'pending' AND holder = %(holder)s",
            {"pipeline": pipeline, "key": idem_key, "holder": holder},
        )
        return count == 1

    # -- poll cursors ----------------------------------------------------------------------------------

    async def get_cursor(self, pipeline: str) -> str | None:
        row = await self._fetchone("SELECT value FROM cursors WHERE pipeline = %(p)s", {"p": pipeline})
        return row["value"] if row else None

    async def set_cursor(self, pipeline: str, value: str) -> None:
        await self._rowcount(
            "INSERT INTO cursors (pipeline, value, updated_at) VALUES (%(p)s, %(v)s, %(now)s) "
            "ON CONFLICT (pipeline) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            {"p": pipeline, "v": value, "now": self.now()},
        )

    async def mark_seen(self, pipeline: str, key: str, version: str) -> bool:
        count = await self._rowcount(_MARK_SEEN, {"p": pipeline, "k": key, "v": version, "now": self.now()})
        return count == 1

    async def last_seen(self, pipeline: str, key: str) -> Seen | None:
        row = await self._fetchone(_LAST_SEEN, {"p": pipeline, "k": key})
        return None if row is None else Seen(str(row["version"]), row["seen_at"])

    async def enqueue_polled(self, pipeline: str, items: list[PolledItem]) -> int:
        """Each item in one transaction of its own: seen check, enqueue and mark-seen. A crash between
        the enqueue and the mark would leave the key's last version behind the queue: a record back
        at that version next round would be taken for unchanged, and the queue would end at the
        version it left."""
        new = 0
        for item in items:
            if await self._tx(functools.partial(self._enqueue_polled_one, pipeline, item, self.now())):
                new += 1
        return new

    async def _enqueue_polled_one(
        self, pipeline: str, item: PolledItem, now: datetime, cur: psycopg.AsyncCursor[Row]
    ) -> bool:
        params = {"p": pipeline, "k": item.key, "v": item.version, "now": now}
        # the lock `enqueue_new` takes: jobs of a key commit in the order of their seq
        await cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%(p)s || chr(1) || %(k)s, 0))", params
        )
        await cur.execute(_LAST_SEEN, params)
        row = await cur.fetchone()
        last = None if row is None else Seen(str(row["version"]), row["seen_at"])
        if last is not None and last.version == item.version:
            return False
        event_id = item.event_id
        if last is not None:
            await cur.execute(
                "SELECT 1 AS seen FROM seen WHERE pipeline = %(p)s AND key = %(k)s AND version = %(v)s",
                params,
            )
            if await cur.fetchone() is not None:
                event_id = returned_id(event_id, last)
        await cur.execute(
            "INSERT INTO jobs (event_id, pipeline, key, payload, enqueued_at, available_at) "
            "VALUES (%(id)s, %(p)s, %(k)s, %(payload)s, %(now)s, %(now)s) ON CONFLICT (event_id) DO NOTHING",
            {**params, "id": event_id, "payload": _jsonb(item.payload)},
        )
        await cur.execute(_MARK_SEEN, params)
        return True

    async def newer_version(self, pipeline: str, key: str, version: str) -> str | None:
        row = await self._fetchone(
            "SELECT later.version FROM seen AS this JOIN seen AS later ON later.pipeline = this.pipeline "
            "AND later.key = this.key AND later.seen_at > this.seen_at "
            "WHERE this.pipeline = %(p)s AND this.key = %(k)s AND this.version = %(v)s "
            "ORDER BY later.seen_at DESC LIMIT 1",
            {"p": pipeline, "k": key, "v": version},
        )
        return str(row["version"]) if row else None

    async def is_seen(self, pipeline: str, key: str, version: str) -> bool:
        row = await self._fetchone(
            "SELECT 1 AS seen FROM seen WHERE pipeline = %(p)s AND key = %(k)s AND version = %(v)s",
            {"p": pipeline, "k": key, "v": version},
        )
        return row is not None

    # -- poller leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = self.now()
        row = await self._fetchone(
            "INSERT INTO leases (name, holder, expires_at) VALUES (%(name)s, %(holder)s, %(expires)s) "
            "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at "
            "WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= %(now)s "
            "RETURNING 1 AS acquired",
            {"name": name, "holder": holder, "now": now, "expires": now + timedelta(seconds=ttl)},
        )
        return row is not None

    async def release_lease(self, name: str, holder: str) -> bool:
        count = await self._rowcount(
            "DELETE FROM leases WHERE name = %(name)s AND holder = %(holder)s",
            {"name": name, "holder": holder},
        )
        return count == 1

    # -- traces ----------------------------------------------------------------------------------------

    async def add_traces(self, traces: list[StoredTrace]) -> None:
        rows = [
            {
                "id": t.id,
                "received": as_utc(t.received),
                "pipeline": t.pipeline,
                "event_id": t.event_id,
                "source": t.source,
                "outcome": t.outcome,
                "status": t.status,
                "duration": t.duration,
                "version": t.version,
                "search": t.search,
                "document": _wrapped(t.document),
            }
            for t in traces
        ]

        async def insert(cur: psycopg.AsyncCursor[Row]) -> None:
            await cur.execute("SET LOCAL synchronous_commit = off")
            await cur.executemany(
                "INSERT INTO traces (id, received, pipeline, event_id, source, outcome, status, duration, "
                "version, search, document) VALUES (%(id)s, %(received)s, %(pipeline)s, %(event_id)s, "
                "%(source)s, %(outcome)s, %(status)s, %(duration)s, %(version)s, %(search)s, "
                "%(document)s::jsonb) ON CONFLICT (id) DO NOTHING",
                rows,
            )

        if rows:
            await self._tx(insert)

    async def list_traces(self, query: TraceQuery) -> list[TraceSummary]:
        where, params = query.conditions(lambda name: f"%({name})s")
        params["limit"] = query.limit
        rows = await self._fetchall(
            f"SELECT {TraceSummary.COLUMNS} "
            f"FROM traces WHERE {where} ORDER BY received DESC, id DESC LIMIT %(limit)s",
            params,
        )
        return [TraceSummary.of(row, as_utc(row["received"])) for row in rows]

    async def get_trace(self, id: str) -> dict[str, Any] | None:
        row = await self._fetchone("SELECT document FROM traces WHERE id = %(id)s", {"id": id})
        return dict(row["document"]) if row else None

    async def prune_traces(self, older_than: float, keep: int) -> int:
        cutoff = self.now() - timedelta(seconds=older_than)

        async def delete(cur: psycopg.AsyncCursor[Row]) -> int:
            await cur.execute("DELETE FROM traces WHERE received < %(cutoff)s", {"cutoff": cutoff})
            old = cur.rowcount
            await cur.execute(
                "DELETE FROM traces WHERE id IN (SELECT id FROM traces ORDER BY received DESC, id DESC "
                "OFFSET %(keep)s)",
                {"keep": keep},
            )
            return old + cur.rowcount

        result: int = await self._tx(delete)
        return result

    # -- maintenance -----------------------------------------------------------------------------------

    async def prune(self, kind: PruneKind, older_than: float, pipeline: str | None = None) -> int:
        if kind not in _PRUNE:
            raise StoreError(f"cannot prune {kind!r}")
        table, predicate = _PRUNE[kind]
        now = self.now()
        return await self._rowcount(
            f"DELETE FROM {table} WHERE ({predicate}) "
            "AND (%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s)",
            {"cutoff": now - timedelta(seconds=older_than), "now": now, "pipeline": pipeline},
        )
