"""`enqueue_polled`: a poller's batch hand-off, on both backends (SQLite's one-transaction override and
the base implementation PostgreSQL inherits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.store import PolledItem, Store

if TYPE_CHECKING:
    from tests.store.conftest import FakeClock


def _item(key: str, version: str) -> PolledItem:
    return PolledItem(
        key, version, {"event": {"n": key}, "key": key, "version": version}, f"p:{key}:{version}"
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
