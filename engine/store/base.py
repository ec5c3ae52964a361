"""The state store interface every backend implements, and the records it hands out.

The store keeps what the service must not lose: a durable event queue with per-key FIFO ordering,
idempotency replies, poll cursors with their "seen keys", dead letters and poller leases. Both backends
(SQLite embedded, PostgreSQL shared by several replicas) pass the same behavioural suite.

Time: the store reads the clock only through its `clock` (UTC, injectable for tests) and passes the
instant into every statement, never the database's own `now()`. Replicas sharing PostgreSQL therefore
need synchronised clocks (NTP); choose lease and reservation lengths well above the skew.

Queue semantics
---------------
* `enqueue` (and `enqueue_new`, which tells whether the event was new) commits before it returns. A
  known `event_id` (queued, done or dead) is not enqueued twice;
  when both payloads carry a `fingerprint` (`engine.pipeline.sources.fingerprint`) that differs, it
  raises `EventConflict`.
* Jobs of one (pipeline, key) run one at a time in enqueue order: a job is claimable only when no earlier
  job of its key is unfinished (queued, leased or waiting for a retry) and no other job of its key holds
  a live lease. Ordering is defined between enqueues that follow one another; two enqueues racing for
  the same key are ordered by whichever commits first.
* `claim` leases jobs for `lease_seconds`. A lease that expires (crashed worker) makes the job claimable
  again; the reclaim is written into its history. Delivery is at-least-once: `complete`, `retry` and
  `dead_letter` raise `LeaseLostError` when another worker has claimed the job since. A claim whose
  caller is cancelled mid-call may leave jobs leased to it; they return when the lease expires.
* `retry` records the attempt and keeps the job at the head of its key until `delay` has passed.
  `dead_letter` moves the job to the dead letters with every attempt, unblocking its key.
* An operator lists queued events (`list_queued`) and drops them or makes them dead letters
  (`drop_queued`, `dead_letter_queued`): each checks, in the transaction that acts, that no worker
  holds a live lease of the event, so it never acts on one a claim took meanwhile.
* `replay_dead` queues a dead letter again with fresh delivery counts; its history keeps every earlier
  attempt and gains a replay entry, so a dead letter shows every attempt across its replays.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from engine.errors import StoreError
from engine.registry import Registry

Clock = Callable[[], datetime]

PruneKind = Literal["jobs", "seen", "replies"]


@dataclass(frozen=True)
class PolledItem:
    """One record read by a poller, for `Store.enqueue_polled`."""

    key: str
    version: str
    payload: dict[str, Any]
    event_id: str


@dataclass(frozen=True)
class Seen:
    """The version of a polled record that its pipeline read last, and when."""

    version: str
    at: datetime


def returned_id(event_id: str, last: Seen) -> str:
    """The event id of a record back at a version polled before (A, B, then A): its first id, marked
    with when the version it left was polled. The same on every re-read until it is marked seen."""
    return f"{event_id}@{as_utc(last.at):%Y%m%dT%H%M%S%fZ}"


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Attempt:
    """One entry of a job's history: a failed attempt (when, and what went wrong), or, with `replay`, the
    moment it was replayed from the dead letters."""

    at: datetime
    error: str
    replay: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"at": self.at.isoformat(), "error": self.error}
        if self.replay:
            data["replay"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        at = datetime.fromisoformat(data["at"])
        return cls(at=at, error=data["error"], replay=bool(data.get("replay")))

    @classmethod
    def replayed(cls, at: datetime, verify_first: bool) -> Attempt:
        """The history entry of a replay (its `error` says so for readers that know no `replay` flag)."""
        note = "; each write looks first" if verify_first else ""
        return cls(at, f"replayed from the dead letters{note}", replay=True)


@dataclass(frozen=True)
class Job:
    """A claimed event. `attempts` counts claims since it was queued or replayed, including this one;
    `history` the failures so far, replays included."""

    event_id: str
    pipeline: str
    key: str
    payload: dict[str, Any]
    attempts: int
    enqueued_at: datetime
    history: tuple[Attempt, ...] = ()
    worker_id: str = ""
    lease_until: datetime | None = None
    reclaimed: bool = False
    """True when an earlier worker's lease of this job expired: that worker may have been mid-run."""


@dataclass(frozen=True)
class DeadLetter:
    """A job given up on. `id` is its event id; `attempts` its whole history, oldest first: every failure,
    and a replay entry for each time it was replayed before."""

    id: str
    pipeline: str
    key: str
    payload: dict[str, Any]
    attempts: tuple[Attempt, ...]
    enqueued_at: datetime
    died_at: datetime
    error: str = field(default="")
    kind: str = field(default="error")
    """The failure's kind (`uncertain`, `business`, `transient`, ...): an uncertain one may have been
    applied, so replaying it runs the verify lookups first, or needs --force."""

    @property
    def failures(self) -> tuple[Attempt, ...]:
        """The failed attempts, without the replay entries."""
        return tuple(attempt for attempt in self.attempts if not attempt.replay)


@dataclass(frozen=True)
class QueuedEvent:
    """An unfinished event in the queue (waiting, retrying or leased), as an operator sees it."""

    id: str
    pipeline: str
    key: str
    enqueued_at: datetime
    available_at: datetime
    """When it may be claimed: later than now while a retry waits out its backoff."""
    attempts: int
    history: tuple[Attempt, ...] = ()
    leased_by: str = ""
    """The worker that claimed it last, while its lease lives or has expired unfinished."""
    lease_until: datetime | None = None
    leased: bool = False
    """A worker held a live lease of it when the store read it: it may be mid-run, even mid-write."""
    verify_first: bool = False
    """A replayed dead letter whose writes look first (an earlier delivery may have applied them): as
    a dead letter again it is uncertain. Read where the store acts on the event (`drop_queued`,
    `dead_letter_queued`); a listing leaves it False."""

    def state(self, now: datetime) -> str:
        """`leased` or `waiting`, with what a person acting on it needs to know."""
        until = self.lease_until.strftime(_WHEN) if self.lease_until else ""
        if self.leased:
            return f"leased by {self.leased_by} until {until}"
        if self.leased_by:
            return f"waiting (the lease of {self.leased_by} expired {until}, unfinished)"
        if self.available_at > now:
            return f"waiting (retry at {self.available_at.strftime(_WHEN)})"
        return "waiting"

    def held(self) -> str:
        """Why an operator's action on it was refused while a worker holds it."""
        until = self.lease_until.strftime(_WHEN) if self.lease_until else "?"
        return (
            f"{self.leased_by} holds it (leased until {until}) and may be writing it to the ERP; "
            "try again once its delivery has ended"
        )

    def uncertain_because(self) -> str:
        """Why the dead letter an operator makes of it is uncertain (it may have been applied); ""
        when it is not."""
        why = []
        if self.leased_by:
            why.append(f"the lease of {self.leased_by} expired unfinished")
        if self.verify_first:
            why.append("it is a replay whose writes look first, as an earlier delivery may have applied them")
        return "; ".join(why)


_WHEN = "%Y-%m-%d %H:%M:%S"


def dead_kind(payload: Mapping[str, Any], abandoned: bool, kind: str) -> str:
    """The kind of the dead letter an operator makes of a queued event: `uncertain` when a worker's
    lease of it expired unfinished (`abandoned`: the worker may have died mid-write, and a reclaim would
    have run it cautiously) or it is a replay whose writes look first; `kind` otherwise."""
    return "uncertain" if abandoned or payload.get("verify_first") else kind


@dataclass(frozen=True)
class StoredTrace:
    """A trace as the store keeps it: the columns searches filter on, and the JSON document."""

    id: str
    received: datetime
    pipeline: str
    event_id: str
    source: str
    outcome: str
    status: int | None
    duration: float
    version: str
    search: str
    """Lowercased text free-text search looks in (the event, its id, the reply, the error)."""
    document: str
    """The trace (see `engine.traces.document`) as JSON text."""


@dataclass(frozen=True)
class TraceSummary:
    """One line of a trace listing."""

    id: str
    received: datetime
    pipeline: str
    event_id: str
    source: str
    outcome: str
    status: int | None
    duration: float
    version: str

    COLUMNS = "id, received, pipeline, event_id, source, outcome, status, duration, version"
    """The columns a listing selects, in the order of the fields."""

    @classmethod
    def of(cls, row: Mapping[str, Any], received: datetime) -> TraceSummary:
        """A listing's row, with `received` read by its backend."""
        return cls(
            row["id"],
            received,
            row["pipeline"],
            row["event_id"],
            row["source"],
            row["outcome"],
            row["status"],
            row["duration"],
            row["version"],
        )


@dataclass(frozen=True)
class TraceQuery:
    """Which traces to list: every given criterion must hold. Newest first, at most `limit`."""

    pipeline: str | None = None
    outcome: str | None = None
    source: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    """A substring of the event (a work-order number, say), its id, the reply or the error."""
    limit: int = 50

    def conditions(self, placeholder: Callable[[str], str]) -> tuple[str, dict[str, Any]]:
        """The WHERE clause (`placeholder(name)` spells a parameter) and its parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column in ("pipeline", "outcome", "source", "event_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = {placeholder(column)}")
                params[column] = value
        if self.since is not None:
            clauses.append(f"received >= {placeholder('since')}")
            params["since"] = as_utc(self.since)
        if self.until is not None:
            clauses.append(f"received < {placeholder('until')}")
            params["until"] = as_utc(self.until)
        if self.text:
            escaped = self.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(f"search LIKE {placeholder('text')} ESCAPE '\\'")
            params["text"] = f"%{escaped}%"
        return (" AND ".join(clauses) or "1 = 1"), params


class Store(ABC):
    """Async state store. Obtain one with `engine.store.open_store(url)`, then `await migrate()` (the
    service) or `await check_schema()` (a command beside it, which creates and migrates nothing).

    A backend registers in `STORES` under its URL scheme and builds itself with `from_url`.
    """

    shared: bool = True
    """Whether another process opening the same URL reaches the same data (an in-memory database
    does not); the service's trace writer process needs it."""

    exclusive_writes: ClassVar[bool] = False
    """Whether one write transaction holds every other writer of the database back until it ends
    (SQLite's database lock), so that a slow writer delays all the others."""

    kind: ClassVar[str]

    latest_schema: ClassVar[int]
    """The schema version `migrate` brings the backend's tables to (its number of migrations)."""

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> Store:
        """A store for `url` (a StoreError says what is wrong with it); nothing connects yet."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or utc_now

    def now(self) -> datetime:
        """The store's single clock read (UTC)."""
        return self.clock()

    # -- lifecycle -------------------------------------------------------------------------------------

    @abstractmethod
    async def migrate(self) -> int:
        """Apply pending schema migrations (idempotent, safe concurrently); return the schema version."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The schema version the store is at (0: it has no mesbridge tables), read without creating or
        changing anything: a SQLite file that does not exist is a `StoreMissingError`, and stays absent."""

    async def check_schema(self) -> int:
        """Instead of `migrate`, for a command beside the service (`mesbridge dlq`, `mesbridge traces`):
        check that the store exists at `latest_schema` or later, creating and migrating nothing, and
        return its version.

        A CLI of another version than the service must not migrate a production store's schema under
        it: an older schema is a StoreError saying who migrates it. A newer one is used, as replicas of
        the previous version use it during a rolling update (migrations only add; docs/deploy.md)."""
        found, latest = await self.schema_version(), self.latest_schema
        if found == 0:
            raise StoreError(
                "it holds no mesbridge tables: `mesbridge run` creates them, a store command does not"
            )
        if found < latest:
            raise StoreError(
                f"its schema is at version {found}, this mesbridge's at {latest}: a store command does not "
                "migrate it (`mesbridge run` of this version does); or use the mesbridge the service runs"
            )
        return found

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads. The store is unusable afterwards."""

    # -- queue -----------------------------------------------------------------------------------------

    async def enqueue(
        self,
        pipeline: str,
        key: str,
        payload: dict[str, Any],
        *,
        event_id: str | None = None,
        not_before: datetime | None = None,
    ) -> str:
        """Durably add an event (see `enqueue_new`); return its event id, a new one when none is given."""
        event_id = event_id or uuid.uuid4().hex
        await self.enqueue_new(pipeline, key, payload, event_id=event_id, not_before=not_before)
        return event_id

    @abstractmethod
    async def enqueue_new(
        self,
        pipeline: str,
        key: str,
        payload: dict[str, Any],
        *,
        event_id: str,
        not_before: datetime | None = None,
    ) -> bool:
        """Durably add an event; False when its `event_id` is known (queued, done or dead), which is not
        added again: when its payload and this one both carry a `fingerprint` that differs, EventConflict
        (nothing added)."""

    @abstractmethod
    async def claim(
        self,
        worker_id: str,
        limit: int = 1,
        lease_seconds: float = 30.0,
        pipelines: Collection[str] | None = None,
    ) -> list[Job]:
        """Lease up to `limit` claimable jobs, oldest first, at most one per key; only jobs of
        `pipelines` when given (those the caller serves)."""

    @abstractmethod
    async def complete(self, job: Job, result: Any = None) -> None:
        """Mark a leased job done, keeping `result` (JSON) until pruned."""

    @abstractmethod
    async def retry(self, job: Job, error: str, delay: float) -> None:
        """Record a failed attempt; claimable again after `delay` seconds, still first of its key."""

    @abstractmethod
    async def renew(self, job: Job, lease_seconds: float) -> None:
        """Extend the lease of a job the caller holds to `lease_seconds` from now (a heartbeat);
        LeaseLostError when another worker holds it now."""

    @abstractmethod
    async def dead_letter(self, job: Job, error: str, kind: str = "error") -> None:
        """Record the final failure and move the job to the dead letters, unblocking its key."""

    @abstractmethod
    async def queue_depth(self) -> dict[str, int]:
        """Unfinished jobs (waiting, leased or retrying) per pipeline; pipelines with none are absent."""

    @abstractmethod
    async def list_queued(
        self, pipelines: Collection[str] | None = None, limit: int = 100
    ) -> list[QueuedEvent]:
        """Unfinished events in queue order (oldest first); only those of `pipelines` when given."""

    @abstractmethod
    async def drop_queued(self, id: str) -> QueuedEvent | None:
        """Delete a queued event for good, unless a worker holds a live lease of it; return it as found,
        or None when no event `id` is queued. When it is `leased`, nothing was done."""

    @abstractmethod
    async def dead_letter_queued(self, id: str, error: str, kind: str) -> QueuedEvent | None:
        """Move a queued event to the dead letters with `error` as its final attempt, unless a worker
        holds a live lease of it (then, as `drop_queued`, nothing is done); the dead letter's kind is
        `dead_kind`'s. A lease that expired unfinished is written into its history, as a reclaim does."""

    # -- dead letters ----------------------------------------------------------------------------------

    @abstractmethod
    async def list_dead(self, pipeline: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest death first, optionally of one pipeline."""

    @abstractmethod
    async def get_dead(self, id: str) -> DeadLetter | None:
        """One dead letter by id, or None."""

    @abstractmethod
    async def replay_dead(self, id: str, *, verify_first: bool = False) -> bool:
        """Atomically re-enqueue a dead letter (same event id, key, payload; fresh attempts) at the tail.

        Its history is kept, with `Attempt.replayed` added. The payload is marked `replayed`;
        `verify_first` marks it so that its delivery runs each write's verify lookup before sending (a
        replay of an uncertain event)."""

    @abstractmethod
    async def drop_dead(self, id: str) -> bool:
        """Delete a dead letter for good; False if there was none."""

    # -- idempotency -----------------------------------------------------------------------------------

    @abstractmethod
    async def get_reply(self, pipeline: str, idem_key: str) -> Any | None:
        """The stored reply for this idempotency key, or None (also while only reserved)."""

    @abstractmethod
    async def put_reply(self, pipeline: str, idem_key: str, reply: Any) -> Any:
        """Store `reply` (JSON, not None) unless one is stored already; return the stored one (first wins)."""

    @abstractmethod
    async def reserve(self, pipeline: str, idem_key: str, ttl: float, *, holder: str = "") -> bool:
        """Reserve the key for `ttl` seconds. False when a reply exists or another live reservation does."""

    @abstractmethod
    async def release(self, pipeline: str, idem_key: str, *, holder: str = "") -> bool:
        """Drop the holder's reservation (the request failed without a reply); stored replies stay."""

    async def reply_once(
        self,
        pipeline: str,
        idem_key: str,
        produce: Callable[[], Awaitable[Any]],
        *,
        ttl: float,
        poll: float = 0.05,
    ) -> Any:
        """Return the stored reply, or run `produce` once across all callers and store its result.

        Concurrent identical requests wait (polling every `poll` seconds) for the first one's reply. When
        the holder fails, its reservation is released and a waiter takes over; when it hangs, the
        reservation expires after `ttl`. Wrap in `asyncio.timeout()` for a deadline.
        """
        holder = uuid.uuid4().hex
        while True:
            stored = await self.get_reply(pipeline, idem_key)
            if stored is not None:
                return stored
            if await self.reserve(pipeline, idem_key, ttl, holder=holder):
                break
            await asyncio.sleep(poll)
        try:
            reply = await produce()
        except BaseException:
            await asyncio.shield(self.release(pipeline, idem_key, holder=holder))
            raise
        return await self.put_reply(pipeline, idem_key, reply)

    # -- poll cursors ----------------------------------------------------------------------------------

    @abstractmethod
    async def get_cursor(self, pipeline: str) -> str | None:
        """The poll cursor of a pipeline, or None before the first `set_cursor`."""

    @abstractmethod
    async def set_cursor(self, pipeline: str, value: str) -> None:
        """Durably store the poll cursor of a pipeline."""

    @abstractmethod
    async def mark_seen(self, pipeline: str, key: str, version: str) -> bool:
        """Record `version` as the last polled of record `key` (at the store's time, or just after the
        key's last one: a key's versions are ordered by when they were polled); True if it was not
        the last already (deliver it), False if it was."""

    @abstractmethod
    async def is_seen(self, pipeline: str, key: str, version: str) -> bool:
        """Whether (key, version) was ever marked seen for this pipeline."""

    @abstractmethod
    async def last_seen(self, pipeline: str, key: str) -> Seen | None:
        """The version of record `key` that `pipeline` polled last, and when; None before the first."""

    @abstractmethod
    async def newer_version(self, pipeline: str, key: str, version: str) -> str | None:
        """The latest version of record `key` that `pipeline` polled after `version`; None when none
        was, or `version` was never polled."""

    @abstractmethod
    async def enqueue_polled(self, pipeline: str, items: list[PolledItem]) -> int:
        """For each item whose version is not its key's last polled one: enqueue it and mark it seen;
        return how many were new. A record that comes back to a version polled before (A, B, then A
        again) is new again, under the event id `returned_id` gives.

        Each item's check, enqueue and mark commit in one transaction (SQLite: the whole batch;
        PostgreSQL: each item). Apart, a crash between the enqueue and the mark would leave the key's
        last version behind the queue: a record back at that version next round would be taken for
        unchanged, and the queue would end at the version it left.
        """

    # -- poller leases ---------------------------------------------------------------------------------

    @abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the named lease for `ttl` seconds; True if `holder` holds it now.

        A lease is a row with an expiry, not an advisory lock: session locks are tied to one connection,
        which a pool hands to other tasks and which dies silently with the network. An expired lease is
        taken over by the next caller; the holder renews well before `ttl` runs out.
        """

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if `holder` holds it; True if it did."""

    # -- traces ----------------------------------------------------------------------------------------

    @abstractmethod
    async def add_traces(self, traces: list[StoredTrace]) -> None:
        """Keep a batch of traces, in one transaction; a known id is not added again.

        Traces are a diagnosis, not a delivery: their commit does not wait for the disk (SQLite:
        `synchronous=NORMAL` for that transaction; PostgreSQL: `synchronous_commit = off`). The next
        durable commit makes them durable too; a crash in between can lose the last traces, never an
        event or a cursor."""

    @abstractmethod
    async def list_traces(self, query: TraceQuery) -> list[TraceSummary]:
        """The traces matching `query`, newest first."""

    @abstractmethod
    async def get_trace(self, id: str) -> dict[str, Any] | None:
        """One trace's document, or None."""

    @abstractmethod
    async def prune_traces(self, older_than: float, keep: int) -> int:
        """Delete traces received more than `older_than` seconds ago, and all but the newest `keep`;
        return how many."""

    # -- maintenance -----------------------------------------------------------------------------------

    @abstractmethod
    async def prune(self, kind: PruneKind, older_than: float, pipeline: str | None = None) -> int:
        """Delete old records; return how many.

        `jobs`: done jobs finished more than `older_than` seconds ago (their event ids can then be
        enqueued again). `seen`: seen keys marked before that. `replies`: stored replies created before
        that, and reservations that have expired.
        """

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


STORES: Registry[Store] = Registry("store")
"""Store backends by URL scheme; each module of `engine.store.backends` registers its own."""
