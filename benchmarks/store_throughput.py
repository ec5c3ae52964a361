"""Store throughput: enqueue, claim and complete N jobs; SQLite (1 worker) next to PostgreSQL (1..3).

Every worker is a separate process with its own store (on PostgreSQL its own connection). All workers
first enqueue their share of the N jobs, wait for each other, then claim (batches of --batch) and
complete one by one until the queue is empty. Each phase is timed from the slowest worker.

    python benchmarks/store_throughput.py --jobs 2000
    python benchmarks/store_throughput.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

PostgreSQL runs in a database created for the run (mesbridge_bench_<random>) and dropped afterwards.
Timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from engine.store import open_store


@dataclass
class Result:
    label: str
    workers: int
    jobs: int
    enqueue_s: float
    process_s: float

    @property
    def total_rate(self) -> float:
        return self.jobs / (self.enqueue_s + self.process_s)


async def _work(
    url: str, name: str, share: range, keys: int, batch: int, barrier: Barrier
) -> tuple[float, float]:
    store = open_store(url)
    try:
        await store.migrate()
        await asyncio.to_thread(barrier.wait)
        start = time.perf_counter()
        for n in share:
            await store.enqueue("bench", f"K{n % keys}", {"n": n, "part": "P-100", "qty": 1})
        enqueued = time.perf_counter()
        await asyncio.to_thread(barrier.wait)
        begin = time.perf_counter()
        while True:
            jobs = await store.claim(name, limit=batch, lease_seconds=60)
            if not jobs:
                if not await store.queue_depth():
                    break
                await asyncio.sleep(0.001)
                continue
            for job in jobs:
                await store.complete(job, {"ok": True})
        return enqueued - start, time.perf_counter() - begin
    finally:
        await store.close()


def _process(
    url: str, name: str, share: range, keys: int, batch: int, barrier: Barrier, out: mp.Queue
) -> None:
    out.put(asyncio.run(_work(url, name, share, keys, batch, barrier)))


def run(label: str, url: str, workers: int, jobs: int, keys: int, batch: int) -> Result:
    """Run one configuration in `workers` processes on an empty store at `url`."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    shares = [range(i, jobs, workers) for i in range(workers)]
    procs = [
        ctx.Process(target=_process, args=(url, f"w{i}", shares[i], keys, batch, barrier, out))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    timings = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise SystemExit(f"{label}: worker exited with {proc.exitcode}")
    return Result(label, workers, jobs, max(t[0] for t in timings), max(t[1] for t in timings))


def _database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name))


def _recreate(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _database_url(admin_url, name)


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=0, help="distinct order keys (default: jobs / 4)")
    parser.add_argument("--batch", type=int, default=10, help="claim limit")
    parser.add_argument("--max-workers", type=int, default=3, help="PostgreSQL runs 1..this many workers")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MESBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin URL of the server; a scratch database is created on it",
    )
    args = parser.parse_args()
    keys = args.keys or max(1, args.jobs // 4)

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("full", "normal"):
            url = f"sqlite:///{tmp}/bench-{sync}.db?synchronous={sync}"
            results.append(run(f"sqlite synchronous={sync}", url, 1, args.jobs, keys, args.batch))

    name = f"mesbridge_bench_{uuid.uuid4().hex[:10]}"
    try:
        for workers in range(1, args.max_workers + 1):
            url = _recreate(args.postgres, name)
            results.append(run("postgresql", url, workers, args.jobs, keys, args.batch))
    finally:
        _drop(args.postgres, name)

    base = results[0]
    print(f"\n{args.jobs} jobs, {keys} keys, claim batch {args.batch}, {os.cpu_count()} CPUs")
    columns = f"{'workers':>8}{'enqueue/s':>12}{'claim+done/s':>14}{'overall/s':>11}{'vs sqlite':>11}"
    header = f"{'backend':<28}{columns}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<28}{r.workers:>8}{r.jobs / r.enqueue_s:>12.0f}{r.jobs / r.process_s:>14.0f}"
            f"{r.total_rate:>11.0f}{r.total_rate / base.total_rate:>10.2f}x"
        )


if __name__ == "__main__":
    main()
