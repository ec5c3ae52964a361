"""Idempotency replies, poll cursors, seen keys and poller leases, shared by every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from engine.errors import StoreError
from engine.store import Store

if TYPE_CHECKING:
    from tests.store.conftest import FakeClock


async def test_first_reply_wins(store: Store) -> None:
    assert await store.get_reply("p", "k1") is None
    assert await store.put_reply("p", "k1", {"status": 201, "body": {"id": 1}}) == {
        "status": 201,
        "body": {"id": 1},
    }
    assert await store.put_reply("p", "k1", {"status": 201, "body": {"id": 2}}) == {
        "status": 201,
        "body": {"id": 1},
    }
    assert await store.get_reply("p", "k1") == {"status": 201, "body": {"id": 1}}
    assert await store.get_reply("other", "k1") is None
    with pytest.raises(StoreError):
        await store.put_reply("p", "k2", None)


async def test_concurrent_put_reply_stores_one(make_store: Callable[..., Store], store: Store) -> None:
    stores = [store, make_store(), make_store()]
    replies = await asyncio.gather(*(stores[i % 3].put_reply("p", "k", {"n": i}) for i in range(12)))
    assert len({r["n"] for r in replies}) == 1
    assert await store.get_reply("p", "k") == replies[0]


async def test_reserve_excludes_others_until_reply_release_or_expiry(store: Store, clock: FakeClock) -> None:
    assert await store.reserve("p", "k", ttl=10, holder="a") is True
    assert await store.reserve("p", "k", ttl=10, holder="b") is False
    assert await store.reserve("p", "k", ttl=10, holder="a") is True  # renewal
    assert await store.get_reply("p", "k") is None
    assert await store.release("p", "k", holder="b") is False
    assert await store.release("p", "k", holder="a") is True
    assert await store.reserve("p", "k", ttl=10, holder="b") is True
    clock.advance(11)
    assert await store.reserve("p", "k", ttl=10, holder="c") is True  # b hung: taken over
    assert await store.put_reply("p", "k", {"ok": 1}) == {"ok": 1}
    assert await store.reserve("p", "k", ttl=10, holder="d") is False
    assert await store.release("p", "k", holder="c") is False  # replies are never released
    assert await store.get_reply("p", "k") == {"ok": 1}


async def test_reply_once_calls_the_erp_once_under_concurrency(
    make_store: Callable[..., Store], store: Store
) -> None:
    stores = [store, make_store(), make_store()]
    calls = 0

    async def call_erp() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return {"status": 200, "order": 42}

    replies = await asyncio.gather(
        *(stores[i % 3].reply_once("p", "req-1", call_erp, ttl=30, poll=0.01) for i in range(10))
    )
    assert calls == 1
    assert replies == [{"status": 200, "order": 42}] * 10


async def test_reply_once_hands_over_when_the_first_call_fails(store: Store) -> None:
    attempts: list[str] = []
    started = asyncio.Event()

    async def failing() -> dict[str, str]:
        attempts.append("fail")
        started.set()
        await asyncio.sleep(0.05)
        raise RuntimeError("ERP down")

    async def working() -> dict[str, str]:
        attempts.append("ok")
        return {"status": "ok"}

    first = asyncio.create_task(store.reply_once("p", "k", failing, ttl=30, poll=0.01))
    await started.wait()
    second = asyncio.create_task(store.reply_once("p", "k", working, ttl=30, poll=0.01))
    with pytest.raises(RuntimeError):
        await first
    assert await second == {"status": "ok"}
    assert attempts == ["fail", "ok"]


async def test_prune_replies(store: Store, clock: FakeClock) -> None:
    await store.put_reply("p", "old", {"v": 1})
    await store.reserve("p", "stale", ttl=5, holder="h")
    clock.advance(100)
    await store.put_reply("p", "new", {"v": 2})
    await store.reserve("p", "live", ttl=5, holder="h")
    assert await store.prune("replies", older_than=50) == 2
    assert await store.get_reply("p", "old") is None
    assert await store.get_reply("p", "new") == {"v": 2}
    assert await store.reserve("p", "live", ttl=5, holder="other") is False


async def test_cursors(make_store: Callable[..., Store], store: Store) -> None:
    assert await store.get_cursor("poll.orders") is None
    await store.set_cursor("poll.orders", "2030-01-01T00:00:00Z")
    await store.set_cursor("poll.orders", "2030-01-02T00:00:00Z")
    await store.set_cursor("poll.parts", "17")
    assert await store.get_cursor("poll.orders") == "2030-01-02T00:00:00Z"
    other = make_store()
    assert await other.get_cursor("poll.parts") == "17"


async def test_seen_keys_deliver_each_version_once(store: Store, clock: FakeClock) -> None:
    assert await store.is_seen("p", "WO-1", "v1") is False
    assert await store.mark_seen("p", "WO-1", "v1") is True
    assert await store.mark_seen("p", "WO-1", "v1") is False
    assert await store.is_seen("p", "WO-1", "v1") is True
    assert await store.mark_seen("p", "WO-1", "v2") is True
    assert await store.mark_seen("p", "WO-1", "v1") is True  # back to v1: a change, delivered again
    assert await store.mark_seen("p", "WO-1", "v1") is False
    assert await store.is_seen("q", "WO-1", "v1") is False
    clock.advance(3600)
    assert await store.mark_seen("q", "WO-1", "v1") is True
    assert await store.prune("seen", older_than=60, pipeline="other") == 0
    assert await store.prune("seen", older_than=60) == 2
    assert await store.is_seen("p", "WO-1", "v1") is False
    assert await store.is_seen("q", "WO-1", "v1") is True


async def test_concurrent_mark_seen_has_one_winner(make_store: Callable[..., Store], store: Store) -> None:
    stores = [store, make_store(), make_store()]
    results = await asyncio.gather(*(stores[i % 3].mark_seen("p", "k", "1") for i in range(9)))
    assert sorted(results) == [False] * 8 + [True]


async def test_poller_lease_renewal_takeover_and_release(store: Store, clock: FakeClock) -> None:
    assert await store.acquire_lease("poll.orders", "replica-a", ttl=30) is True
    assert await store.acquire_lease("poll.orders", "replica-b", ttl=30) is False
    assert await store.acquire_lease("poll.parts", "replica-b", ttl=30) is True
    clock.advance(20)
    assert await store.acquire_lease("poll.orders", "replica-a", ttl=30) is True  # renewed to t=50
    clock.advance(20)
    assert await store.acquire_lease("poll.orders", "replica-b", ttl=30) is False
    clock.advance(11)
    assert await store.acquire_lease("poll.orders", "replica-b", ttl=30) is True  # a expired: taken over
    assert await store.acquire_lease("poll.orders", "replica-a", ttl=30) is False
    assert await store.release_lease("poll.orders", "replica-a") is False
    assert await store.release_lease("poll.orders", "replica-b") is True
    assert await store.acquire_lease("poll.orders", "replica-a", ttl=30) is True


async def test_concurrent_lease_acquire_has_one_winner(
    make_store: Callable[..., Store], store: Store
) -> None:
    stores = [store, make_store(), make_store()]
    results = await asyncio.gather(*(stores[i % 3].acquire_lease("poll", f"r{i}", ttl=30) for i in range(9)))
    assert results.count(True) == 1
