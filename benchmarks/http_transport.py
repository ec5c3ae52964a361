"""Side-by-side: httpx's own async transport against the aiohttp transport, on a local uvicorn app.

    /work/venv/bin/python benchmarks/http_transport.py [--requests 3000] [--concurrency 50]

Each transport sends the same bounded number of small JSON POSTs with the given concurrency through
one pooled httpx.AsyncClient; prints requests per second for each and the ratio. The connector's
default transport (`pool.transport`) was chosen from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from httpx_aiohttp import AiohttpTransport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.sandbox.serve import serve_in_thread


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"Result": body, "Error": None})


APP = Starlette(routes=[Route("/rpc", echo, methods=["POST"])])


async def run(transport: httpx.AsyncBaseTransport, url: str, requests: int, concurrency: int) -> float:
    """Requests per second for `requests` calls with `concurrency` workers."""
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        await client.post(url, json={"warm": True})
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.post(
                    url, json={"Method": "GetAllArticles", "Params": {"n": remaining}}
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    with serve_in_thread(APP) as base:
        url = f"{base}/rpc"
        results = {}
        for name, make in (
            ("httpx", lambda: httpx.AsyncHTTPTransport(limits=limits)),
            ("aiohttp", lambda: AiohttpTransport(limits=limits)),
        ):
            results[name] = asyncio.run(run(make(), url, args.requests, args.concurrency))
            shape = f"{args.requests} requests, concurrency {args.concurrency}"
            print(f"{name:8} {results[name]:8.0f} req/s  ({shape})")
    print(f"aiohttp / httpx: {results['aiohttp'] / results['httpx']:.2f}x")


if __name__ == "__main__":
    main()
