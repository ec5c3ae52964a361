"""Chaos: replicas killed with SIGKILL while they deliver to an ERP that is slow or resets mid-request.

    python benchmarks/chaos.py [--events 2000] [--replicas 3] [--kills 10] [--lease 15]
        [--slow 0.02] [--reset 0.02] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

`--replicas` `mesbridge run` processes share a fresh PostgreSQL database. `--events` events are POSTed
to two queue-mode webhooks (half each): `chaos.verified` creates a record with a `verify` lookup by the
event's reference, `chaos.plain` creates it with nothing protecting the write. The ERP (this script in
`--erp PORT` mode, its own process) answers a create after 6 to 12 s with probability `--slow`, and
with probability `--reset` saves the record and then resets the connection without a reply. While the
events are delivered, a replica is killed with SIGKILL every few seconds (`--kills` in all) and started
again. At the end every accepted event must be in the ERP or in the dead letters:

- lost: accepted, never recorded by the ERP, not a dead letter (must be 0);
- duplicated: recorded more than once, per pipeline (0 for `chaos.verified`; for `chaos.plain`, a
  write nothing protects, duplicates are refused as uncertain dead letters instead);
- dead letters by kind, the drain time, and the longest a key waited after its replica was killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from replicas import free_port, postgres_database  # noqa: E402

PYTHON = sys.executable
MESBRIDGE = Path(sys.executable).parent / "mesbridge"
TOKEN = "bench-chaos-token"

SETTINGS = """\
host: 127.0.0.1
log_level: warning
reload: false
workers: 8
shutdown_grace: 2
webhook_auth: {{kind: shared_secret, in: header, name: X-Token, secret: "${{BENCH_TOKEN}}"}}
delivery: {{lease: {lease}, deadline: 20, max_attempts: 20, initial: 0.2, max: 2, poll_interval: 0.2}}
"""

CONNECTOR = """\
base_url: ${BENCH_ERP_URL}
timeout: {connect: 3, read: 15}
pool: {max_connections: 50}
envelope: {error: [message]}
retry: {max_attempts: 4, backoff: {initial: 0.2, multiplier: 2, max: 1, jitter: true}, deadline: 20}
"""

PIPELINES = """\
pipelines:
  - name: chaos.verified
    source: {kind: webhook, path: /verified, mode: queue, idempotency_key: ref, order_key: line}
    steps:
      - name: saved
        call: erp
        method: POST
        path: /records
        body: {ref: "{{ event.ref }}", line: "{{ event.line }}"}
        verify: {path: /records, query: {ref: "{{ event.ref }}"}, result: "[0]"}
  - name: chaos.plain
    source: {kind: webhook, path: /plain, mode: queue, idempotency_key: ref, order_key: line}
    steps:
      - name: saved
        call: erp
        method: POST
        path: /records
        body: {ref: "{{ event.ref }}", line: "{{ event.line }}"}
"""


# -- the ERP -----------------------------------------------------------------------------------------


def serve_erp(port: int, slow: float, reset: float, seed: int) -> None:
    """The chaotic ERP: POST /records (slow or save-then-reset at random), GET /records?ref=, /stats."""
    from aiohttp import web

    rng = random.Random(seed)
    records: list[dict[str, object]] = []

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        roll = rng.random()
        if roll < slow:
            await asyncio.sleep(rng.uniform(6, 12))
        records.append(body)
        if slow <= roll < slow + reset:
            assert request.transport is not None
            request.transport.abort()  # saved, then the connection resets: no reply
            raise web.HTTPServiceUnavailable()  # never reaches the client
        return web.json_response({"id": len(records), **body}, status=201)

    async def find(request: web.Request) -> web.Response:
        ref = request.query.get("ref")
        return web.json_response([r for r in records if r.get("ref") == ref])

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(dict(Counter(str(r["ref"]) for r in records)))

    app = web.Application()
    app.add_routes([web.post("/records", create), web.get("/records", find), web.get("/stats", stats)])
    print(f"ready {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the run -----------------------------------------------------------------------------------------


class Replica:
    """One `mesbridge run` process that can be killed and started again on the same port."""

    def __init__(self, root: Path, store: str, environ: dict[str, str], log: Path) -> None:
        self.root, self.store, self.environ, self.log = root, store, environ, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(MESBRIDGE), "run", str(self.root), "--port", str(self.port), "--store", self.store],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environ},
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.url} did not start; see {self.log}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def send_all(replicas: list[Replica], events: int) -> list[dict[str, object]]:
    sent = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        todo = iter(range(events))

        async def sender() -> None:
            for n in todo:
                event = {"ref": f"R-{n:06d}", "line": n % 40}
                route = "/verified" if n % 2 == 0 else "/plain"
                for _ in range(50):  # a replica may be down for a moment: send to the next one
                    replica = replicas[(n + _) % len(replicas)]
                    try:
                        async with session.post(
                            replica.url + route, json=event, headers={"X-Token": TOKEN}
                        ) as reply:
                            if reply.status == 202:
                                sent.append({**event, "pipeline": "chaos." + route.strip("/")})
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)

        await asyncio.gather(*(sender() for _ in range(32)))
    return sent


def jobs(store: str) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    with psycopg.connect(store) as conn:
        states = {s: int(n) for s, n in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}
        dead = [
            (p, e, k or "error")
            for p, e, k in conn.execute(
                "SELECT pipeline, payload->'event'->>'ref', kind FROM jobs WHERE state = 'dead'"
            )
        ]
    return states, dead


def run(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mesbridge-chaos-")))
        erp_port = free_port()
        erp = subprocess.Popen(
            [PYTHON, __file__, "--erp", str(erp_port), "--slow", str(args.slow), "--reset", str(args.reset)],
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(erp.terminate)
        assert erp.stdout is not None and erp.stdout.readline().startswith("ready")
        erp_url = f"http://127.0.0.1:{erp_port}"
        store = stack.enter_context(postgres_database(args.postgres))
        root = work / "root"
        (root / "connectors").mkdir(parents=True)
        (root / "mappings" / "chaos").mkdir(parents=True)
        (root / "mesbridge.yaml").write_text(SETTINGS.format(lease=args.lease))
        (root / "connectors" / "erp.yaml").write_text(CONNECTOR)
        (root / "mappings" / "chaos" / "pipelines.yaml").write_text(PIPELINES)
        environ = {"BENCH_ERP_URL": erp_url, "BENCH_TOKEN": TOKEN}
        replicas = [Replica(root, store, environ, work / f"replica-{i}.log") for i in range(args.replicas)]
        for replica in replicas:
            replica.start()
            stack.callback(replica.stop)
        started = time.monotonic()
        rng = random.Random(args.seed)
        stalls: list[float] = []

        async def chaos() -> list[dict[str, object]]:
            sending = asyncio.create_task(send_all(replicas, args.events))
            for _ in range(args.kills):
                await asyncio.sleep(rng.uniform(2, 5))
                victim = rng.choice(replicas)
                held = await asyncio.to_thread(leased, store)
                killed_at = time.monotonic()
                await asyncio.to_thread(victim.kill)
                await asyncio.to_thread(victim.start)
                stalls.append(await asyncio.to_thread(moved_on, store, held, killed_at))
            return await sending

        sent = asyncio.run(chaos())
        while True:
            states, dead = jobs(store)
            if states.get("queued", 0) == 0:
                break
            time.sleep(0.5)
        drained = time.monotonic() - started
        recorded = httpx.get(f"{erp_url}/stats", timeout=10).json()
    dead_refs = {ref for _, ref, _ in dead}
    report = {"events": len(sent), "seconds": round(drained, 1), "lease": args.lease, "kills": args.kills}
    for pipeline in ("chaos.verified", "chaos.plain"):
        refs = [str(e["ref"]) for e in sent if e["pipeline"] == pipeline]
        report[pipeline] = {
            "events": len(refs),
            "lost": sum(1 for r in refs if r not in recorded and r not in dead_refs),
            "duplicated": sum(1 for r in refs if recorded.get(r, 0) > 1),
            "dead letters": dict(Counter(kind for p, _, kind in dead if p == pipeline)),
        }
    report["longest stall after a kill (s)"] = round(max(stalls), 1) if stalls else None
    print(json.dumps(report, indent=2))


def leased(store: str) -> set[tuple[str, str]]:
    """(event id, holder) of every job leased now."""
    with psycopg.connect(store) as conn:
        rows = conn.execute(
            "SELECT event_id, leased_by FROM jobs WHERE state = 'queued' AND leased_by IS NOT NULL"
        )
        return {(e, h) for e, h in rows}


def moved_on(store: str, held: set[tuple[str, str]], killed_at: float) -> float:
    """Seconds from a kill until every job leased at that moment is done or held by another worker:
    the longest any key waited (a slow call of a live worker counts too, an upper bound)."""
    while True:
        still = leased(store) & held
        if not still:
            return time.monotonic() - killed_at
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=15.0, help="delivery.lease of the replicas")
    parser.add_argument("--slow", type=float, default=0.02, help="share of creates answered after 6-12 s")
    parser.add_argument("--reset", type=float, default=0.02, help="share of creates saved, then reset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--erp", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.erp is not None:
        serve_erp(args.erp, args.slow, args.reset, args.seed)
        return
    run(args)


if __name__ == "__main__":
    main()
