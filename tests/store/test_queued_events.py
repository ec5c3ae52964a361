"""Queued events as an operator acts on them (`mesbridge queue`), on every backend: listed in queue order,
dropped or moved to the dead letters, never while a worker holds a live lease, also when a claim races."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from engine.cli import main
from engine.errors import LeaseLostError
from engine.store import Store, open_store

if TYPE_CHECKING:
    from tests.store.conftest import FakeClock


async def test_list_shows_unfinished_events_in_queue_order(store: Store, clock: FakeClock) -> None:
    for n, (pipeline, key) in enumerate([("gone", "A"), ("orders", "B"), ("gone", "C"), ("gone", "D")]):
        await store.enqueue(pipeline, key, {"n": n}, event_id=f"e{n}")
    done, leased, retried = await store.claim("w1", limit=3, lease_seconds=30, pipelines={"gone", "orders"})
    await store.complete(done)
    await store.retry(retried, "ERP unreachable", delay=60)
    assert (leased.event_id, retried.event_id) == ("e1", "e2")

    listed = await store.list_queued()
    assert [event.id for event in listed] == ["e1", "e2", "e3"]
    lease, retry, waiting = listed
    assert (lease.pipeline, lease.key, lease.attempts, lease.leased, lease.leased_by) == (
        "orders",
        "B",
        1,
        True,
        "w1",
    )
    assert lease.lease_until == clock() + timedelta(seconds=30)
    assert (retry.leased, retry.leased_by, retry.attempts) == (False, "", 1)
    assert [a.error for a in retry.history] == ["ERP unreachable"]
    assert (retry.available_at - clock()).total_seconds() == pytest.approx(60)
    assert (waiting.leased, waiting.attempts, waiting.history, waiting.available_at) == (
        False,
        0,
        (),
        waiting.enqueued_at,
    )
    assert [e.id for e in await store.list_queued({"gone"})] == ["e2", "e3"]
    assert [e.id for e in await store.list_queued({"gone", "orders"}, limit=1)] == ["e1"]
    assert await store.list_queued(set()) == []


async def test_drop_deletes_a_waiting_event_and_unblocks_its_key(store: Store) -> None:
    await store.enqueue("gone", "A", {"n": 1}, event_id="e1")
    await store.enqueue("gone", "A", {"n": 2}, event_id="e2")
    dropped = await store.drop_queued("e1")
    assert dropped is not None and (dropped.id, dropped.pipeline, dropped.key, dropped.leased) == (
        "e1",
        "gone",
        "A",
        False,
    )
    assert [e.id for e in await store.list_queued()] == ["e2"]
    assert [job.event_id for job in await store.claim("w", limit=5)] == ["e2"]
    assert await store.drop_queued("e1") is None


async def test_only_queued_events_are_dropped_or_moved(store: Store) -> None:
    await store.enqueue("p", "A", {}, event_id="done")
    await store.enqueue("p", "B", {}, event_id="dead")
    finished, died = await store.claim("w", limit=2)
    await store.complete(finished)
    await store.dead_letter(died, "refused", "business")
    for event_id in ("done", "dead", "unknown"):
        assert await store.drop_queued(event_id) is None
        assert await store.dead_letter_queued(event_id, "x", "operator") is None
    dead = await store.get_dead("dead")
    assert dead is not None and (dead.kind, dead.error) == ("business", "refused")


async def test_an_event_a_worker_holds_is_neither_dropped_nor_moved(store: Store, clock: FakeClock) -> None:
    await store.enqueue("gone", "A", {"n": 1}, event_id="e1")
    [job] = await store.claim("w1", lease_seconds=30)
    clock.advance(29)
    for found in (await store.drop_queued("e1"), await store.dead_letter_queued("e1", "x", "operator")):
        assert found is not None and found.leased and found.leased_by == "w1"
    assert await store.get_dead("e1") is None
    await store.complete(job)  # the worker still holds it: nothing was done under it


async def test_an_expired_lease_is_dropped_and_its_worker_loses_it(store: Store, clock: FakeClock) -> None:
    await store.enqueue("gone", "A", {"n": 1}, event_id="e1")
    [job] = await store.claim("w1", lease_seconds=30)
    clock.advance(30)
    dropped = await store.drop_queued("e1")
    assert dropped is not None and not dropped.leased and dropped.leased_by == "w1"
    with pytest.raises(LeaseLostError):
        await store.complete(job)
    assert await store.list_queued() == []


async def test_dead_letter_queued_keeps_the_history_and_the_reason(store: Store, clock: FakeClock) -> None:
    await store.enqueue("gone", "A", {"event": {"n": 1}}, event_id="e1")
    await store.enqueue("gone", "A", {"event": {"n": 2}}, event_id="e2")
    [job] = await store.claim("w1")
    await store.retry(job, "ERP unreachable", delay=60)
    moved = await store.dead_letter_queued("e1", "pipeline removed (by ops)", "operator")
    assert moved is not None and moved.id == "e1" and not moved.leased
    dead = await store.get_dead("e1")
    assert dead is not None
    assert (dead.pipeline, dead.key, dead.kind, dead.error, dead.payload) == (
        "gone",
        "A",
        "operator",
        "pipeline removed (by ops)",
        {"event": {"n": 1}},
    )
    assert [a.error for a in dead.attempts] == ["ERP unreachable", "pipeline removed (by ops)"]
    assert dead.died_at == clock()
    assert [job.event_id for job in await store.claim("w2", limit=5)] == ["e2"]  # its key flows on
    assert await store.replay_dead("e1")  # and `mesbridge dlq` acts on it as on any dead letter
    assert [e.id for e in await store.list_queued()] == ["e2", "e1"]


async def test_an_abandoned_or_verifying_event_becomes_an_uncertain_dead_letter(
    store: Store, clock: FakeClock
) -> None:
    """A worker whose lease expired may have died mid-write, and a replay marked to look first must
    still look first: either one's dead letter is uncertain, so a replay verifies (or needs --force)."""
    await store.enqueue("gone", "A", {"n": 1}, event_id="abandoned")
    await store.enqueue("gone", "B", {"n": 2}, event_id="verifying")
    jobs = await store.claim("w1", limit=2, lease_seconds=10)
    await store.dead_letter(jobs[1], "timed out", "uncertain")
    assert await store.replay_dead("verifying", verify_first=True)
    clock.advance(10)
    assert await store.dead_letter_queued("abandoned", "removed", "operator") is not None
    assert await store.dead_letter_queued("verifying", "removed", "operator") is not None
    abandoned, verifying = await store.get_dead("abandoned"), await store.get_dead("verifying")
    assert abandoned is not None and verifying is not None
    assert (abandoned.kind, [a.error for a in abandoned.attempts]) == (
        "uncertain",
        ["lease of w1 expired", "removed"],
    )
    assert (verifying.kind, [a.error for a in verifying.attempts]) == (
        "uncertain",
        ["timed out", "replayed from the dead letters; each write looks first", "removed"],
    )  # the history a replay keeps, then the operator's removal


# -- a claim racing the operator ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["drop", "dead"])
async def test_a_racing_claim_and_operator_never_both_get_an_event(
    action: str, store: Store, make_store: Callable[..., Store]
) -> None:
    """A worker claims while the operator drops (or dead-letters) the same events from another store
    (PostgreSQL: another pool; SQLite: another connection): each event is claimed or acted on, never
    both, and the claimed ones stay the worker's to complete."""
    total = 60
    ids = [await store.enqueue("gone", f"K{n}", {"n": n}, event_id=f"e{n}") for n in range(total)]
    operator = make_store()
    claimed: list[str] = []
    started = asyncio.Event()  # the operator starts once the worker has claimed: the race runs both ways

    async def worker() -> None:
        while len(claimed) < total:
            jobs = await store.claim("w1", limit=2, lease_seconds=60)
            claimed.extend(job.event_id for job in jobs)
            started.set()
            await asyncio.sleep(0.002)  # delivering them, leased
            for job in jobs:
                await store.complete(job)
            if not jobs and not await store.list_queued(limit=1):
                return

    async def act(event_id: str) -> tuple[str, str]:
        found = await (
            operator.drop_queued(event_id)
            if action == "drop"
            else operator.dead_letter_queued(event_id, "removed", "operator")
        )
        return event_id, "gone" if found is None else "leased" if found.leased else "acted"

    async def operate() -> list[tuple[str, str]]:
        await started.wait()
        return [await act(event_id) for event_id in reversed(ids)]

    _, results = await asyncio.gather(worker(), operate())
    acted = {event_id for event_id, said in results if said == "acted"}
    assert acted.isdisjoint(claimed)
    assert acted | set(claimed) == set(ids)
    assert len(claimed) == len(set(claimed))
    assert {event_id for event_id, said in results if said == "leased"} <= set(claimed)
    assert acted and claimed  # the race happened both ways
    dead = {d.id for d in await store.list_dead(limit=total)}
    assert dead == (acted if action == "dead" else set())


def _hold_row_and_lease(backend: str, event_id: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """A claim in slow motion, on a connection of its own: `begin` locks the event's row (PostgreSQL) or
    the database (SQLite), `commit` writes a lease of worker `slow` until 13:00 and commits."""
    until_pg, until_sqlite = "2030-01-01 13:00:00+00", "2030-01-01T13:00:00.000000Z"
    if backend.startswith("sqlite:///"):
        lite = sqlite3.connect(backend[len("sqlite:///") :], isolation_level=None, check_same_thread=False)

        def begin() -> None:
            lite.execute("BEGIN IMMEDIATE")

        def commit() -> None:
            lite.execute(
                "UPDATE jobs SET leased_by = 'slow', lease_until = ?, attempts = attempts + 1 "
                "WHERE event_id = ?",
                (until_sqlite, event_id),
            )
            lite.execute("COMMIT")
            lite.close()

        return begin, commit
    conn = psycopg.connect(backend, autocommit=True)

    def begin_pg() -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT 1 FROM jobs WHERE event_id = %s FOR UPDATE", (event_id,))

    def commit_pg() -> None:
        conn.execute(
            "UPDATE jobs SET leased_by = 'slow', lease_until = %s, attempts = attempts + 1 "
            "WHERE event_id = %s",
            (until_pg, event_id),
        )
        conn.execute("COMMIT")
        conn.close()

    return begin_pg, commit_pg


@pytest.mark.parametrize("action", ["drop", "dead"])
async def test_an_operator_waits_for_a_claim_in_progress_and_sees_its_lease(
    action: str, backend: str, store: Store
) -> None:
    """The check that no worker holds the event and the act are one transaction: a claim that took the
    event first is waited for, and then its lease refuses the drop."""
    await store.enqueue("gone", "A", {}, event_id="e1")
    begin, commit = _hold_row_and_lease(backend, "e1")
    await asyncio.to_thread(begin)
    pending = asyncio.ensure_future(
        store.drop_queued("e1") if action == "drop" else store.dead_letter_queued("e1", "x", "operator")
    )
    await asyncio.sleep(0.3)
    assert not pending.done()  # it waits for the claim's transaction
    await asyncio.to_thread(commit)
    found = await asyncio.wait_for(pending, 10)
    assert found is not None and found.leased and found.leased_by == "slow"
    assert [e.id for e in await store.list_queued()] == ["e1"]
    assert await store.get_dead("e1") is None


@pytest.mark.postgres
def test_times_are_read_back_in_utc_whatever_the_servers_time_zone(
    pg_database: str, clock: FakeClock
) -> None:
    """A server (or a role) set to Asia/Jerusalem: what an operator reads (`mesbridge queue list`,
    `dlq list`) is UTC, as on SQLite, not that zone's time printed without its offset."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    options = f"-c search_path={schema} -c TimeZone=Asia/Jerusalem"
    url = f"{pg_database}?{urlencode({'options': options}, quote_via=quote)}"

    async def fill() -> list[datetime]:
        store = open_store(url, clock=clock)
        try:
            await store.migrate()
            await store.enqueue("p", "A", {"n": 1}, event_id="e1")
            await store.enqueue("p", "B", {"n": 2}, event_id="e2")
            await store.mark_seen("p", "A", "v1")
            [job] = await store.claim("w", pipelines={"p"})
            await store.dead_letter(job, "refused", "business")
            [queued] = await store.list_queued()
            dead = await store.get_dead("e1")
            seen = await store.last_seen("p", "A")
            assert dead is not None and seen is not None
            return [queued.enqueued_at, queued.available_at, dead.enqueued_at, dead.died_at, seen.at]
        finally:
            await store.close()

    times = asyncio.run(fill())
    assert all(moment == clock() and moment.utcoffset() == timedelta(0) for moment in times), times
    for command in (["queue", "list"], ["dlq", "list"]):
        listed = CliRunner().invoke(main, [*command, "--store", url])
        assert listed.exit_code == 0 and "2030-01-01 12:00:00" in listed.output, listed.output
