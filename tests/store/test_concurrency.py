"""Many claimers at once: every job done exactly once, never two of one key in flight, keys in order.

Property-style: random plans (keys, claim sizes, retries) from fixed seeds, run by several stores (on
PostgreSQL separate connection pools, on SQLite separate connections to one file), several tasks each.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from engine.store import Job, Store

STORES = 3
TASKS_PER_STORE = 3


@pytest.mark.parametrize("seed", [1, 2])
async def test_claimers_never_share_a_job_and_keep_key_order(
    seed: int, store: Store, make_store: Callable[..., Store]
) -> None:
    rng = random.Random(seed)
    total = 300
    keys = [f"K{k}" for k in range(25)]
    enqueued: dict[tuple[str, str], list[str]] = defaultdict(list)

    async def enqueue(n: int) -> None:
        pipeline = rng.choice(["orders", "stock"])
        key = rng.choice(keys)
        event_id = await store.enqueue(pipeline, key, {"n": n})
        enqueued[(pipeline, key)].append(event_id)

    for n in range(total // 2):
        await enqueue(n)

    stores = [store] + [make_store() for _ in range(STORES - 1)]
    in_flight: set[tuple[str, str]] = set()
    claimed = Counter[str]()
    completed: dict[tuple[str, str], list[str]] = defaultdict(list)
    violations: list[str] = []
    done = asyncio.Event()

    async def handle(s: Store, job: Job, worker_rng: random.Random) -> None:
        slot = (job.pipeline, job.key)
        if slot in in_flight:
            violations.append(f"{slot} leased twice")
        in_flight.add(slot)
        await asyncio.sleep(worker_rng.random() * 0.002)
        in_flight.discard(slot)
        if worker_rng.random() < 0.15:
            await s.retry(job, "transient", delay=0)
            return
        await s.complete(job, {"by": job.worker_id})
        completed[slot].append(job.event_id)
        if sum(len(v) for v in completed.values()) == total:
            done.set()

    async def worker(s: Store, name: str) -> None:
        worker_rng = random.Random(f"{seed}-{name}")
        while not done.is_set():
            jobs = await s.claim(name, limit=worker_rng.randint(1, 5), lease_seconds=60)
            if not jobs:
                await asyncio.sleep(0.002)
                continue
            for job in jobs:
                claimed[job.event_id] += 1
            await asyncio.gather(*(handle(s, job, worker_rng) for job in jobs))

    async def producer() -> None:
        for n in range(total // 2, total):
            await enqueue(n)
            if n % 10 == 0:
                await asyncio.sleep(0.001)

    workers = [
        asyncio.create_task(worker(s, f"s{i}-t{t}"))
        for i, s in enumerate(stores)
        for t in range(TASKS_PER_STORE)
    ]
    async with asyncio.timeout(25):
        await producer()
        await done.wait()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)

    assert violations == []
    assert completed == enqueued  # every job done once, each key in enqueue order
    assert sum(len(v) for v in completed.values()) == total
    assert len(claimed) == total
    assert await store.queue_depth() == {}
    assert await store.claim("late", limit=100) == []
