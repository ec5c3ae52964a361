"""Queue behaviour shared by every backend: durability, per-key order, leases, retries, dead letters."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from engine.errors import EventConflict, LeaseLostError, StoreError
from engine.store import Store, open_store

if TYPE_CHECKING:
    from tests.store.conftest import FakeClock


async def test_enqueue_survives_reopen(make_store: Callable[..., Store]) -> None:
    first = make_store()
    await first.migrate()
    event_id = await first.enqueue("orders", "WO-1", {"qty": 3})
    await first.close()

    second = make_store()
    await second.migrate()
    [job] = await second.claim("w1")
    assert (job.event_id, job.pipeline, job.key, job.payload, job.attempts) == (
        event_id,
        "orders",
        "WO-1",
        {"qty": 3},
        1,
    )


async def test_enqueue_survives_kill_9(backend: str, store: Store) -> None:
    """An enqueue that returned is on disk even when the process dies at once afterwards."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from engine.store import open_store

        async def main():
            store = open_store({backend!r})
            await store.migrate()
            event_id = await store.enqueue("orders", "WO-9", {{"n": 9}}, event_id="killed-1")
            sys.stdout.write(event_id + "\\n")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "killed-1"
    [job] = await store.claim("w1")
    assert job.event_id == "killed-1" and job.payload == {"n": 9}


async def test_duplicate_event_id_is_enqueued_once(store: Store) -> None:
    assert await store.enqueue("orders", "A", {"v": 1}, event_id="e1") == "e1"
    assert await store.enqueue("orders", "A", {"v": 2}, event_id="e1") == "e1"
    [job] = await store.claim("w1", limit=10)
    await store.complete(job, {"ok": True})
    assert await store.enqueue("orders", "A", {"v": 3}, event_id="e1") == "e1"
    assert await store.claim("w1", limit=10) == []
    assert await store.queue_depth() == {}
    # enqueue_new tells a new event from a known one (what the webhook counts as a duplicate)
    assert await store.enqueue_new("orders", "A", {"v": 4}, event_id="e1") is False
    assert await store.enqueue_new("orders", "A", {"v": 5}, event_id="e2") is True
    assert await store.enqueue_new("orders", "A", {"v": 5}, event_id="e2") is False


async def test_known_event_id_with_another_fingerprint_is_a_conflict(store: Store) -> None:
    first = {"event": {"n": 1}, "fingerprint": "f1"}
    assert await store.enqueue("orders", "A", first, event_id="e1") == "e1"
    assert await store.enqueue("orders", "A", dict(first), event_id="e1") == "e1"  # the same event
    with pytest.raises(EventConflict) as conflict:
        await store.enqueue("orders", "B", {"event": {"n": 2}, "fingerprint": "f2"}, event_id="e1")
    assert conflict.value.event_id == "e1" and conflict.value.enqueued_at.tzinfo is not None
    # without fingerprints on both sides nothing can tell: accepted once, as before
    assert await store.enqueue("orders", "A", {"event": {"n": 3}}, event_id="e1") == "e1"
    assert await store.enqueue("orders", "A", {"v": 1}, event_id="e2") == "e2"
    assert await store.enqueue("orders", "A", {"v": 2, "fingerprint": "f3"}, event_id="e2") == "e2"
    jobs = await store.claim("w1", limit=10)
    assert [(job.event_id, job.payload) for job in jobs] == [("e1", first)]  # e2 waits behind e1's key
    [job] = jobs
    await store.dead_letter(job, "refused", "business")
    with pytest.raises(EventConflict):  # a dead letter keeps its fingerprint
        await store.enqueue("orders", "A", {"event": {"n": 2}, "fingerprint": "f2"}, event_id="e1")


async def test_claim_takes_only_the_pipelines_named(store: Store) -> None:
    await store.enqueue("newer", "A", {"v": 1}, event_id="e1")
    await store.enqueue("orders", "A", {"v": 2}, event_id="e2")
    assert await store.claim("w1", limit=10, pipelines=[]) == []
    assert [job.event_id for job in await store.claim("w1", limit=10, pipelines={"orders"})] == ["e2"]
    assert [job.event_id for job in await store.claim("w1", limit=10)] == ["e1"]


async def test_key_is_blocked_while_its_first_job_is_leased(store: Store) -> None:
    a1 = await store.enqueue("orders", "A", {"n": 1})
    a2 = await store.enqueue("orders", "A", {"n": 2})
    b1 = await store.enqueue("orders", "B", {"n": 1})
    other = await store.enqueue("stock", "A", {"n": 1})

    jobs = await store.claim("w1", limit=10)
    assert [job.event_id for job in jobs] == [a1, b1, other]
    assert await store.claim("w2", limit=10) == []
    assert await store.queue_depth() == {"orders": 3, "stock": 1}

    await store.complete(jobs[1])
    b2 = await store.enqueue("orders", "B", {"n": 2})
    assert [job.event_id for job in await store.claim("w2", limit=10)] == [b2]

    await store.complete(jobs[0], {"erp": 7})
    [next_a] = await store.claim("w2", limit=10)
    assert next_a.event_id == a2 and next_a.payload == {"n": 2}


async def test_claim_respects_limit_and_age(store: Store) -> None:
    ids = [await store.enqueue("p", f"k{i}", {"i": i}) for i in range(5)]
    assert [job.event_id for job in await store.claim("w", limit=2)] == ids[:2]
    assert [job.event_id for job in await store.claim("w", limit=10)] == ids[2:]


async def test_not_before_delays_a_job_and_its_key(store: Store, clock: FakeClock) -> None:
    later = await store.enqueue("p", "A", {}, not_before=clock() + timedelta(seconds=30))
    await store.enqueue("p", "A", {})
    assert await store.claim("w", limit=10) == []
    clock.advance(30)
    assert [job.event_id for job in await store.claim("w", limit=10)] == [later]


async def test_expired_lease_is_reclaimed_and_the_old_holder_loses(store: Store, clock: FakeClock) -> None:
    await store.enqueue("p", "A", {"x": 1})
    [first] = await store.claim("crashed", lease_seconds=10)
    clock.advance(9)
    assert await store.claim("w2") == []
    clock.advance(2)
    [second] = await store.claim("w2", lease_seconds=10)
    assert second.event_id == first.event_id
    assert second.attempts == 2 and second.worker_id == "w2"
    assert second.reclaimed and not first.reclaimed
    assert [a.error for a in second.history] == ["lease of crashed expired"]
    with pytest.raises(LeaseLostError):
        await store.complete(first)
    with pytest.raises(LeaseLostError):
        await store.retry(first, "late", 1)
    await store.complete(second)
    assert await store.queue_depth() == {}


async def test_a_heartbeat_keeps_the_lease_and_a_lost_one_says_so(store: Store, clock: FakeClock) -> None:
    await store.enqueue("p", "A", {})
    [job] = await store.claim("alive", lease_seconds=10)
    for _ in range(5):  # 40 s of work, renewed every 8 s: never claimable by another worker
        clock.advance(8)
        await store.renew(job, 10)
        assert await store.claim("other") == []
    clock.advance(11)  # the heartbeat stopped: the worker died
    [taken] = await store.claim("other", lease_seconds=10)
    assert taken.reclaimed
    with pytest.raises(LeaseLostError):
        await store.renew(job, 10)
    await store.complete(taken)


async def test_holder_may_finish_after_expiry_if_nobody_reclaimed(store: Store, clock: FakeClock) -> None:
    await store.enqueue("p", "A", {})
    [job] = await store.claim("slow", lease_seconds=1)
    clock.advance(5)
    await store.complete(job)
    assert await store.claim("w2") == []


async def test_retry_waits_for_its_delay_and_keeps_the_key_blocked(store: Store, clock: FakeClock) -> None:
    first = await store.enqueue("p", "A", {"n": 1})
    await store.enqueue("p", "A", {"n": 2})
    [job] = await store.claim("w1")
    await store.retry(job, "ERP timeout", delay=5)
    assert await store.claim("w1", limit=10) == []
    clock.advance(4.9)
    assert await store.claim("w1", limit=10) == []
    clock.advance(0.2)
    [again] = await store.claim("w1", limit=10)
    assert again.event_id == first and again.attempts == 2
    assert [(a.at, a.error) for a in again.history] == [(clock() - timedelta(seconds=5.1), "ERP timeout")]


async def test_dead_letter_keeps_every_attempt_and_unblocks_the_key(store: Store, clock: FakeClock) -> None:
    first = await store.enqueue("p", "A", {"n": 1})
    second = await store.enqueue("p", "A", {"n": 2})
    [job] = await store.claim("w1")
    await store.retry(job, "timeout", delay=0)
    clock.advance(1)
    [job] = await store.claim("w1")
    await store.dead_letter(job, "400 bad part number")
    with pytest.raises(LeaseLostError):
        await store.complete(job)

    [dead] = await store.list_dead()
    assert dead.id == first and dead.pipeline == "p" and dead.key == "A" and dead.payload == {"n": 1}
    assert dead.kind == "error"
    assert [a.error for a in dead.attempts] == ["timeout", "400 bad part number"]
    assert dead.error == "400 bad part number" and dead.died_at == clock()
    assert await store.get_dead(first) == dead
    assert await store.list_dead("other") == []
    assert await store.queue_depth() == {"p": 1}
    [nxt] = await store.claim("w1")
    assert nxt.event_id == second


async def test_replay_and_drop_dead_letters(store: Store) -> None:
    ids = []
    for n in range(2):
        ids.append(await store.enqueue("p", f"K{n}", {"n": n}))
    for job in await store.claim("w", limit=2):
        await store.dead_letter(job, "boom")
    assert {d.id for d in await store.list_dead("p", limit=10)} == set(ids)
    assert len(await store.list_dead(limit=1)) == 1

    queued_behind = await store.enqueue("p", "K0", {"n": "later"})
    assert await store.replay_dead(ids[0]) is True
    assert await store.replay_dead(ids[0]) is False
    assert await store.get_dead(ids[0]) is None
    [job] = await store.claim("w", limit=10)
    assert job.event_id == queued_behind  # the replayed event went to the tail of its key
    await store.complete(job)
    [replayed] = await store.claim("w", limit=10)
    assert (replayed.event_id, replayed.payload, replayed.attempts) == (ids[0], {"n": 0, "replayed": True}, 1)
    assert [(a.error, a.replay) for a in replayed.history] == [
        ("boom", False),
        ("replayed from the dead letters", True),
    ]

    await store.complete(replayed)

    uncertain = await store.enqueue("p", "K9", {"n": 9})
    [job] = await store.claim("w", limit=10)
    await store.dead_letter(job, "outcome unknown after POST /x", kind="uncertain")
    assert (await store.get_dead(uncertain)).kind == "uncertain"  # type: ignore[union-attr]
    assert await store.replay_dead(uncertain, verify_first=True) is True
    [again] = await store.claim("w", limit=10)
    assert again.payload == {"n": 9, "verify_first": True, "replayed": True}
    await store.dead_letter(again, "still unknown", kind="uncertain")
    assert await store.replay_dead(uncertain) is True  # a forced replay drops the mark
    [forced] = await store.claim("w", limit=10)
    assert forced.payload == {"n": 9, "replayed": True}

    assert await store.drop_dead(ids[1]) is True
    assert await store.drop_dead(ids[1]) is False
    assert await store.get_dead(ids[1]) is None
    assert await store.replay_dead("missing") is False
    assert await store.list_dead() == []


async def test_a_replay_that_fails_again_keeps_every_earlier_attempt(store: Store, clock: FakeClock) -> None:
    event_id = await store.enqueue("p", "A", {"n": 1})
    [job] = await store.claim("w")
    await store.retry(job, "ERP unreachable", delay=0)
    clock.advance(1)
    [job] = await store.claim("w")
    await store.dead_letter(job, "outcome unknown after POST /x", kind="uncertain")
    clock.advance(60)
    replayed_at = clock()
    assert await store.replay_dead(event_id, verify_first=True)
    clock.advance(1)
    [job] = await store.claim("w")
    assert job.attempts == 1  # a replay starts its own count of deliveries
    await store.dead_letter(job, "400 bad part number", kind="business")

    dead = await store.get_dead(event_id)
    assert dead is not None and dead.kind == "business" and dead.error == "400 bad part number"
    assert [(a.error, a.replay) for a in dead.attempts] == [
        ("ERP unreachable", False),
        ("outcome unknown after POST /x", False),
        ("replayed from the dead letters; each write looks first", True),
        ("400 bad part number", False),
    ]
    assert dead.attempts[2].at == replayed_at
    assert [a.error for a in dead.failures] == [
        "ERP unreachable",
        "outcome unknown after POST /x",
        "400 bad part number",
    ]


async def test_prune_done_jobs(store: Store, clock: FakeClock) -> None:
    await store.enqueue("p", "A", {}, event_id="old")
    [job] = await store.claim("w")
    await store.complete(job)
    clock.advance(100)
    assert await store.prune("jobs", older_than=50) == 1
    assert await store.enqueue("p", "A", {}, event_id="old") == "old"
    assert len(await store.claim("w")) == 1


async def test_closed_store_refuses_work(make_store: Callable[..., Store]) -> None:
    store = make_store()
    await store.migrate()
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.enqueue("p", "A", {})


@pytest.mark.parametrize(
    "url",
    [
        "mysql://x",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///x.db?journal=off",
        "sqlite:///x.db?synchronous=off",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)
