"""Backfill: every Priority work order polled into Next Plus once, with the engine's peak memory.

    .venv/bin/python benchmarks/backfill.py [--size 50000] [--timeout 1800]

The Priority simulator (size `--size`) and the Next Plus simulator run in this process; the engine
runs as `mesbridge run` on the repository's config root in its own process with only the priority
binding enabled, so its work-order poll pipeline (priority.workorders) pages through SERIAL and its
queue workers create the Next Plus work orders. Waits until Next Plus holds every eligible order,
then asserts none is lost or duplicated (by workorderNumber) and reports the throughput and the engine's
peak RSS (VmHWM from /proc/<pid>/status; target under 200 MB).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sandbox import nextplus, priority
from sandbox.serve import serve_in_thread

REPO = Path(__file__).resolve().parents[1]
SOURCE = "PRIORITY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    started = time.perf_counter()
    erp_app = priority.create_app(size=args.size, seed=1)
    mes_app = nextplus.create_app(size=0, seed=1)
    erp = erp_app.state.simulator
    mes = mes_app.state.simulator
    skip = {"בהכנה"}  # vars.skip_statuses of the Priority binding
    expected: set[str] | None = {
        r["SERIALNAME"] for r in erp.store.tables["SERIAL"] if r.get("SERIALSTATUSDES") not in skip
    }
    print(f"backfill: {args.size} Priority work orders generated in {time.perf_counter() - started:.1f} s")
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mesbridge-backfill-") as tmp:
        erp_url = stack.enter_context(serve_in_thread(erp_app))
        mes_url = stack.enter_context(serve_in_thread(mes_app))
        env = {
            **os.environ,
            "PRIORITY_URL": erp_url + "/odata/Priority/tabula.ini/demo",
            "NEXTPLUS_URL": mes_url,
            "MESBRIDGE_WEBHOOK_TOKEN": "backfill-token",
            "MESBRIDGE_BINDINGS": "priority",
            "MESBRIDGE_LOG_LEVEL": "warning",
        }
        engine = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mesbridge"),
                "run",
                str(REPO),
                "--port",
                str(free_port()),
                "--no-reload",
                "--store",
                f"sqlite:///{Path(tmp) / 'backfill.db'}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "engine.log", "w"),  # noqa: SIM115
        )
        began = time.perf_counter()
        last, stable = -1, time.perf_counter()
        peak = 0.0
        try:
            while time.perf_counter() - began < args.timeout:
                time.sleep(1.0)
                if engine.poll() is not None:
                    raise SystemExit(
                        f"the engine exited {engine.returncode}:\n"
                        + (Path(tmp) / "engine.log").read_text()[-2000:]
                    )
                peak = max(peak, peak_rss_mb(engine.pid))
                count = sum(1 for w in list(mes.workorders.values()) if w.get("source") == SOURCE)
                if count != last:
                    last, stable = count, time.perf_counter()
                    print(
                        f"  {time.perf_counter() - began:6.1f} s  {count} work orders in Next Plus, "
                        f"engine peak RSS {peak:.0f} MB",
                        flush=True,
                    )
                elif count and time.perf_counter() - stable > 15:
                    break
            elapsed = stable - began
        finally:
            engine.terminate()
            engine.wait(30)
    numbers = Counter(w["workorderNumber"] for w in mes.workorders.values() if w.get("source") == SOURCE)
    duplicates = [n for n, c in numbers.items() if c > 1]
    print(f"{'work orders':<24}{len(numbers)}")
    print(f"{'duplicated':<24}{len(duplicates)}")
    if expected is not None:
        print(f"{'lost':<24}{len(expected - set(numbers))}")
    print(f"{'seconds':<24}{elapsed:.1f}")
    print(f"{'work orders / s':<24}{len(numbers) / max(elapsed, 1e-9):.0f}")
    print(f"{'engine peak RSS MB':<24}{peak:.0f} (target < 200)")
    assert not duplicates, duplicates[:10]
    if expected is not None:
        assert expected <= set(numbers), sorted(expected - set(numbers))[:10]


if __name__ == "__main__":
    main()
