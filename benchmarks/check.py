"""Wall time of `mesbridge check .` on the repository's config root, interpreter start included.

    .venv/bin/python benchmarks/check.py [--runs 7] [--root .]

Each run is a fresh subprocess (`mesbridge check ROOT`), so Python's start-up, the imports and the
loading and validation of every connector and mapping are all counted. Prints every run, the best and
the median, alongside `python -c pass` and `mesbridge --help` for scale. Target: best under 1.5 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.5


def _timed(command: list[str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, (done.stdout + done.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--root", type=Path, default=REPO, help="config root (default: the repository)")
    args = parser.parse_args()
    mesbridge = shutil.which("mesbridge", path=str(Path(sys.executable).parent)) or "mesbridge"
    contenders = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mesbridge --help": [mesbridge, "--help"],
        "mesbridge check .": [mesbridge, "check", "."],
    }
    print(f"check: {args.runs} runs each, config root {args.root}")
    print(f"{'command':<20} {'best s':>8} {'median s':>9}  runs")
    results: dict[str, float] = {}
    last = ""
    for name, command in contenders.items():
        times = []
        for _ in range(args.runs):
            seconds, code, output = _timed(command, args.root)
            if code not in (0, 1):
                raise SystemExit(f"{name} exited {code}:\n{output}")
            times.append(seconds)
            last = output if name == "mesbridge check ." else last
        results[name] = min(times)
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"{name:<20} {min(times):>8.3f} {statistics.median(times):>9.3f}  {shown}")
    print(f"mesbridge check said: {last.splitlines()[-1] if last else '(nothing)'}")
    best = results["mesbridge check ."]
    verdict = "meets" if best < TARGET else "misses"
    print(f"best {best:.3f} s {verdict} the {TARGET} s target")


if __name__ == "__main__":
    main()
