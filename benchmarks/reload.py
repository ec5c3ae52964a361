"""Hot reload under load: config edits while `mesbridge run` serves 50 webhook pipelines.

    .venv/bin/python benchmarks/reload.py [--pipelines 50] [--duration 20] [--connections 16]

Generates a config root in a temporary folder (one connector to the stand-in ERP of
benchmarks/standin_erp.py, `--pipelines` synchronous webhook pipelines in as many files, reload on),
starts `mesbridge run` on it, and drives steady load over every pipeline's route from a separate
process (aiohttp, `--connections` keep-alive connections, `--duration` seconds). During the load the
config is rewritten again and again, one edit at a time, each written atomically (temporary file,
then rename) and followed until `/status` reports its reload:

- a valid edit of one pipeline file (its reply changes);
- a valid edit of every pipeline file at once;
- a valid edit of the shared `vars`;
- one invalid edit (a call to an unknown connector), which must be rejected while serving continues,
  then its repair.

Reports the requests served and failed (any non-2xx or connection error; target zero), and for each
reload its result and the time `/status` reports (`last_reload.seconds`: load, validation, build and
swap of all pipelines) beside the time from the write until `/status` showed it (adds the watcher's
debounce). Fails (exit 1) when a request failed or the invalid edit was not rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TOKEN = "reload-token-5f0c2e"

EVENT: dict[str, Any] = {
    "type": "add",
    "sku": "FG-100",
    "workorderNumber": "WO-1000",
    "actCode": "ASSY",
    "workCenterCode": "WC-10",
    "position": 10,
    "validQty": 2,
    "invalidQty": 1,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- config root --------------------------------------------------------------------------------------
def pipeline_file(index: int, edit: int = 0, *, broken: bool = False) -> str:
    """One synchronous webhook pipeline; `edit` changes its reply, `broken` calls an unknown connector."""
    connector = "no_such_erp" if broken else "erp"
    return f"""pipelines:
  - name: bench.p{index:02d}
    description: Operation add -> production report, route {index}
    source: {{kind: webhook, path: /bench/p{index:02d}, mode: sync, deadline: 20}}
    steps:
      - name: report
        call: {connector}
        method: POST
        path: /ALINE_ONE
        body:
          SERIALNAME: "{{{{ event.workorderNumber }}}}"
          PARTNAME: "{{{{ event.sku }}}}"
          ACTNAME: "{{{{ event.actCode }}}}"
          WORKCNAME: "{{{{ event.workCenterCode | lookup(vars.work_centres) }}}}"
          QUANT: "{{{{ event.validQty }}}}"
          DETAILS: "route {index} edit {edit} {{{{ vars.label }}}}"
    reply:
      status: 200
      body: {{externalId: "{{{{ report.FORM | to_str }}}}", edit: {edit}}}
"""


def vars_file(label: str) -> str:
    return f"""vars:
  label: {label}
  work_centres: {{WC1: WC1, WC-10: WC1, WC-20: WC1, WC-30: WC1}}
"""


def write_atomically(path: Path, text: str) -> None:
    """Write beside the file under a name the watcher ignores, then rename over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def make_root(root: Path, pipelines: int, erp_url: str) -> None:
    (root / "connectors").mkdir(parents=True)
    (root / "mappings" / "bench").mkdir(parents=True)
    (root / "mesbridge.yaml").write_text(
        "host: 127.0.0.1\nport: 8600\nstore: sqlite:///reload.db\nlog_level: warning\nreload: true\n"
        "webhook_auth: {kind: shared_secret, in: query, name: token, secret: '${MESBRIDGE_WEBHOOK_TOKEN}'}\n"
    )
    (root / "connectors" / "erp.yaml").write_text(
        f"name: erp\nbase_url: {erp_url}\nheaders: {{Accept: application/json}}\n"
        "timeout: {connect: 5, read: 30}\npool: {max_connections: 100}\n"
        "retry: {max_attempts: 2, deadline: 10}\npagination: {kind: none}\n"
    )
    (root / "mappings" / "bench" / "vars.yaml").write_text(vars_file("v0"))
    for index in range(pipelines):
        (root / "mappings" / "bench" / f"p{index:02d}.yaml").write_text(pipeline_file(index))


# -- processes ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A child process in its own session, stopped with SIGTERM (then SIGKILL) on exit."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield
        finally:
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# -- load generator (its own process) -----------------------------------------------------------------
def loadgen(base: str, pipelines: int, seconds: float, connections: int) -> None:
    """Steady load over every route; prints one JSON line of counts and latencies."""
    import aiohttp

    async def main() -> None:
        statuses: dict[str, int] = {}
        errors: list[str] = []
        latencies: list[float] = []
        body = json.dumps(EVENT).encode()
        stop = time.monotonic() + seconds

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as session:

            async def client(offset: int) -> None:
                index = offset
                while time.monotonic() < stop:
                    url = f"{base}/bench/p{index % pipelines:02d}?token={TOKEN}"
                    index += connections
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            url, data=body, headers={"Content-Type": "application/json"}
                        ) as reply:
                            payload = await reply.read()
                            statuses[str(reply.status)] = statuses.get(str(reply.status), 0) + 1
                            if reply.status != 200 and len(errors) < 20:
                                errors.append(f"{reply.status} {payload[:200]!r}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        statuses["error"] = statuses.get("error", 0) + 1
                        if len(errors) < 20:
                            errors.append(f"{type(exc).__name__}: {exc}")
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(client(n) for n in range(connections)))
        latencies.sort()
        print(
            json.dumps(
                {
                    "statuses": statuses,
                    "errors": errors,
                    "requests": len(latencies),
                    "seconds": seconds,
                    "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0,
                    "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0,
                }
            ),
            flush=True,
        )

    asyncio.run(main())


# -- the run --------------------------------------------------------------------------------------------
def status(base: str) -> dict[str, Any]:
    reply = httpx.get(f"{base}/status", timeout=5)
    reply.raise_for_status()
    return dict(reply.json())


def edit_and_wait(
    base: str, label: str, writes: list[tuple[Path, str]], *, valid: bool = True
) -> dict[str, Any]:
    """Apply the writes, wait for /status to report their reload (a valid edit: a new version
    served; an invalid one: one more `invalid` reload); its figures."""
    before = status(base)
    written = time.perf_counter()
    for path, text in writes:
        write_atomically(path, text)
    seen: dict[str, Any] = {}

    def reported() -> bool:
        state = status(base)
        last = state.get("last_reload") or {}
        if valid:
            done = state["version"] != before["version"] and last.get("version") == state["version"]
        else:
            done = state["reloads"].get("invalid", 0) > before["reloads"].get("invalid", 0)
        if done:
            seen.update(state)
        return done

    wait_until(reported, 30, f"the reload of {label}")
    last = seen["last_reload"]
    return {
        "edit": label,
        "files": len(writes),
        "result": last["result"],
        "reload_s": float(last["seconds"]),
        "write_to_status_s": time.perf_counter() - written,
        "version_changed": seen["version"] != before["version"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--loadgen", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen(args.loadgen, args.pipelines, args.duration, args.connections)
        return
    with tempfile.TemporaryDirectory(prefix="mesbridge-reload-") as tmp:
        folder = Path(tmp)
        root = folder / "root"
        erp_port, port = free_port(), free_port()
        erp_url = f"http://127.0.0.1:{erp_port}/odata"
        make_root(root, args.pipelines, erp_url)
        base = f"http://127.0.0.1:{port}"
        engine = [
            str(Path(PYTHON).parent / "mesbridge"),
            "run",
            str(root),
            "--port",
            str(port),
            "--store",
            f"sqlite:///{folder / 'reload.db'}",
        ]
        env = {"MESBRIDGE_WEBHOOK_TOKEN": TOKEN, "MESBRIDGE_LOG_LEVEL": "warning"}
        with (
            process([PYTHON, str(HERE / "standin_erp.py"), "--port", str(erp_port)], folder / "erp.log"),
            process(engine, folder / "engine.log", env),
        ):
            try:
                wait_until(lambda: status(base)["ready"], 60, "mesbridge run to serve")
                probe = httpx.post(f"{base}/bench/p00?token={TOKEN}", json=EVENT, timeout=10)
                assert probe.status_code == 200, probe.text
                figures = run_edits(args, root, base)
            except BaseException:
                sys.stderr.write((folder / "engine.log").read_text()[-3000:])
                raise
            engine_log = (folder / "engine.log").read_text()
    report(args, figures, engine_log)


def run_edits(args: argparse.Namespace, root: Path, base: str) -> dict[str, Any]:
    """Start the load, make the edits one after another while it runs, collect both."""
    bench = root / "mappings" / "bench"
    load = subprocess.Popen(
        [
            PYTHON,
            __file__,
            "--loadgen",
            base,
            "--pipelines",
            str(args.pipelines),
            "--duration",
            str(args.duration),
            "--connections",
            str(args.connections),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    reloads: list[dict[str, Any]] = []
    edit = 0
    time.sleep(min(2.0, args.duration / 10))
    plan: list[tuple[str, Any]] = [
        ("one pipeline", lambda n: [(bench / "p07.yaml", pipeline_file(7, n))]),
        ("vars", lambda n: [(bench / "vars.yaml", vars_file(f"v{n}"))]),
        (
            f"all {args.pipelines} pipelines",
            lambda n: [(bench / f"p{i:02d}.yaml", pipeline_file(i, n)) for i in range(args.pipelines)],
        ),
        ("invalid (unknown connector)", lambda n: [(bench / "p11.yaml", pipeline_file(11, n, broken=True))]),
        ("repair of the invalid edit", lambda n: [(bench / "p11.yaml", pipeline_file(11, n))]),
    ]
    rounds = 0
    while time.monotonic() - started < args.duration - 3.0 or rounds == 0:
        for label, writes in plan:
            if rounds and time.monotonic() - started > args.duration - 3.0:
                break
            edit += 1
            valid = not label.startswith("invalid")
            reloads.append(edit_and_wait(base, label, writes(edit), valid=valid))
            time.sleep(0.3)
        rounds += 1
    out, _ = load.communicate(timeout=args.duration + 60)
    final = status(base)
    return {"load": json.loads(out.strip().splitlines()[-1]), "reloads": reloads, "status": final}


def report(args: argparse.Namespace, figures: dict[str, Any], engine_log: str) -> None:
    load, reloads = figures["load"], figures["reloads"]
    statuses = load["statuses"]
    failed = sum(count for code, count in statuses.items() if code != "200")
    print(
        f"reload: {args.pipelines} webhook pipelines, {args.connections} connections, "
        f"{args.duration:g} s of load, {len(reloads)} edits"
    )
    print(
        f"requests {load['requests']}  ({load['requests'] / load['seconds']:.0f} req/s)  "
        f"failed {failed}  statuses {statuses}  p50 {load['p50_ms']:.1f} ms  p99 {load['p99_ms']:.1f} ms"
    )
    for error in load["errors"][:5]:
        print(f"  failure: {error}")
    print()
    header = f"{'edit':<30} {'files':>5} {'result':<10} {'reload s':>9} {'write->status s':>16}"
    print(f"{header} {'new version':>12}")
    for r in reloads:
        print(
            f"{r['edit']:<30} {r['files']:>5} {r['result']:<10} {r['reload_s']:>9.3f} "
            f"{r['write_to_status_s']:>16.3f} {'yes' if r['version_changed'] else 'no':>12}"
        )
    applied = [r["reload_s"] for r in reloads if r["result"] == "applied"]
    invalid = [r for r in reloads if r["edit"].startswith("invalid")]
    if applied:
        applied.sort()
        print(
            f"\napplied reloads of {args.pipelines} pipelines: median {applied[len(applied) // 2]:.3f} s, "
            f"max {applied[-1]:.3f} s"
        )
    rejected = all(r["result"] == "invalid" and not r["version_changed"] for r in invalid)
    print(f"invalid edits rejected while serving: {'yes' if rejected and invalid else 'NO'}")
    print(f"failed requests: {failed} (target 0)")
    print(f"reload counts in /status: {figures['status']['reloads']}")
    if "Traceback" in engine_log:
        print("engine log has a traceback:\n" + engine_log[-2000:])
    if failed or not invalid or not rejected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
