"""The embedded store: one SQLite file, WAL mode, driven from one dedicated thread.

Every call runs on a single-thread executor that owns the only connection, so any number of coroutines
may use the store at once; their statements simply queue. Writes use `BEGIN IMMEDIATE` (the write lock
is taken up front, so two processes sharing a file wait on `busy_timeout` instead of failing mid-way).
`synchronous=FULL` (default) fsyncs the WAL at every commit: an enqueued event survives `kill -9` and
power loss. `synchronous=NORMAL` (`?synchronous=normal` in the URL) survives `kill -9` only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from engine.errors import EventConflict, LeaseLostError, StoreError, StoreMissingError
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
from engine.store.migrations import SQLITE, SQLITE_SCHEMA_VERSION_TABLE, check_order

T = TypeVar("T")

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA"}
_PRUNE = {
    "jobs": ("jobs", "state = 'done' AND finished_at < :cutoff"),
    "seen": ("seen", "seen_at < :cutoff"),
    "replies": (
        "replies",
        "(state = 'done' AND created_at < :cutoff) OR (state = 'pending' AND expires_at <= :now)",
    ),
}
_JOB_COLUMNS = (
    "event_id, seq, pipeline, key, payload, enqueued_at, attempts, history, leased_by, lease_until, "
    "finished_at, error, kind"
)
_QUEUED_COLUMNS = (
    "event_id, pipeline, key, payload, enqueued_at, available_at, attempts, history, leased_by, lease_until"
)


def _ts(moment: datetime) -> str:
    """A timestamp as fixed-width UTC text, which sorts like time (`_TS_FORMAT`, written without
    strftime, which costs twice as much)."""
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


log = logging.getLogger("mesbridge.store")

CHECKPOINT_TRACES = 2_000
"""Traces the event loop writes between two checkpoints of the write-ahead log (a few MB of it)."""


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
    """`fn(conn)` in one transaction: committed, or rolled back when anything fails."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        value = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT keeps it open; some errors end it
            conn.execute("ROLLBACK")
        raise
    return value


def _insert_traces(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO traces (id, received, pipeline, event_id, source, outcome, status, duration, "
        "version, search, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        rows,
    )


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the database."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _dt(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


def _last_seen(conn: sqlite3.Connection, pipeline: str, key: str) -> Seen | None:
    row = conn.execute(
        "SELECT version, seen_at FROM seen WHERE pipeline = ? AND key = ? "
        "ORDER BY seen_at DESC, rowid DESC LIMIT 1",
        (pipeline, key),
    ).fetchone()
    return None if row is None else Seen(row[0], _dt(row[1]))


def _is_seen(conn: sqlite3.Connection, pipeline: str, key: str, version: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM seen WHERE pipeline = ? AND key = ? AND version = ?", (pipeline, key, version)
    ).fetchone()
    return row is not None


def _mark_seen(
    conn: sqlite3.Connection, pipeline: str, key: str, version: str, now: datetime, last: Seen | None
) -> None:
    """`version` the key's last polled one: at `now`, or just after the key's `last` (never a tie)."""
    at = now if last is None or last.at < now else last.at + timedelta(microseconds=1)
    conn.execute(
        "INSERT INTO seen (pipeline, key, version, seen_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (pipeline, key, version) DO UPDATE SET seen_at = excluded.seen_at",
        (pipeline, key, version, _ts(at)),
    )


def _history(text: str) -> tuple[Attempt, ...]:
    return tuple(Attempt.from_json(item) for item in json.loads(text))


def _history_json(history: tuple[Attempt, ...]) -> str:
    return json.dumps([attempt.to_json() for attempt in history])


def _job(row: sqlite3.Row) -> Job:
    return Job(
        event_id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        enqueued_at=_dt(row["enqueued_at"]),
        history=_history(row["history"]),
        worker_id=row["leased_by"] or "",
        lease_until=_dt(row["lease_until"]) if row["lease_until"] else None,
    )


def _queued(row: sqlite3.Row, now: str) -> QueuedEvent:
    """A queued job's row as an operator sees it; `now` as `_ts` writes it."""
    return QueuedEvent(
        id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        enqueued_at=_dt(row["enqueued_at"]),
        available_at=_dt(row["available_at"]),
        attempts=row["attempts"],
        history=_history(row["history"]),
        leased_by=row["leased_by"] or "",
        lease_until=_dt(row["lease_until"]) if row["lease_until"] else None,
        leased=row["lease_until"] is not None and row["lease_until"] > now,
    )


def _dead(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=row["event_id"],
        pipeline=row["pipeline"],
        key=row["key"],
        payload=json.loads(row["payload"]),
        attempts=_history(row["history"]),
        enqueued_at=_dt(row["enqueued_at"]),
        died_at=_dt(row["finished_at"]),
        error=row["error"] or "",
        kind=row["kind"] or "error",
    )


@STORES.register(name="sqlite")
class SQLiteStore(Store):
    """`Store` on a SQLite file (or `:memory:`)."""

    latest_schema = len(SQLITE)
    exclusive_writes = True

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "full",
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(clock)
        if synchronous.lower() not in _SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}")
        self.path = path
        self.shared = path != ":memory:"
        self._synchronous = _SYNCHRONOUS[synchronous.lower()]
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mesbridge-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._traces_conn: sqlite3.Connection | None = None
        self._traces_unchecked = 0
        self._closed = False

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> SQLiteStore:
        """sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:, with an
        optional `?synchronous=normal` (default full: every commit fsynced)."""
        if not url.startswith("sqlite:///"):
            raise StoreError(f"SQLite URL must look like sqlite:///path/to/file.db, not {url!r}")
        path, _, query = url[len("sqlite:///") :].partition("?")
        if not path:
            raise StoreError(f"SQLite URL has no path: {url!r}")
        options = dict(parse_qsl(query))
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise StoreError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
        return cls(path, clock=clock, synchronous=options.get("synchronous", "full"))

    # -- plumbing --------------------------------------------------------------------------------------

    def _connection(self, create: bool = True) -> sqlite3.Connection:
        """The connection, opened on first use (always on the store's own thread). Without `create`, a
        file that does not exist is a StoreMissingError and is not created, and its journal mode is
        left as it is (the service's `migrate` made it WAL)."""
        if self._conn is None:
            memory = self.path == ":memory:"
            target, uri = self.path, False
            if not create and not memory:
                where = os.path.abspath(self.path)
                if not os.path.exists(where):
                    raise StoreMissingError(where)
                target, uri = f"file:{quote(where)}?mode=rw", True  # never creates the file
            conn = sqlite3.connect(
                target, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
            conn.row_factory = sqlite3.Row
            try:  # a file that is not a database fails here, at its first statement
                if create and not memory:
                    self._wal(conn)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. SQLite answers "locked" at once, not after busy_timeout, while another
        process opening the same new file switches too: wait for it as busy_timeout would."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    async def _run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        durable: bool = True,
        create: bool = True,
    ) -> T:
        """Run `fn(conn)` in one transaction on the store's thread; a commit that is not `durable`
        does not wait for the disk (in WAL mode the next durable commit syncs it). Without `create`, a
        connection opened now does not create the file (see `_connection`)."""
        if self._closed:
            raise StoreError("store is closed")

        def call() -> T:
            try:
                conn = self._connection(create)
                relaxed = not durable and self._synchronous != "NORMAL"
                if relaxed:
                    conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    value = _transaction(conn, fn, write)
                finally:  # outside any transaction: SQLite refuses to change the level inside one
                    if relaxed:
                        conn.execute(f"PRAGMA synchronous={self._synchronous}")
            except sqlite3.DatabaseError as exc:  # also "file is not a database", "disk image is malformed"
                raise StoreError(f"SQLite {self.path}: {exc}") from exc
            return value

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        if self._traces_conn is not None:
            self._traces_conn.close()
            self._traces_conn = None

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone() is None:
                return 0
            return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

        return await self._run(read, write=False, create=False)

    async def migrate(self) -> int:
        check_order(SQLITE)
        now = _ts(self.now())

        def apply(conn: sqlite3.Connection) -> int:
            conn.execute(SQLITE_SCHEMA_VERSION_TABLE)
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for migration in SQLITE[current:]:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.description, now),
                )
            return len(SQLITE)

        return await self._run(apply)

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
        available = max(now, as_utc(not_before)) if not_before else now
        body = json.dumps(payload)

        def insert(conn: sqlite3.Connection) -> bool:
            added = conn.execute(
                "INSERT INTO jobs (event_id, seq, pipeline, key, payload, enqueued_at, available_at) "
                "VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM jobs), ?, ?, ?, ?, ?) "
                "ON CONFLICT (event_id) DO NOTHING",
                (event_id, pipeline, key, body, _ts(now), _ts(available)),
            ).rowcount
            if not added and "fingerprint" in payload:
                known, enqueued_at = conn.execute(
                    "SELECT json_extract(payload, '$.fingerprint'), enqueued_at FROM jobs WHERE event_id = ?",
                    (event_id,),
                ).fetchone()
                if known is not None and known != payload["fingerprint"]:
                    raise EventConflict(event_id, _dt(enqueued_at))
            return bool(added)

        return await self._run(insert)

    async def claim(
        self,
        worker_id: str,
        limit: int = 1,
        lease_seconds: float = 30.0,
        pipelines: Collection[str] | None = None,
    ) -> list[Job]:
        now = self.now()
        now_ts, until_ts = _ts(now), _ts(now + timedelta(seconds=lease_seconds))
        served = None if pipelines is None else json.dumps(sorted(pipelines))

        def lease(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs AS j "
                "WHERE j.state = 'queued' AND j.available_at <= :now "
                "AND (j.lease_until IS NULL OR j.lease_until <= :now) "
                "AND (:served IS NULL OR j.pipeline IN (SELECT value FROM json_each(:served))) "
                "AND NOT EXISTS (SELECT 1 FROM jobs AS o WHERE o.state = 'queued' "
                "  AND o.pipeline = j.pipeline AND o.key = j.key AND o.event_id <> j.event_id "
                "  AND (o.seq < j.seq OR o.lease_until > :now)) "
                "ORDER BY j.seq LIMIT :limit",
                {"now": now_ts, "limit": limit, "served": served},
            ).fetchall()
            jobs = []
            for row in rows:
                history = _history(row["history"])
                if row["lease_until"] is not None:
                    history += (Attempt(now, f"lease of {row['leased_by']} expired"),)
                conn.execute(
                    "UPDATE jobs SET leased_by = ?, lease_until = ?, attempts = attempts + 1, history = ? "
                    "WHERE event_id = ?",
                    (worker_id, until_ts, _history_json(history), row["event_id"]),
                )
                jobs.append(
                    replace(
                        _job(row),
                        attempts=row["attempts"] + 1,
                        history=history,
                        worker_id=worker_id,
                        lease_until=_dt(until_ts),
                        reclaimed=row["lease_until"] is not None,
                    )
                )
            return jobs

        return await self._run(lease)

    async def _finish(self, job: Job, assignments: str, params: tuple[Any, ...]) -> None:
        """Update a job the caller still holds; raise LeaseLostError otherwise."""

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"UPDATE jobs SET {assignments} "
                "WHERE event_id = ? AND state = 'queued' AND leased_by = ? AND attempts = ?",
                (*params, job.event_id, job.worker_id, job.attempts),
            )
            if cursor.rowcount != 1:
                raise LeaseLostError(f"job {job.event_id} is no longer leased by {job.worker_id}")

        await self._run(update)

    async def complete(self, job: Job, result: Any = None) -> None:
        await self._finish(
            job,
            "state = 'done', finished_at = ?, result = ?, leased_by = NULL, lease_until = NULL",
            (_ts(self.now()), json.dumps(result)),
        )

    async def retry(self, job: Job, error: str, delay: float) -> None:
        now = self.now()
        history = job.history + (Attempt(now, error),)
        await self._finish(
            job,
            "available_at = ?, history = ?, leased_by = NULL, lease_until = NULL",
            (_ts(now + timedelta(seconds=delay)), _history_json(history)),
        )

    async def renew(self, job: Job, lease_seconds: float) -> None:
        await self._finish(job, "lease_until = ?", (_ts(self.now() + timedelta(seconds=lease_seconds)),))

    async def dead_letter(self, job: Job, error: str, kind: str = "error") -> None:
        now = self.now()
        history = job.history + (Attempt(now, error),)
        await self._finish(
            job,
            "state = 'dead', finished_at = ?, history = ?, error = ?, kind = ?, leased_by = NULL, "
            "lease_until = NULL",
            (_ts(now), _history_json(history), error, kind),
        )

    async def queue_depth(self) -> dict[str, int]:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT pipeline, count(*) FROM jobs WHERE state = 'queued' GROUP BY pipeline"
            ).fetchall()
            return {pipeline: n for pipeline, n in rows}

        return await self._run(count, write=False)

    async def list_queued(
        self, pipelines: Collection[str] | None = None, limit: int = 100
    ) -> list[QueuedEvent]:
        now = _ts(self.now())
        params = {"limit": limit, "only": None if pipelines is None else json.dumps(sorted(pipelines))}

        def select(conn: sqlite3.Connection) -> list[QueuedEvent]:
            rows = conn.execute(
                f"SELECT {_QUEUED_COLUMNS} FROM jobs WHERE state = 'queued' "
                "AND (:only IS NULL OR pipeline IN (SELECT value FROM json_each(:only))) "
                "ORDER BY seq LIMIT :limit",
                params,
            ).fetchall()
            return [_queued(row, now) for row in rows]

        return await self._run(select, write=False)

    async def _take_queued(
        self, id: str, now: datetime, act: Callable[[sqlite3.Connection, sqlite3.Row, QueuedEvent], None]
    ) -> QueuedEvent | None:
        """Read queued event `id` and, unless it is leased at `now`, `act` on it, in one write
        transaction (which no claim interleaves: SQLite has one writer at a time)."""

        def take(conn: sqlite3.Connection) -> QueuedEvent | None:
            row = conn.execute(
                f"SELECT {_QUEUED_COLUMNS} FROM jobs WHERE event_id = ? AND state = 'queued'", (id,)
            ).fetchone()
            if row is None:
                return None
            event = _queued(row, _ts(now))
            if json.loads(row["payload"]).get("verify_first"):
                event = replace(event, verify_first=True)
            if not event.leased:
                act(conn, row, event)
            return event

        return await self._run(take)

    async def drop_queued(self, id: str) -> QueuedEvent | None:
        def delete(conn: sqlite3.Connection, row: sqlite3.Row, event: QueuedEvent) -> None:
            conn.execute("DELETE FROM jobs WHERE event_id = ?", (id,))

        return await self._take_queued(id, self.now(), delete)

    async def dead_letter_queued(self, id: str, error: str, kind: str) -> QueuedEvent | None:
        now = self.now()

        def move(conn: sqlite3.Connection, row: sqlite3.Row, event: QueuedEvent) -> None:
            abandoned = bool(event.leased_by)
            history = event.history
            if abandoned:
                history += (Attempt(now, f"lease of {event.leased_by} expired"),)
            conn.execute(
                "UPDATE jobs SET state = 'dead', finished_at = ?, history = ?, error = ?, kind = ?, "
                "leased_by = NULL, lease_until = NULL WHERE event_id = ?",
                (
                    _ts(now),
                    _history_json(history + (Attempt(now, error),)),
                    error,
                    dead_kind(json.loads(row["payload"]), abandoned, kind),
                    id,
                ),
            )

        return await self._take_queued(id, now, move)

    # -- dead letters ----------------------------------------------------------------------------------

    async def list_dead(self, pipeline: str | None = None, limit: int = 100) -> list[DeadLetter]:
        def select(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'dead' "
                "AND (:pipeline IS NULL OR pipeline = :pipeline) ORDER BY finished_at, seq LIMIT :limit",
                {"pipeline": pipeline, "limit": limit},
            ).fetchall()
            return [_dead(row) for row in rows]

        return await self._run(select, write=False)

    async def get_dead(self, id: str) -> DeadLetter | None:
        def select(conn: sqlite3.Connection) -> DeadLetter | None:
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'dead' AND event_id = ?", (id,)
            ).fetchone()
            return _dead(row) if row else None

        return await self._run(select, write=False)

    async def replay_dead(self, id: str, *, verify_first: bool = False) -> bool:
        moment = self.now()
        now = _ts(moment)
        marker = json.dumps(Attempt.replayed(moment, verify_first).to_json())

        def requeue(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'queued', seq = (SELECT max(seq) + 1 FROM jobs), "
                "enqueued_at = :now, available_at = :now, attempts = 0, "
                "history = json_insert(history, '$[#]', json(:marker)), "
                "finished_at = NULL, error = NULL, kind = NULL, result = NULL, "
                "payload = json_set(CASE WHEN :verify THEN json_set(payload, '$.verify_first', json('true')) "
                "ELSE json_remove(payload, '$.verify_first') END, '$.replayed', json('true')) "
                "WHERE event_id = :id AND state = 'dead'",
                {"now": now, "id": id, "verify": verify_first, "marker": marker},
            )
            return cursor.rowcount == 1

        return await self._run(requeue)

    async def drop_dead(self, id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM jobs WHERE event_id = ? AND state = 'dead'", (id,)).rowcount == 1

        return await self._run(delete)

    # -- idempotency -----------------------------------------------------------------------------------

    async def get_reply(self, pipeline: str, idem_key: str) -> Any | None:
        def select(conn: sqlite3.Connection) -> Any | None:
            row = conn.execute(
                "SELECT reply FROM replies WHERE pipeline = ? AND idem_key = ? AND state = 'done'",
                (pipeline, idem_key),
            ).fetchone()
            return json.loads(row[0]) if row else None

        return await self._run(select, write=False)

    async def put_reply(self, pipeline: str, idem_key: str, reply: Any) -> Any:
        if reply is None:
            raise StoreError("a stored reply cannot be None")
        body, now = json.dumps(reply), _ts(self.now())

        def upsert(conn: sqlite3.Connection) -> Any:
            conn.execute(
                "INSERT INTO replies (pipeline, idem_key, state, reply, created_at) "
                "VALUES (?, ?, 'done', ?, ?) "
                "ON CONFLICT (pipeline, idem_key) DO UPDATE SET state = 'done', reply = excluded.reply, "
                "created_at = excluded.created_at, holder = NULL, expires_at = NULL "
                "WHERE replies.state = 'pending'",
                (pipeline, idem_key, body, now),
            )
            row = conn.execute(
                "SELECT reply FROM replies WHERE pipeline = ? AND idem_key = ?", (pipeline, idem_key)
            ).fetchone()
            return json.loads(row[0])

        return await self._run(upsert)

    async def reserve(self, pipeline: str, idem_key: str, ttl: float, *, holder: str = "") -> bool:
        now = self.now()
        params = {
            "pipeline": pipeline,
            "key": idem_key,
            "holder": holder,
            "now": _ts(now),
            "expires": _ts(now + timedelta(seconds=ttl)),
        }

        def upsert(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "INSERT INTO replies (pipeline, idem_key, state, holder, expires_at, created_at) "
                "VALUES (:pipeline, :key, 'pending', :holder, :expires, :now) "
                "ON CONFLICT (pipeline, idem_key) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at, created_at = excluded.created_at "
                "WHERE replies.state = 'pending' "
                "AND (replies.expires_at <= :now OR replies.holder = excluded.holder) "
                "RETURNING 1",
                params,
            ).fetchone()
            return row is not None

        return await self._run(upsert)

    async def release(self, pipeline: str, idem_key: str, *, holder: str = "") -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM replies "
                "WHERE pipeline = ? AND idem_key = ? AND state = 'pending' AND holder = ?",
                (pipeline, idem_key, holder),
            )
            return cursor.rowcount == 1

        return await self._run(delete)

    # -- poll cursors ----------------------------------------------------------------------------------

    async def get_cursor(self, pipeline: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM cursors WHERE pipeline = ?", (pipeline,)).fetchone()
            return row[0] if row else None

        return await self._run(select, write=False)

    async def set_cursor(self, pipeline: str, value: str) -> None:
        now = _ts(self.now())

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO cursors (pipeline, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (pipeline) DO UPDATE "
                "SET value = excluded.value, updated_at = excluded.updated_at",
                (pipeline, value, now),
            )

        await self._run(upsert)

    async def mark_seen(self, pipeline: str, key: str, version: str) -> bool:
        now = as_utc(self.now())

        def mark(conn: sqlite3.Connection) -> bool:
            last = _last_seen(conn, pipeline, key)
            if last is not None and last.version == version:
                return False
            _mark_seen(conn, pipeline, key, version, now, last)
            return True

        return await self._run(mark)

    async def enqueue_polled(self, pipeline: str, items: list[PolledItem]) -> int:
        """The batch in one transaction: seen check, enqueue and mark-seen of every item."""
        if not items:
            return 0
        now = as_utc(self.now())
        stamp = _ts(now)
        rows = [(item, json.dumps(item.payload)) for item in items]

        def insert(conn: sqlite3.Connection) -> int:
            new = 0
            for item, body in rows:
                last = _last_seen(conn, pipeline, item.key)
                if last is not None and last.version == item.version:
                    continue
                event_id = item.event_id
                if last is not None and _is_seen(conn, pipeline, item.key, item.version):
                    event_id = returned_id(event_id, last)
                conn.execute(
                    "INSERT INTO jobs (event_id, seq, pipeline, key, payload, enqueued_at, available_at) "
                    "VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM jobs), ?, ?, ?, ?, ?) "
                    "ON CONFLICT (event_id) DO NOTHING",
                    (event_id, pipeline, item.key, body, stamp, stamp),
                )
                _mark_seen(conn, pipeline, item.key, item.version, now, last)
                new += 1
            return new

        return await self._run(insert)

    async def newer_version(self, pipeline: str, key: str, version: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT later.version FROM seen AS this JOIN seen AS later ON later.pipeline = this.pipeline "
                "AND later.key = this.key AND later.seen_at > this.seen_at "
                "WHERE this.pipeline = ? AND this.key = ? AND this.version = ? "
                "ORDER BY later.seen_at DESC LIMIT 1",
                (pipeline, key, version),
            ).fetchone()
            return str(row[0]) if row else None

        return await self._run(select, write=False)

    async def is_seen(self, pipeline: str, key: str, version: str) -> bool:
        return await self._run(lambda conn: _is_seen(conn, pipeline, key, version), write=False)

    async def last_seen(self, pipeline: str, key: str) -> Seen | None:
        return await self._run(lambda conn: _last_seen(conn, pipeline, key), write=False)

    # -- poller leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = self.now()
        params = {
            "name": name,
            "holder": holder,
            "now": _ts(now),
            "expires": _ts(now + timedelta(seconds=ttl)),
        }

        def upsert(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :expires) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= :now "
                "RETURNING 1",
                params,
            ).fetchone()
            return row is not None

        return await self._run(upsert)

    async def release_lease(self, name: str, holder: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).rowcount == 1
            )

        return await self._run(delete)

    # -- traces ----------------------------------------------------------------------------------------

    async def add_traces(self, traces: list[StoredTrace]) -> None:
        rows = [
            (
                t.id,
                _ts(t.received),
                t.pipeline,
                t.event_id,
                t.source,
                t.outcome,
                t.status,
                t.duration,
                t.version,
                t.search,
                t.document,
            )
            for t in traces
        ]
        if not rows:
            return
        if self._closed:
            raise StoreError("store is closed")
        if self._insert_traces_now(rows):
            self._traces_unchecked += len(rows)
            if self._traces_unchecked >= CHECKPOINT_TRACES:
                self._traces_unchecked = 0
                await self._checkpoint()
            return
        await self._run(lambda conn: _insert_traces(conn, rows), durable=False)

    async def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database on the store's thread (the loop's trace
        connection never does: a checkpoint syncs the disk)."""

        def checkpoint() -> None:
            try:
                self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.DatabaseError as exc:
                log.warning("SQLite %s: checkpoint failed: %s", self.path, exc)

        await asyncio.get_running_loop().run_in_executor(self._executor, checkpoint)

    def _insert_traces_now(self, rows: list[tuple[Any, ...]]) -> bool:
        """Write a batch of traces on the caller's thread, if the database is free at once.

        A batch is a millisecond of SQLite's time. Handed to the store's thread instead, it cost the
        event loop far more (measured: about 55 µs of CPU per trace in the service) in the two
        threads' contention for Python's lock. So the loop writes it itself, through a connection of
        its own that never waits: a database another writer holds (`SQLITE_BUSY`) sends the batch to
        the store's thread, which waits its turn. An in-memory database has no second connection.
        """
        if self.path == ":memory:":
            return False
        try:
            if self._traces_conn is None:
                conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA synchronous=NORMAL")  # traces only: the next durable commit syncs
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the store's thread checkpoints (`_checkpoint`)
                self._traces_conn = conn
            _transaction(self._traces_conn, lambda conn: _insert_traces(conn, rows))
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                return False
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        return True

    async def list_traces(self, query: TraceQuery) -> list[TraceSummary]:
        where, params = query.conditions(lambda name: f":{name}")
        params = {name: _ts(v) if isinstance(v, datetime) else v for name, v in params.items()}
        params["limit"] = query.limit

        def select(conn: sqlite3.Connection) -> list[TraceSummary]:
            rows = conn.execute(
                f"SELECT {TraceSummary.COLUMNS} "
                f"FROM traces WHERE {where} ORDER BY received DESC, id DESC LIMIT :limit",
                params,
            ).fetchall()
            return [TraceSummary.of(row, _dt(row["received"])) for row in rows]

        return await self._run(select, write=False)

    async def get_trace(self, id: str) -> dict[str, Any] | None:
        def select(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT document FROM traces WHERE id = ?", (id,)).fetchone()
            return json.loads(row["document"]) if row else None

        return await self._run(select, write=False)

    async def prune_traces(self, older_than: float, keep: int) -> int:
        cutoff = _ts(self.now() - timedelta(seconds=older_than))

        def delete(conn: sqlite3.Connection) -> int:
            old = conn.execute("DELETE FROM traces WHERE received < ?", (cutoff,)).rowcount
            extra = conn.execute(
                "DELETE FROM traces WHERE id IN (SELECT id FROM traces ORDER BY received DESC, id DESC "
                "LIMIT -1 OFFSET ?)",
                (keep,),
            ).rowcount
            return old + extra

        return await self._run(delete)

    # -- maintenance -----------------------------------------------------------------------------------

    async def prune(self, kind: PruneKind, older_than: float, pipeline: str | None = None) -> int:
        now = self.now()
        params = {"cutoff": _ts(now - timedelta(seconds=older_than)), "now": _ts(now), "pipeline": pipeline}
        if kind not in _PRUNE:
            raise StoreError(f"cannot prune {kind!r}")
        table, predicate = _PRUNE[kind]
        sql = f"DELETE FROM {table} WHERE ({predicate}) AND (:pipeline IS NULL OR pipeline = :pipeline)"

        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        return await self._run(delete)
