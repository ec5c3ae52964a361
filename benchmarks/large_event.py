"""A 1 MiB webhook event, this checkout against a baseline checkout: the cost of the strict door.

    python benchmarks/large_event.py --baseline CHECKOUT [--requests 30] [--rounds 2]

Each contender is `mesbridge run benchmarks/config` (as in webhook.py, against the same stand-in ERP)
and gets the seed Operation "add" event padded to just under 1 MiB, one request at a time on one
kept-alive connection, in two shapes: `objects` (an `items` array of 9,000 small objects: the most
values per byte, the worst case for checking every one) and `strings` (ten 90,000-character strings).
Prints the median and p90 request time of each; contenders alternate, the best round counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from webhook import EVENT, HERE, PYTHON, contender, free_port, process

LIMIT = 1_048_576


def events() -> dict[str, bytes]:
    items = [
        {"sku": f"SKU-{i}", "quantity": i % 17, "price": i * 0.25, "serial": f"SN-{i:08d}", "ok": True}
        for i in range(9000)
    ]
    shapes = {
        "small": EVENT,
        "objects": {**EVENT, "items": items},
        "strings": {**EVENT, "blobs": ["x" * 90_000 for _ in range(10)]},
    }
    bodies = {name: json.dumps(event).encode() for name, event in shapes.items()}
    assert all(len(body) < LIMIT for body in bodies.values()), {k: len(v) for k, v in bodies.items()}
    return bodies


def timings(url: str, body: bytes, requests: int) -> list[float]:
    seconds = []
    with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as client:
        for index in range(requests + 2):
            started = time.perf_counter()
            reply = client.post(url, content=body)
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                raise RuntimeError(f"{reply.status_code} {reply.text[:300]}")
            if index >= 2:  # two warm-up requests
                seconds.append(elapsed)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of mesbridge")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bodies = events()
    print(", ".join(f"{name} {len(body) / 1024:,.0f} KiB" for name, body in bodies.items()))
    erp_port = free_port()
    erp_url = f"http://127.0.0.1:{erp_port}/odata/Priority/tabula.ini/demo"
    best: dict[tuple[str, str], tuple[float, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="mesbridge-bench-") as tmp,
        process([PYTHON, str(HERE / "standin_erp.py"), "--port", str(erp_port)]),
    ):
        for _ in range(args.rounds):
            for name in ("mesbridge", "baseline"):
                with contender(name, erp_url, Path(tmp), args.baseline) as (url, _pid):
                    for shape, body in bodies.items():
                        seconds = sorted(timings(url, body, args.requests))
                        median, p90 = statistics.median(seconds), seconds[int(0.9 * (len(seconds) - 1))]
                        print(
                            f"  {name:<10} {shape:<8} median {median * 1e3:7.2f} ms  p90 {p90 * 1e3:7.2f} ms"
                        )
                        if (name, shape) not in best or median < best[name, shape][0]:
                            best[name, shape] = (median, p90)
    print(f"\n{'shape':<8} {'mesbridge ms':>13} {'baseline ms':>12} {'ratio':>6}")
    for shape in bodies:
        mine, base = best["mesbridge", shape][0], best["baseline", shape][0]
        print(f"{shape:<8} {mine * 1e3:>13.2f} {base * 1e3:>12.2f} {mine / base:>6.2f}")


if __name__ == "__main__":
    main()
