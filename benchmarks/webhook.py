"""Synchronous webhook, side by side: mesbridge, Node-RED 4 and a hand-written Starlette service.

    python benchmarks/webhook.py [--duration 10] [--connections 32] [--rounds 1]
        [--only mesbridge,untraced,node-red,handwritten] [--baseline CHECKOUT]

Every contender serves seed 001's Operation "add" -> Priority production report (POST /ALINE_ONE) ->
`{"externalId"}` against the same fast stand-in ERP (benchmarks/standin_erp.py, its own process), and
gets the same load: wrk with one thread and `--connections` keep-alive connections for `--duration`
seconds after a short warm-up (a small aiohttp load generator in its own process when wrk is absent).

- mesbridge:   `mesbridge run benchmarks/config` (uvicorn, one process, no reload), every event traced;
- untraced:    the same with `MESBRIDGE_TRACES=false`, for what tracing costs;
- node-red:    Node-RED 4 (http in -> function -> http request -> function -> http response), installed
               once with npm into ~/.cache/mesbridge-bench/node-red; settings and flows written here;
- handwritten: benchmarks/handwritten.py (Starlette + aiohttp client) under uvicorn, one process;
- baseline:    with `--baseline CHECKOUT` (another checkout of mesbridge, e.g. made with
               `git worktree add /tmp/base <commit>`), that checkout's engine serving its own
               benchmarks/config with this interpreter, for "no throughput loss against before".

Prints requests per second, p50, p99 and errors for each, and the ratios mesbridge/Node-RED (target
>= 2x throughput with p99 no worse), traced/untraced (target >= 0.9x) and mesbridge/hand-written
(target >= 0.5x): of each contender's best round, and, with `--rounds` over 1, round by round (the two
measured minutes apart at most) with their median, which one lucky round of a shared machine cannot
decide. Contenders run one
after another, never together: the machine has two cores.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
NODE_RED_DIR = (
    Path(os.environ.get("MESBRIDGE_BENCH_CACHE", Path.home() / ".cache/mesbridge-bench")) / "node-red"
)
TOKEN = "bench-token-5f0c2e"
PAT = "7F3C2A9B1D4E4F6A8B0C2D4E6F8A0B1C"
ROUTE = "/priority/operation"
EVENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "config" / "operation-add.json").read_text(encoding="utf-8")
)
"""The seed 001 Operation "add" event every contender maps (shared by the benchmarks)."""
CONTENDERS = ("mesbridge", "untraced", "node-red", "handwritten")


@dataclass
class Result:
    """One contender's figures under load."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = 0.0
    """CPU time (user + system, all threads) the contender's process spent per request, in µs."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(
    command: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session, stopped with SIGTERM (then SIGKILL) on exit."""
    log = tempfile.TemporaryFile()
    child = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield child
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until one real event is answered 200 with an externalId."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.post(url, json=EVENT, timeout=5)
            if reply.status_code == 200 and reply.json().get("externalId"):
                return
            last = f"{reply.status_code} {reply.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready: {last}")


# -- Node-RED -------------------------------------------------------------------------------------
def ensure_node_red() -> Path:
    """Node-RED 4 installed in the cache folder (outside the repository); its red.js."""
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed; Node-RED cannot be benchmarked")
        print(f"installing node-red@4 into {NODE_RED_DIR} ...", flush=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NODE_RED_DIR), "node-red@4"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return red


def node_red_files(folder: Path, port: int, erp_url: str) -> Path:
    """Writes settings.js and flows.json for the benchmark flow; returns the settings file."""
    auth = "Basic " + base64.b64encode(f"{PAT}:PAT".encode()).decode()
    map_in = f"""
const token = (msg.req.query || {{}}).token;
if (token !== {json.dumps(TOKEN)}) {{
    msg.statusCode = 401; msg.payload = {{message: "missing or wrong shared secret in query 'token'"}};
    msg.headers = {{"content-type": "application/json"}};
    return [null, msg];
}}
const e = msg.payload;
const centres = {{"WC1": "WC1", "WC-10": "WC1", "WC-20": "WC1", "WC-30": "WC1"}};
if (typeof e !== "object" || e === null || e.type !== "add" || !(e.workCenterCode in centres)) {{
    msg.statusCode = 422; msg.payload = {{message: "unsupported event"}};
    msg.headers = {{"content-type": "application/json"}};
    return [null, msg];
}}
msg.res_ = msg.res;
msg.payload = {{
    SERIALNAME: e.workorderNumber, PARTNAME: e.sku, ACTNAME: e.actCode,
    WORKCNAME: centres[e.workCenterCode], QUANT: e.validQty, SQUANT: e.invalidQty || 0,
    SERNUM: e.serial === undefined ? null : e.serial,
    DETAILS: `Next Plus ${{e.workorderNumber}}/${{e.actCode}} pos ${{e.position}}`,
}};
msg.method = "POST";
msg.url = {json.dumps(erp_url + "/ALINE_ONE")};
msg.headers = {{"Authorization": {json.dumps(auth)}, "Content-Type": "application/json",
               "Accept": "application/json"}};
return [msg, null];
"""
    map_out = """
const record = msg.payload;
if (msg.statusCode >= 400) {
    const text = (record && record.FORM && record.FORM.InterfaceErrors && record.FORM.InterfaceErrors.text)
        || (record && record.error && record.error.message) || String(record);
    msg.payload = {message: text}; msg.statusCode = 422;
} else {
    msg.payload = {externalId: record && record.FORM != null ? String(record.FORM) : null};
    msg.statusCode = 200;
}
msg.headers = {"content-type": "application/json"};
return msg;
"""
    flows = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {
            "id": "in",
            "type": "http in",
            "z": "tab",
            "url": ROUTE,
            "method": "post",
            "upload": False,
            "wires": [["map_in"]],
        },
        {
            "id": "map_in",
            "type": "function",
            "z": "tab",
            "func": map_in,
            "outputs": 2,
            "wires": [["call"], ["out"]],
        },
        {
            "id": "call",
            "type": "http request",
            "z": "tab",
            "method": "use",
            "ret": "obj",
            "paytoqs": "ignore",
            "url": "",
            "persist": True,
            "wires": [["map_out"]],
        },
        {"id": "map_out", "type": "function", "z": "tab", "func": map_out, "outputs": 1, "wires": [["out"]]},
        {"id": "out", "type": "http response", "z": "tab", "statusCode": "", "headers": {}, "wires": []},
    ]
    (folder / "flows.json").write_text(json.dumps(flows, indent=1))
    settings = folder / "settings.js"
    settings.write_text(
        "module.exports = {\n"
        f"  uiPort: {port}, uiHost: '127.0.0.1', userDir: {json.dumps(str(folder))},\n"
        "  flowFile: 'flows.json', httpAdminRoot: false, httpNodeRoot: '/',\n"
        "  credentialSecret: false, logging: {console: {level: 'warn', metrics: false, audit: false}},\n"
        "  editorTheme: {tours: false}, telemetry: {enabled: false},\n"
        "};\n"
    )
    return settings


# -- load ------------------------------------------------------------------------------------------
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
"""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unreadable latency {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, seconds: float, connections: int, folder: Path) -> tuple[float, float, float, int, int]:
    """rps, p50 ms, p99 ms, requests, errors (socket errors plus non-2xx) from one wrk run."""
    script = folder / "post.lua"
    script.write_text(_WRK_SCRIPT.format(body=json.dumps(EVENT)))
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return rps, p50, p99, requests, errors


def run_loadgen(url: str, seconds: float, connections: int) -> tuple[float, float, float, int, int]:
    """The same figures from the aiohttp load generator, in its own process."""
    done = subprocess.run(
        [
            PYTHON,
            str(Path(__file__)),
            "--loadgen",
            url,
            "--duration",
            str(seconds),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["rps"], data["p50"], data["p99"], data["requests"], data["errors"]


def loadgen(url: str, seconds: float, connections: int) -> None:
    """`connections` keep-alive clients posting EVENT for `seconds`; prints one JSON line of figures."""
    import asyncio

    import aiohttp

    async def main() -> None:
        latencies: list[float] = []
        errors = 0
        body = json.dumps(EVENT).encode()
        stop = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            url, data=body, headers={"Content-Type": "application/json"}
                        ) as r:
                            await r.read()
                            if r.status >= 300:
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(
            json.dumps(
                {
                    "rps": len(latencies) / elapsed,
                    "p50": pick(0.5),
                    "p99": pick(0.99),
                    "requests": len(latencies),
                    "errors": errors,
                }
            )
        )

    asyncio.run(main())


# -- contenders ------------------------------------------------------------------------------------
@contextlib.contextmanager
def contender(
    name: str, erp_url: str, folder: Path, baseline: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Starts one contender; yields its webhook URL and process id once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{ROUTE}?token={TOKEN}"
    env = {"BENCH_ERP_URL": erp_url, "MESBRIDGE_WEBHOOK_TOKEN": TOKEN, "PRIORITY_PAT": PAT}
    if name == "baseline":
        if baseline is None:
            raise ValueError("the baseline contender needs --baseline CHECKOUT")
        command = [
            PYTHON,
            "-m",
            "engine.cli",
            "run",
            str(baseline / "benchmarks" / "config"),
            "--port",
            str(port),
        ]
        command += ["--no-reload", "--store", f"sqlite:///{folder / 'baseline.db'}"]
        env.update(MESBRIDGE_LOG_LEVEL="warning", PYTHONPATH=str(baseline))
        with process(command, env=env, cwd=baseline) as child:
            wait_ready(url)
            yield url, child.pid
        return
    if name in ("mesbridge", "untraced"):
        mesbridge = str(Path(PYTHON).parent / "mesbridge")
        command = [
            mesbridge,
            "run",
            str(HERE / "config"),
            "--port",
            str(port),
            "--no-reload",
            "--store",
            f"sqlite:///{folder / (name + '.db')}",
        ]
        env["MESBRIDGE_LOG_LEVEL"] = "warning"
        env["MESBRIDGE_TRACES"] = "false" if name == "untraced" else "true"
    elif name == "handwritten":
        command = [
            PYTHON,
            "-m",
            "uvicorn",
            "handwritten:app",
            "--app-dir",
            str(HERE),
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    elif name == "node-red":
        red = ensure_node_red()
        nr_dir = folder / "node-red"
        nr_dir.mkdir(exist_ok=True)
        settings = node_red_files(nr_dir, port, erp_url)
        command = ["node", str(red), "--settings", str(settings), "--userDir", str(nr_dir)]
    else:
        raise ValueError(f"unknown contender {name!r}; valid: {', '.join(CONTENDERS)}, baseline")
    with process(command, env=env) as child:
        wait_ready(url)
        yield url, child.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of a process, its threads and the processes it started (the
    trace writer, say: those still running, and those it waited for), from Linux `/proc`; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime, stime, then cutime, cstime: the children that ended and were waited for
    own = sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    try:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:  # a kernel without /proc/PID/task/TID/children: the process alone
        children = []
    return own + sum(cpu_seconds(child) for child in children)


def measure(name: str, url: str, pid: int, seconds: float, connections: int, folder: Path) -> Result:
    use_wrk = shutil.which("wrk") is not None
    load = (
        (lambda s: run_wrk(url, s, connections, folder))
        if use_wrk
        else (lambda s: run_loadgen(url, s, connections))
    )
    load(2)  # warm-up: connection pools, JIT, caches
    before = cpu_seconds(pid)
    rps, p50, p99, requests, errors = load(seconds)
    cpu = (cpu_seconds(pid) - before) / max(requests, 1) * 1e6
    return Result(name, rps, p50, p99, requests, errors, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the side-by-side; the best counts")
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--baseline", type=Path, help="another checkout: adds the `baseline` contender")
    parser.add_argument("--loadgen", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen(args.loadgen, args.duration, args.connections)
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.baseline is not None and "baseline" not in names:
        names.append("baseline")
    erp_port = free_port()
    erp_url = f"http://127.0.0.1:{erp_port}/odata/Priority/tabula.ini/demo"
    best: dict[str, Result] = {}
    rounds: list[dict[str, Result]] = []
    tool = "wrk -t1" if shutil.which("wrk") else "aiohttp load generator"
    print(
        f"webhook: {tool}, {args.connections} connections, {args.duration:g} s each, {args.rounds} round(s)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="mesbridge-bench-") as tmp,
        process([PYTHON, str(HERE / "standin_erp.py"), "--port", str(erp_port)]),
    ):
        folder = Path(tmp)
        for _ in range(args.rounds):
            rounds.append({})
            for name in names:
                with contender(name, erp_url, folder, args.baseline) as (url, pid):
                    result = measure(name, url, pid, args.duration, args.connections, folder)
                print(
                    f"  {name:<12} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  cpu {result.cpu_us:6.0f} µs/req  errors {result.errors}",
                    flush=True,
                )
                rounds[-1][name] = result
                if name not in best or result.rps > best[name].rps:
                    best[name] = result
    print()
    print(
        f"{'contender':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11} {'requests':>9} "
        f"{'errors':>7}"
    )
    for result in best.values():
        print(
            f"{result.name:<12} {result.rps:>9,.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} "
            f"{result.cpu_us:>11.0f} {result.requests:>9} {result.errors:>7}"
        )
    targets = {"node-red": 2.0, "untraced": 0.9, "handwritten": 0.5}
    for theirs, target in targets.items():
        if "mesbridge" in best and theirs in best and len(rounds) > 1:
            each = [r["mesbridge"].rps / r[theirs].rps for r in rounds]
            print(
                f"mesbridge / {theirs} round by round: {', '.join(f'{x:.2f}x' for x in each)}; "
                f"median {statistics.median(each):.2f}x (target >= {target:g}x)"
            )
    mes = best.get("mesbridge")
    if mes and "node-red" in best:
        red = best["node-red"]
        verdict = "no worse" if mes.p99_ms <= red.p99_ms else "worse"
        print(
            f"mesbridge / Node-RED:    throughput {mes.rps / red.rps:.2f}x (target >= 2x), "
            f"p99 {mes.p99_ms:.2f} vs {red.p99_ms:.2f} ms ({verdict})"
        )
    if mes and "untraced" in best:
        bare = best["untraced"]
        print(
            f"traced / untraced:        throughput {mes.rps / bare.rps:.2f}x (target >= 0.9x), "
            f"p99 {mes.p99_ms:.2f} vs {bare.p99_ms:.2f} ms, CPU per request {mes.cpu_us / bare.cpu_us:.2f}x"
        )
    if mes and "baseline" in best:
        base = best["baseline"]
        print(
            f"mesbridge / baseline:     throughput {mes.rps / base.rps:.2f}x, "
            f"p99 {mes.p99_ms:.2f} vs {base.p99_ms:.2f} ms ({args.baseline})"
        )
    if mes and "handwritten" in best:
        hand = best["handwritten"]
        print(
            f"mesbridge / hand-written: throughput {mes.rps / hand.rps:.2f}x (target >= 0.5x), "
            f"p99 {mes.p99_ms:.2f} vs {hand.p99_ms:.2f} ms"
        )


if __name__ == "__main__":
    main()
