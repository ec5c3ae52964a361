"""`enqueue_polled`: a poller's batch hand-off, on both backends (SQLite's one-transaction override and
PostgreSQL's, one transaction per record)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import StoreError
from engine.store import PolledItem, Store, open_store
from engine.store.base import returned_id

from .conftest import FakeClock


def _item(key: str, version: str, pipeline: str = "p") -> PolledItem:
    return PolledItem(
        key, version, {"event": {"n": key}, "key": key, "version": version}, f"{pipeline}:{key}:{version}"
    )


async def test_new_items_are_queued_once_and_marked_seen(store: Store) -> None:
    assert await store.enqueue_polled("p", []) == 0
    assert await store.mark_seen("p", "WO-0", "v1") is True  # seen in an earlier round
    items = [_item("WO-0", "v1"), _item("WO-1", "v1"), _item("WO-2", "v1"), _item("WO-1", "v1")]
    assert await store.enqueue_polled("p", items) == 2  # WO-0 seen before; WO-1 twice in the batch
    assert await store.is_seen("p", "WO-1", "v1") and await store.is_seen("p", "WO-2", "v1")
    assert await store.queue_depth() == {"p": 2}
    assert await store.enqueue_polled("p", [_item("WO-1", "v1"), _item("WO-1", "v2")]) == 1
    jobs = []
    while batch := await store.claim("w", limit=10):
        jobs += batch
        for job in batch:
            await store.complete(job)
    assert [(j.event_id, j.key, j.payload["event"]) for j in jobs] == [
        ("p:WO-1:v1", "WO-1", {"n": "WO-1"}),
        ("p:WO-2:v1", "WO-2", {"n": "WO-2"}),
        ("p:WO-1:v2", "WO-1", {"n": "WO-1"}),
    ]


async def test_an_event_queued_but_not_marked_is_not_queued_again(store: Store) -> None:
    """A crash between enqueue and mark_seen: the next round marks it seen without a second job."""
    await store.enqueue("p", "WO-1", {"event": {}}, event_id="p:WO-1:v1")
    assert await store.enqueue_polled("p", [_item("WO-1", "v1")]) == 1
    assert await store.is_seen("p", "WO-1", "v1")
    assert await store.queue_depth() == {"p": 1}


async def test_newer_version_is_the_latest_polled_after_it(store: Store, clock: FakeClock) -> None:
    """What a dead letter's replay asks: was its record polled again since, at another version?"""
    await store.enqueue_polled("p", [_item("WO-1", "v1"), _item("WO-2", "v1")])
    assert await store.newer_version("p", "WO-1", "v1") is None
    clock.advance(5)
    await store.enqueue_polled("p", [_item("WO-1", "v2")])
    clock.advance(5)
    await store.enqueue_polled("p", [_item("WO-1", "v3")])
    assert await store.newer_version("p", "WO-1", "v1") == "v3"
    assert await store.newer_version("p", "WO-1", "v2") == "v3"
    assert await store.newer_version("p", "WO-1", "v3") is None
    assert await store.newer_version("p", "WO-2", "v1") is None  # another record's versions do not count
    assert await store.newer_version("q", "WO-1", "v1") is None  # nor another pipeline's


async def test_a_record_back_at_an_earlier_version_is_delivered_again(store: Store) -> None:
    """A, B, then A again (a sell edited and edited back, its version a hash of its row): the last A is a
    change. Its event id is the first A's, marked with when B was polled, and stays that until it is
    marked seen, so a crash before the mark does not queue it twice."""
    assert await store.enqueue_polled("p", [_item("WO-1", "A")]) == 1
    assert await store.enqueue_polled("p", [_item("WO-1", "B"), _item("WO-1", "B")]) == 1
    last = await store.last_seen("p", "WO-1")
    assert last is not None and last.version == "B"
    assert await store.enqueue_polled("p", [_item("WO-1", "A")]) == 1
    assert await store.enqueue_polled("p", [_item("WO-1", "A")]) == 0  # re-read at the edge: no change
    ids = []
    while batch := await store.claim("w", limit=10):
        ids += [job.event_id for job in batch]
        for job in batch:
            await store.complete(job)
    assert ids == ["p:WO-1:A", "p:WO-1:B", f"p:WO-1:A@{last.at.strftime('%Y%m%dT%H%M%S%fZ')}"]
    assert await store.newer_version("p", "WO-1", "B") == "A"
    assert await store.newer_version("p", "WO-1", "A") is None


async def test_a_returned_version_queued_but_not_marked_is_not_queued_again(store: Store) -> None:
    """A crash between the enqueue and the mark of a record back at A: the next round finds the same last
    version (B), makes the same event id, and the queue refuses it."""
    await store.enqueue_polled("p", [_item("WO-1", "A")])
    await store.enqueue_polled("p", [_item("WO-1", "B")])
    last = await store.last_seen("p", "WO-1")
    assert last is not None
    returned = PolledItem("WO-1", "A", {"event": {"n": "WO-1"}}, "p:WO-1:A")
    await store.enqueue("p", "WO-1", returned.payload, event_id=returned_id(returned.event_id, last))
    assert await store.enqueue_polled("p", [returned]) == 1
    assert await store.queue_depth() == {"p": 3}
    assert await store.enqueue_polled("p", [returned]) == 0


def _failing_marks(backend: str) -> Callable[[], None]:
    """Make every write of a seen key fail (a crash between a polled record's enqueue and its mark);
    return what ends that."""
    if backend.startswith("sqlite:///"):
        path = backend[len("sqlite:///") :]
        with sqlite3.connect(path) as lite:
            lite.execute("CREATE TRIGGER crash BEFORE INSERT ON seen BEGIN SELECT RAISE(ABORT, 'crash'); END")
            lite.execute(
                "CREATE TRIGGER crash2 BEFORE UPDATE ON seen BEGIN SELECT RAISE(ABORT, 'crash'); END"
            )

        def end() -> None:
            with sqlite3.connect(path) as lite:
                lite.execute("DROP TRIGGER crash")
                lite.execute("DROP TRIGGER crash2")

        return end
    with psycopg.connect(backend, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'crash'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER crash BEFORE INSERT OR UPDATE ON seen FOR EACH ROW EXECUTE FUNCTION crash()"
        )

    def end_pg() -> None:
        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute("DROP TRIGGER crash ON seen")

    return end_pg


async def test_a_record_that_fails_to_be_marked_is_not_left_queued(backend: str, store: Store) -> None:
    """A, B, then A fails between its enqueue and its mark (a crash), and the record is back at B before
    the next round: that round sees B unchanged, so the A must not have stayed queued, or the queue
    would end at A while the record is at B."""
    await store.enqueue_polled("p", [_item("WO-1", "A")])
    await store.enqueue_polled("p", [_item("WO-1", "B")])
    end = _failing_marks(backend)
    with pytest.raises((StoreError, psycopg.Error)):
        await store.enqueue_polled("p", [_item("WO-1", "A")])
    end()
    assert await store.enqueue_polled("p", [_item("WO-1", "B")]) == 0
    delivered = []
    while batch := await store.claim("w", limit=10):
        delivered += [job.payload["version"] for job in batch]
        for job in batch:
            await store.complete(job)
    assert delivered == ["A", "B"]


VERSIONS = st.lists(st.lists(st.sampled_from("ABC"), min_size=1, max_size=4), min_size=1, max_size=6)
"""Rounds of one record's versions as a poller reads them (a round may read it more than once)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=VERSIONS, advance=st.lists(st.sampled_from([0, 0.0000005, 1]), min_size=6, max_size=6))
def test_every_change_of_a_record_is_delivered_once_in_order(
    backend: str, rounds: list[list[str]], advance: list[float]
) -> None:
    """The law: what is queued for a record is the versions read, in order, with each run of the same
    version kept once; whatever the clock does between rounds (standing still included)."""

    async def poll() -> list[str]:
        clock = FakeClock()
        store = open_store(backend, clock=clock)
        try:
            await store.migrate()
            pipeline = uuid.uuid4().hex
            for seconds, versions in zip(advance, rounds, strict=False):
                clock.advance(seconds)
                await store.enqueue_polled(pipeline, [_item("WO-1", v, pipeline) for v in versions])
            delivered = []
            while batch := await store.claim("w", limit=50, pipelines={pipeline}):
                delivered += [job.payload["version"] for job in batch]
                for job in batch:
                    await store.complete(job)
            return delivered
        finally:
            await store.close()

    read = [version for versions in rounds for version in versions]
    expected = [version for i, version in enumerate(read) if i == 0 or read[i - 1] != version]
    assert asyncio.run(poll()) == expected
