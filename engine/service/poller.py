"""Pollers: one task per poll pipeline reading new and changed records into the durable queue.

Each round, under a store lease so that only one replica polls a pipeline:

1. read the stored cursor and `read_changes` from it (moved back by `overlap`, which re-reads the edge);
2. for each record whose version is not the last one polled for its key (a record back at an earlier
   version is a change too): enqueue it (event id `<pipeline>:<key>:<version>`, queue
   key = the record's key, so the changes to one work order are delivered in order), then `mark_seen`
   (`Store.enqueue_polled`, in batches of `ENQUEUE_BATCH` records: one transaction each on SQLite, one
   per record on PostgreSQL);
3. once every record of the round is enqueued, store the latest cursor value.

A key read again at another version within one round is taken at its first read only (and warned of):
a record read twice while its listing changed is read again next round, and records that share a key
(a `key` that names no single record) are not delivered anew every round. Before each batch the
poller renews its lease, and a round that lost it stops: records read before another replica's round
are never queued after that round's.

A listing that changes while it is paged (`ListingChanged`, from the offset paginator) ends the round
early: what was read before the change is whole, its cursor is stored, and the next round begins at
once from there, so a record that moved is never jumped over by the cursor.

The queue is the durable hand-off: the cursor only moves past records the queue holds, and delivery
then follows with retries and dead letters. A record's enqueue and `mark_seen` commit together: a
crash never leaves it queued but not marked, which a record back at its last marked version next round
would leave at the version it left.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter

from engine.env import using
from engine.errors import LeaseLostError, ListingChanged, MesbridgeError
from engine.pipeline.sources.poll import PollSource, Schedule, later, read_changes
from engine.service.logging import event_context
from engine.store import PolledItem, Store

if TYPE_CHECKING:
    from engine.service.app import Service

log = logging.getLogger("mesbridge.poller")

__all__ = ["Poller", "Pollers", "next_delay"]

ENQUEUE_BATCH = 100
"""Records handed to the store at a time (`Store.enqueue_polled`): one transaction each on SQLite."""

LEASE_TTL = 30.0
"""Default seconds a poller lease lasts (setting `poll_lease`); the holder renews it every third of that."""


def next_delay(schedule: Schedule, now: datetime | None = None) -> float:
    """Seconds until the schedule's next run."""
    if schedule.cron:
        moment = now or datetime.now(UTC)
        following = croniter(schedule.cron, moment).get_next(datetime)
        return max(0.0, (following - moment).total_seconds())
    return float(schedule.every or 60.0)


def _encode_cursor(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _decode_cursor(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Poller:
    """Polls one pipeline on its schedule while holding its lease."""

    def __init__(self, service: Service, store: Store, name: str, holder: str) -> None:
        self.service = service
        self.store = store
        self.name = name
        self.holder = holder
        self.rounds = 0
        self.cut_short = False
        """Whether the last round ended at a change of the listing after moving the cursor: the next
        round is due at once."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._now = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"poller-{self.name}")

    @property
    def finished(self) -> bool:
        """True when the task ended (its pipeline left the config)."""
        return self._task is None or self._task.done()

    def trigger(self) -> None:
        """Poll now instead of at the next scheduled time."""
        self._now = True
        self._wake.set()

    def reschedule(self) -> None:
        """Read the schedule again (a reload may have changed it), without polling now."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.store.release_lease(f"poll:{self.name}", self.holder)
        except MesbridgeError:
            pass

    @property
    def lease_ttl(self) -> float:
        """Seconds the poller lease lasts: the `poll_lease` setting of the current generation."""
        return float(getattr(self.service.settings, "poll_lease", LEASE_TTL))

    def _source(self) -> PollSource | None:
        entry = self.service.generation.project.pipelines.get(self.name)
        if entry is None or not isinstance(entry.pipeline.source, PollSource):
            return None
        return entry.pipeline.source

    async def _loop(self) -> None:
        due = time.monotonic()  # first round at start
        scheduled = None
        while True:
            source = self._source()
            if source is None:
                return
            if scheduled is not None and source.schedule != scheduled:  # a reload changed the schedule:
                due = min(due, time.monotonic() + next_delay(source.schedule))  # a shorter one counts now
            scheduled = source.schedule
            ttl = self.lease_ttl
            try:
                holds = await self.store.acquire_lease(f"poll:{self.name}", self.holder, ttl)
            except MesbridgeError as exc:
                log.error("cannot renew the poller lease: %s", exc, extra={"pipeline": self.name})
                holds = False
            self.service.activity.lease(self.name, holds)
            if holds and time.monotonic() >= due:
                with event_context(self.name):
                    started = time.monotonic()
                    try:
                        await self.poll_once()
                    except MesbridgeError as exc:
                        log.error("poll failed, cursor kept: %s", exc)
                        self._failed(str(exc), started)
                    except Exception as exc:  # noqa: BLE001 - the poller must keep polling
                        log.exception("poll crashed, cursor kept")
                        self._failed(f"the poll crashed ({type(exc).__name__}); see the log", started)
                due = time.monotonic() + (0.0 if self.cut_short else next_delay(source.schedule))
            # A standby (lease held elsewhere) asks again every third of the lease, never in a tight loop.
            wait = max(0.0, min(due - time.monotonic(), ttl / 3)) if holds else ttl / 3
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
                if self._now:
                    self._now, due = False, time.monotonic()
            except TimeoutError:
                pass

    def _failed(self, message: str, started: float) -> None:
        activity = self.service.activity
        activity.polled(self.name, 0, 0, time.monotonic() - started, message)
        activity.failed(self.name, message, "poll")
        self.service.metrics.poll_rounds.labels(self.name, "failed").inc()

    async def poll_once(self) -> int:
        """One round: enqueue every new record, then advance the cursor; return how many were new."""
        started = time.monotonic()
        self.cut_short = False
        generation = self.service.generation
        entry = generation.project.pipelines[self.name]
        source = entry.pipeline.source
        assert isinstance(source, PollSource)
        variables = generation.project.variables.get(entry.binding, {})
        stored = _decode_cursor(await self.store.get_cursor(self.name))
        cursor = stored
        new = read = placed = 0
        batch: list[PolledItem] = []
        versions: dict[str, str] = {}  # the version each key was first read at this round
        repeated: dict[str, set[str]] = {}  # keys read again at another version, and those versions
        ttl = self.lease_ttl

        async def flush() -> None:
            nonlocal new
            if not batch:
                return
            # a round longer than the lease may have lost it: then another replica polls, and this
            # round's records, read before that one's, must not be queued after them
            if not await self.store.acquire_lease(f"poll:{self.name}", self.holder, ttl):
                raise LeaseLostError(
                    "the poller lease passed to another replica during the round; the round stops, "
                    "and that replica polls on from the stored cursor"
                )
            added = await self.store.enqueue_polled(self.name, batch)
            batch.clear()
            new += added
            if added:
                self.service.wake_workers()

        changed_at: ListingChanged | None = None
        with using(generation.environ):  # the generation's environment, as its connectors'
            async with generation.use():
                try:
                    async for polled in read_changes(source, generation.connectors, stored, variables):
                        if polled.cursor is not None:
                            cursor = later(cursor, polled.cursor)
                            placed += 1
                        read += 1
                        first = versions.setdefault(polled.key, polled.version)
                        if first != polled.version:  # the same key again, at another version
                            repeated.setdefault(polled.key, {first}).add(polled.version)
                            continue
                        batch.append(
                            PolledItem(
                                polled.key,
                                polled.version,
                                {"event": polled.record, "key": polled.key, "version": polled.version},
                                f"{self.name}:{polled.key}:{polled.version}",
                            )
                        )
                        if len(batch) >= ENQUEUE_BATCH:
                            await flush()
                except ListingChanged as changed:  # what was read is whole, and its cursor stands
                    changed_at = changed
                await flush()
        seen = read - new
        if repeated:
            shown = sorted(repeated)[:5]
            log.warning(
                "%d key(s) read at two versions in one round (%s): only the first read was taken. If "
                "this repeats every round, `key` does not name one record (a listing of lines, say); "
                "else the listing changed while it was paged, and the next round reads it again",
                len(repeated),
                ", ".join(f"{key!r} at {', '.join(sorted(repeated[key]))}" for key in shown),
            )
        if source.cursor is not None and read and not placed:
            log.warning(
                "%d record(s) read, none with a value at the cursor field %r: the cursor does not move, "
                "and every round reads them again",
                read,
                source.cursor.field.source,
            )
        if cursor is not None and cursor != stored:
            await self.store.set_cursor(self.name, _encode_cursor(cursor))
        if changed_at is not None:  # again at once, from where it got to; at its time if it got nowhere
            self.cut_short = cursor != stored
            log.info("%s; the round ends after %d record(s)", changed_at, read)
        self.rounds += 1
        self.service.activity.polled(self.name, new, seen, time.monotonic() - started)
        metrics = self.service.metrics
        metrics.polled.labels(self.name, "new").inc(new)
        metrics.polled.labels(self.name, "seen").inc(seen)
        metrics.poll_rounds.labels(self.name, "ok").inc()
        log.info("polled", extra={"new": new, "seen": seen, "cursor": cursor})
        return new


class Pollers:
    """The pollers of the current generation; `sync` starts and stops them after a reload."""

    def __init__(self, service: Service, store: Store) -> None:
        self.service = service
        self.store = store
        self.holder = f"{uuid.uuid4().hex[:12]}"
        self.running: dict[str, Poller] = {}

    def wanted(self) -> set[str]:
        return {
            name
            for name, entry in self.service.generation.project.pipelines.items()
            if isinstance(entry.pipeline.source, PollSource)
        }

    async def sync(self) -> None:
        """Start pollers for new poll pipelines, stop those of removed ones."""
        wanted = self.wanted()
        for name in sorted(set(self.running) - wanted):
            await self.running.pop(name).stop()
        for name in sorted(wanted & set(self.running)):
            if self.running[name].finished:
                await self.running.pop(name).stop()
            else:
                self.running[name].reschedule()
        for name in sorted(wanted - set(self.running)):
            poller = Poller(self.service, self.store, name, self.holder)
            self.running[name] = poller
            poller.start()

    async def stop(self) -> None:
        for poller in list(self.running.values()):
            await poller.stop()
        self.running.clear()
