"""Traces in the store: batches kept once, listings filtered and newest first, retention by age and
count, and several writers at once — on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta

from engine.store import Store, StoredTrace, TraceQuery

from .conftest import FakeClock


def trace(
    clock: FakeClock,
    id: str,
    *,
    seconds_ago: float = 0.0,
    pipeline: str = "erp.report",
    outcome: str = "ok",
    source: str = "webhook",
    text: str = "",
) -> StoredTrace:
    document = {"id": id, "pipeline": pipeline, "outcome": outcome, "event": {"note": text}}
    return StoredTrace(
        id=id,
        received=clock() - timedelta(seconds=seconds_ago),
        pipeline=pipeline,
        event_id=f"{pipeline}:{id}",
        source=source,
        outcome=outcome,
        status=200 if outcome == "ok" else 422,
        duration=0.0125,
        version="v1",
        search=json.dumps(document["event"]).lower(),
        document=json.dumps(document),
    )


async def test_a_batch_is_kept_once_and_read_back_whole(store: Store, clock: FakeClock) -> None:
    batch = [trace(clock, "a"), trace(clock, "b", seconds_ago=1)]
    await store.add_traces(batch)
    await store.add_traces(batch)  # a batch written twice (a retried flush) keeps one of each
    listed = await store.list_traces(TraceQuery())
    assert [t.id for t in listed] == ["a", "b"]
    assert listed[0].received == clock() and listed[0].duration == 0.0125 and listed[0].status == 200
    assert await store.get_trace("a") == {
        "id": "a",
        "pipeline": "erp.report",
        "outcome": "ok",
        "event": {"note": ""},
    }
    assert await store.get_trace("missing") is None
    await store.add_traces([])


async def test_listings_filter_on_every_criterion(store: Store, clock: FakeClock) -> None:
    await store.add_traces(
        [
            trace(clock, "t1", seconds_ago=30, outcome="failed", text="WO-1001 over-report"),
            trace(clock, "t2", seconds_ago=20, pipeline="erp.scrap", text="WO-1002"),
            trace(clock, "t3", seconds_ago=10, source="queue", text="100% done_ok"),
            trace(clock, "t4", seconds_ago=0, outcome="uncertain", text="wo-1001 again"),
        ]
    )

    async def ids(**criteria: object) -> list[str]:
        return [t.id for t in await store.list_traces(TraceQuery(**criteria))]  # type: ignore[arg-type]

    assert await ids() == ["t4", "t3", "t2", "t1"]
    assert await ids(pipeline="erp.scrap") == ["t2"]
    assert await ids(outcome="failed") == ["t1"]
    assert await ids(source="queue") == ["t3"]
    assert await ids(event_id="erp.report:t3") == ["t3"]
    assert await ids(text="WO-1001") == ["t4", "t1"]  # case does not matter
    assert await ids(text="100%") == ["t3"] and await ids(text="1%d") == []  # % and _ are literal
    assert await ids(text="done_ok") == ["t3"] and await ids(text="don_") == []
    assert await ids(since=clock() - timedelta(seconds=15)) == ["t4", "t3"]
    assert await ids(until=clock() - timedelta(seconds=15)) == ["t2", "t1"]
    assert await ids(limit=2) == ["t4", "t3"]
    assert await ids(outcome="failed", text="WO-1002") == []


async def test_retention_by_age_then_by_count(store: Store, clock: FakeClock) -> None:
    await store.add_traces([trace(clock, f"t{n}", seconds_ago=n * 60) for n in range(10)])
    assert await store.prune_traces(older_than=5 * 60 - 1, keep=100) == 5  # 5..9 minutes old
    assert [t.id for t in await store.list_traces(TraceQuery())] == ["t0", "t1", "t2", "t3", "t4"]
    assert await store.prune_traces(older_than=3600, keep=2) == 3
    assert [t.id for t in await store.list_traces(TraceQuery())] == ["t0", "t1"]
    assert await store.prune_traces(older_than=3600, keep=2) == 0


async def test_replicas_write_and_prune_concurrently(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    replicas = [make_store() for _ in range(3)]
    await replicas[0].migrate()

    async def write(index: int, store: Store) -> None:
        for batch in range(10):
            await store.add_traces([trace(clock, f"r{index}-{batch}-{n}") for n in range(20)])
            await store.prune_traces(older_than=3600, keep=10_000)

    await asyncio.gather(*(write(i, s) for i, s in enumerate(replicas)))
    listed = await replicas[1].list_traces(TraceQuery(limit=10_000))
    assert len(listed) == 3 * 10 * 20 == len({t.id for t in listed})


async def test_a_trace_commit_leaves_the_stores_durability_as_it_was(tmp_path, clock: FakeClock) -> None:
    from engine.store.backends.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "durable.db"), clock=clock)
    await store.migrate()
    await store.add_traces([trace(clock, "a")])

    def synchronous(conn):  # PRAGMA synchronous: 1 NORMAL, 2 FULL
        return conn.execute("PRAGMA synchronous").fetchone()[0]

    assert await store._run(synchronous, write=False) == 2  # FULL again for events and cursors
    assert [t.id for t in await store.list_traces(TraceQuery())] == ["a"]
    await store.close()


async def test_a_relaxed_commit_that_fails_rolls_back_and_restores_the_durability(
    tmp_path, clock: FakeClock
) -> None:
    """A COMMIT can fail and leave its transaction open (here a deferred foreign key; on a disk, a
    full or busy one): the relaxed commit's `PRAGMA synchronous` must still be restored, which SQLite
    refuses inside a transaction, and the store must stay usable."""
    import sqlite3

    import pytest

    from engine.errors import StoreError
    from engine.store.backends.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "durable.db"), clock=clock)
    await store.migrate()

    def violates_at_commit(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE child (pid REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
        conn.execute("INSERT INTO child VALUES (1)")

    with pytest.raises((StoreError, sqlite3.Error)) as failed:
        await store._run(violates_at_commit, durable=False)
    assert "FOREIGN KEY" in str(failed.value)  # the reason, not "Safety level may not be changed"

    def synchronous(conn: sqlite3.Connection) -> int:  # PRAGMA synchronous: 1 NORMAL, 2 FULL
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    assert await store._run(synchronous, write=False) == 2
    await store.add_traces([trace(clock, "a")])  # no transaction left open
    assert [t.id for t in await store.list_traces(TraceQuery())] == ["a"]
    await store.close()


async def test_traces_wait_their_turn_when_another_writer_holds_the_database(
    tmp_path, clock: FakeClock
) -> None:
    """The event loop writes a batch itself only when the database is free at once; held by another
    writer, the batch goes to the store's thread, which waits for it and then writes it."""
    import sqlite3

    from engine.store.backends.sqlite import SQLiteStore

    path = tmp_path / "busy.db"
    store = SQLiteStore(str(path), clock=clock)
    await store.migrate()
    await store.add_traces([trace(clock, "first")])  # written by the loop: the database was free
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    pending = asyncio.create_task(store.add_traces([trace(clock, "second")]))
    await asyncio.sleep(0.3)
    assert not pending.done()  # not written, not dropped: waiting on the store's thread
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(pending, 10)
    assert {t.id for t in await store.list_traces(TraceQuery())} == {"first", "second"}
    await store.close()


async def test_the_write_ahead_log_is_checkpointed_off_the_event_loop(
    tmp_path, clock: FakeClock, monkeypatch
) -> None:
    from engine.store.backends import sqlite as backend

    monkeypatch.setattr(backend, "CHECKPOINT_TRACES", 3)
    store = backend.SQLiteStore(str(tmp_path / "wal.db"), clock=clock)
    await store.migrate()
    checkpoints = []
    real = store._checkpoint

    async def counted() -> None:
        checkpoints.append(1)
        await real()

    monkeypatch.setattr(store, "_checkpoint", counted)
    for n in range(7):
        await store.add_traces([trace(clock, f"t{n}", seconds_ago=n)])
    assert len(checkpoints) == 2  # after the 3rd and the 6th trace
    assert len(await store.list_traces(TraceQuery())) == 7
    await store.close()
