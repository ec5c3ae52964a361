"""Side-by-side: candidate transports under the connector's request path, on a local uvicorn app.

    python benchmarks/http_transport.py [--requests 3000] [--concurrency 50]

The same `Connector` (auth, envelope, retry, records) sends the same bounded number of small JSON
POSTs with the given concurrency over each transport: the production one (`HttpTransport`, HTTP/1.1
on httptools' parser), aiohttp's client (`tests/connectors/reference_transport.py`, the production
transport before it) and a candidate built on `httpx.AsyncHTTPTransport` behind the same `Transport`
interface. Prints calls per second and CPU seconds per call of this process (the server, in a thread
of it, included) for each, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

import httpx
import uvloop
from webhook import HERE, REPO, free_port, process

from engine.connectors import Connector, ConnectorConfig
from engine.connectors.transports import Transport, WireReply, WireRequest
from engine.connectors.transports.base import headers_of
from engine.connectors.transports.default import TransportSettings
from engine.errors import NoReply, NotSent

sys.path.insert(0, str(REPO))  # the reference transport lives with the tests that hold us to it
from tests.connectors.reference_transport import AiohttpTransport  # noqa: E402


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


async def run(transport: Transport | None, base: str, requests: int, concurrency: int) -> tuple[float, float]:
    """Calls per second and CPU µs per call for `requests` connector calls with `concurrency` workers."""
    config = ConnectorConfig.model_validate({"base_url": base, "pool": {"max_connections": concurrency}})
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

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return requests / seconds, cpu / requests * 1e6
    finally:
        await connector.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    contenders = {
        "mesbridge": lambda: None,  # None: the connector's production transport
        "aiohttp": lambda: AiohttpTransport(TransportSettings(max_connections=args.concurrency)),
        "httpx": lambda: HttpxTransport(args.concurrency),
    }
    results = {}
    with process([sys.executable, str(HERE / "standin_erp.py"), "--port", str(port)]):
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(base + "/rpc", json={}, timeout=1)
                break
            time.sleep(0.1)
        for name, make in contenders.items():
            results[name] = uvloop.run(run(make(), base, args.requests, args.concurrency))
            rate, cpu = results[name]
            shape = f"{args.requests} calls, concurrency {args.concurrency}"
            print(f"{name:10} {rate:8.0f} calls/s  cpu {cpu:6.1f} µs/call  ({shape})")
    ours = results["mesbridge"]
    for name in ("aiohttp", "httpx"):
        rate, cpu = results[name]
        print(
            f"mesbridge / {name}: {ours[0] / rate:.2f}x the calls per second, {cpu / ours[1]:.2f}x less CPU"
        )


if __name__ == "__main__":
    main()
