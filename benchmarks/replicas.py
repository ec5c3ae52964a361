"""Queued delivery throughput: 1, 2 and 3 `mesbridge run` replicas on PostgreSQL, and one on SQLite.

    .venv/bin/python benchmarks/replicas.py [--events 2000] [--workers 8] [--concurrency 32]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--only sqlite-1,postgresql-2]

Each scenario gets a fresh store (a new SQLite file, or a new PostgreSQL database created and dropped
here), real `mesbridge run` processes on free ports, and the same fast stand-in ERP
(benchmarks/standin_erp.py, its own process). `--events` events are POSTed to a queue-mode webhook,
round-robin over the replicas with `--concurrency` requests in flight; each is delivered by the
replicas' queue workers as one POST to the ERP. Measured: seconds to accept them all (202), and seconds
from the first POST until the shared queue is empty (every job done). Prints a table and the ratios
against one replica on SQLite and one on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import psycopg

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
MESBRIDGE = Path(sys.executable).parent / "mesbridge"
TOKEN = "bench-replicas-token"
ROUTE = "/bench/event"
SCENARIOS = ("sqlite-1", "postgresql-1", "postgresql-2", "postgresql-3")

SETTINGS = """\
host: 127.0.0.1
log_level: warning
reload: false
workers: {workers}
shutdown_grace: 5
webhook_auth: {{kind: shared_secret, in: header, name: X-Token, secret: "${{BENCH_TOKEN}}"}}
"""

CONNECTOR = """\
name: erp
description: The stand-in ERP
base_url: ${BENCH_ERP_URL}
content_type: application/json
timeout: {connect: 5, read: 30}
pool: {max_connections: 50}
auth: {kind: basic, username: bench, password: bench}
envelope: {success: null, result: null, error: [error.message]}
retry:
  max_attempts: 3
  backoff: {initial: 0.2, multiplier: 2, max: 2, jitter: true}
  deadline: 30
  unapplied: [408, 429, 503]
  uncertain: [500, 502, 504]
pagination: {kind: none}
"""

PIPELINE = """\
pipelines:
  - name: bench.event
    source: {kind: webhook, path: /bench/event, mode: queue, order_key: event.line}
    steps:
      - name: created
        call: erp
        method: POST
        path: /LOADED
        body: {SERIALNAME: "{{ event.serial }}", LINE: "{{ event.line }}", QUANT: "{{ event.qty }}"}
    reply:
      status: 200
      body: {externalId: "{{ created.FORM }}"}
"""


@dataclass
class Result:
    """One scenario's figures."""

    name: str
    replicas: int
    accept_seconds: float
    total_seconds: float
    events: int

    @property
    def rate(self) -> float:
        return self.events / self.total_seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_root(path: Path, workers: int) -> Path:
    (path / "connectors").mkdir(parents=True)
    (path / "mappings" / "bench").mkdir(parents=True)
    (path / "mesbridge.yaml").write_text(SETTINGS.format(workers=workers))
    (path / "connectors" / "erp.yaml").write_text(CONNECTOR)
    (path / "mappings" / "bench" / "event.yaml").write_text(PIPELINE)
    return path


@contextlib.contextmanager
def standin_erp() -> Iterator[str]:
    """The stand-in ERP in its own process; yields its base URL."""
    process = subprocess.Popen(
        [PYTHON, str(HERE / "standin_erp.py"), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise RuntimeError(f"the stand-in ERP did not start: {line}")
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database; dropped afterwards."""
    name = f"mesbridge_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def replicas(
    root: Path, store_url: str, count: int, environ: dict[str, str], logs: Path
) -> Iterator[list[str]]:
    """`count` `mesbridge run` processes on the same store; yields their base URLs once all are ready."""
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for index in range(count):
            port = free_port()
            with (logs / f"replica-{index}.log").open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [str(MESBRIDGE), "run", str(root), "--port", str(port), "--store", store_url],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, **environ},
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url, process in zip(urls, processes, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"replica at {url} exited; see {logs}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica at {url} not ready; see {logs}")
                time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def drive(urls: list[str], events: int, concurrency: int) -> tuple[float, float]:
    """POST `events` round-robin; return (seconds until all accepted, seconds until the queue is empty)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        next_event = iter(range(events))
        headers = {"X-Token": TOKEN}

        async def sender() -> None:
            for n in next_event:
                event = {"serial": f"SN-{n:07d}", "line": n % 50, "qty": 1}
                async with session.post(
                    f"{urls[n % len(urls)]}{ROUTE}", json=event, headers=headers
                ) as reply:
                    if reply.status != 202:
                        raise RuntimeError(f"event {n}: {reply.status} {await reply.text()}")

        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        accepted = time.perf_counter() - start
        while True:
            async with session.get(f"{urls[0]}/status") as reply:
                status = await reply.json()
            if status["queue_depth"] == 0:
                break
            await asyncio.sleep(0.02)
        return accepted, time.perf_counter() - start


def count_done(store_url: str) -> dict[str, int]:
    """Jobs per state, read straight from the store."""
    query = "SELECT state, count(*) FROM jobs GROUP BY state"
    if store_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(store_url[len("sqlite:///") :])) as conn:
            return dict(conn.execute(query).fetchall())
    with psycopg.connect(store_url) as conn:
        return {state: int(n) for state, n in conn.execute(query).fetchall()}


def run_scenario(name: str, args: argparse.Namespace, erp_url: str, work: Path) -> Result:
    backend, _, count_text = name.partition("-")
    count = int(count_text)
    folder = work / name
    folder.mkdir()
    root = write_root(folder / "root", args.workers)
    environ = {"BENCH_ERP_URL": erp_url, "BENCH_TOKEN": TOKEN}
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            store_url = f"sqlite:///{folder / 'state.db'}"
        else:
            store_url = stack.enter_context(postgres_database(args.postgres))
        urls = stack.enter_context(replicas(root, store_url, count, environ, folder))
        accepted, total = asyncio.run(drive(urls, args.events, args.concurrency))
        states = count_done(store_url)
    if states != {"done": args.events}:
        raise RuntimeError(f"{name}: jobs by state {states}, expected {args.events} done")
    return Result(name, count, accepted, total, args.events)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8, help="queue workers per replica")
    parser.add_argument("--concurrency", type=int, default=32, help="webhook requests in flight")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MESBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server to create the benchmark databases on",
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"{args.events} events, {args.workers} workers per replica, {os.cpu_count()} CPU(s)")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mesbridge-bench-") as tmp, standin_erp() as erp_url:
        for name in chosen:
            result = run_scenario(name, args, erp_url, Path(tmp))
            results.append(result)
            print(f"  {name}: {result.rate:,.0f} events/s", flush=True)
    by_name = {r.name: r for r in results}
    print()
    print(
        f"{'scenario':<14} {'replicas':>8} {'accept s':>9} {'total s':>8} {'events/s':>9} "
        f"{'vs sqlite-1':>11} {'vs pg-1':>8}"
    )
    for r in results:
        vs_sqlite = r.rate / by_name["sqlite-1"].rate if "sqlite-1" in by_name else float("nan")
        vs_pg = r.rate / by_name["postgresql-1"].rate if "postgresql-1" in by_name else float("nan")
        print(
            f"{r.name:<14} {r.replicas:>8} {r.accept_seconds:>9.2f} {r.total_seconds:>8.2f} "
            f"{r.rate:>9,.0f} {vs_sqlite:>10.2f}x {vs_pg:>7.2f}x"
        )


if __name__ == "__main__":
    main()
