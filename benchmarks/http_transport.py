"""Side-by-side: candidate transports under the connector's request path, on a local uvicorn app.

    python benchmarks/http_transport.py [--requests 3000] [--concurrency 50]

The same `Connector` (auth, envelope, retry, records) sends the same bounded number of small JSON
POSTs with the given concurrency over each transport: the production one (`AiohttpTransport`, a
pooled aiohttp session) and a candidate built on `httpx.AsyncHTTPTransport` behind the same
`Transport` interface. Prints calls per second for each and the ratio; the production transport was
chosen from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.connectors import Connector, ConnectorConfig
from engine.connectors.transports import Transport, WireReply, WireRequest
from engine.connectors.transports.base import headers_of
from engine.errors import NoReply, NotSent
from sandbox.serve import serve_in_thread


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"Result": body, "Error": None})


APP = Starlette(routes=[Route("/rpc", echo, methods=["POST"])])


class HttpxTransport(Transport):
    """The candidate: httpx's own pooled transport behind the same interface."""

    def __init__(self, limit: int) -> None:
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(limits=limits), timeout=30)

    async def send(self, request: WireRequest) -> WireReply:
        try:
            response = await self.client.request(
                request.method, request.url, headers=request.headers, content=request.content
            )
        except httpx.ConnectError as exc:
            raise NotSent(str(exc)) from exc
        except httpx.TransportError as exc:
            raise NoReply(str(exc)) from exc
        return WireReply(response.status_code, headers_of(response.headers.multi_items()), response.content)

    async def aclose(self) -> None:
        await self.client.aclose()


async def run(transport: Transport | None, base: str, requests: int, concurrency: int) -> float:
    """Calls per second for `requests` connector calls with `concurrency` workers."""
    config = ConnectorConfig.model_validate(
        {"base_url": base, "pool": {"max_connections": concurrency}, "envelope": {"result": "Result"}}
    )
    connector = Connector("bench", config, environ={}, transport=transport)
    try:
        await connector.request("POST", "/rpc", body={"warm": True})
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await connector.request(
                    "POST", "/rpc", body={"Method": "GetAllArticles", "Params": {"n": remaining}}
                )

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)
    finally:
        await connector.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with serve_in_thread(APP) as base:
        results = {}
        for name, make in (
            ("httpx", lambda: HttpxTransport(args.concurrency)),
            ("aiohttp", lambda: None),  # None: the connector's production transport
        ):
            results[name] = asyncio.run(run(make(), base, args.requests, args.concurrency))
            shape = f"{args.requests} calls, concurrency {args.concurrency}"
            print(f"{name:8} {results[name]:8.0f} calls/s  ({shape})")
    print(f"aiohttp / httpx: {results['aiohttp'] / results['httpx']:.2f}x")


if __name__ == "__main__":
    main()
