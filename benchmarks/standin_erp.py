"""A fast stand-in ERP for the webhook benchmark: answers every POST with 201 and a Priority-like record.

    .venv/bin/python benchmarks/standin_erp.py --port 8691

Raw asyncio (uvloop) with httptools' parser and HTTP/1.1 keep-alive, so it costs the contenders as
little CPU as possible: the reply is the posted JSON object with the record's `FORM` (a running
number) and `KLINE` spliced in front, without parsing it. Prints `ready <port>` once listening;
SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from typing import Any

import httptools
import uvloop

_COUNTER = itertools.count(1)


class _Protocol(asyncio.Protocol):
    """One client connection; any number of keep-alive requests."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        posted = b"".join(self.body).strip()
        number = next(_COUNTER)
        head = b'{"FORM":%d,"KLINE":1' % number
        if posted.startswith(b"{") and len(posted) > 2:
            payload = head + b"," + posted[1:]
        else:
            payload = head + b"}"
        status = b"201 Created" if self.parser.get_method() == b"POST" else b"200 OK"
        keep = self.parser.should_keep_alive()
        self.transport.write(
            b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, len(payload), b"" if keep else b"Connection: close\r\n", payload)
        )
        if not keep:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8691)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
