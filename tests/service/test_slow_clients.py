"""Slow and vanished clients, over raw sockets: a request head or body that does not arrive in time is
a 408 and a closed connection, whatever trickles in meanwhile; a client gone mid-body is one info line.
Both HTTP protocols the service may run (httptools, and h11 when httptools is absent) are tested."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.service import server

from .conftest import TOKEN, Sims, running, wait_for, write_root

HEADER_TIMEOUT, BODY_TIMEOUT = 0.5, 1.0
HEAD = f"POST /wo-sync?token={TOKEN} HTTP/1.1\r\nHost: mesbridge\r\nContent-Type: application/json\r\n"
EVENT = b'{"workorderNumber": "SLOW-1", "sku": "S", "quantity": 1}'


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    """From connecting to the connection's end."""


@dataclass
class Target:
    port: int

    async def send(self, *parts: bytes, every: float = 0.0, close: bool = False) -> Reply | None:
        """Send `parts` (one each `every` seconds, until the server closes), then read to the end.

        None when the server closed without a reply; `close` closes our side after sending."""
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def write() -> None:
            with contextlib.suppress(ConnectionError):
                for part in parts:
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(every)
                if close:
                    writer.close()

        writing = asyncio.create_task(write())
        try:
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writing.cancel()
            writer.close()
        seconds = time.monotonic() - started
        if not data:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        return Reply(int(status_line.split()[1]), headers, body, seconds)


@pytest.fixture(params=["httptools", "h11"])
async def target(
    request: pytest.FixtureRequest, tmp_path: Path, sims: Sims, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Target]:
    monkeypatch.setattr(server, "_loop_options", lambda: {"loop": "asyncio", "http": request.param})
    settings = {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT}
    async with running(write_root(tmp_path, settings=settings), sims) as host:
        yield Target(int(host.url.rsplit(":", 1)[1]))


async def read_one(reader: asyncio.StreamReader) -> int:
    """The status of one reply on a kept-alive connection (its body read by Content-Length)."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").split("\r\n")
    length = next(int(line.split(":")[1]) for line in head if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(head[0].split()[1])


def assert_timed_out(reply: Reply | None, message: str, limit: float) -> None:
    assert reply is not None
    assert (reply.status, json.loads(reply.body)) == (408, {"message": message})
    assert reply.headers["connection"] == "close"
    assert limit <= reply.seconds < limit + 2.0, reply.seconds


async def test_partial_headers_get_408_at_the_header_deadline(target: Target) -> None:
    reply = await target.send(HEAD.encode())
    assert_timed_out(reply, "request headers not received within 0.5 s", HEADER_TIMEOUT)


async def test_headers_trickled_do_not_move_the_deadline(target: Target) -> None:
    trickle = [bytes([b]) for b in HEAD.encode()]
    reply = await target.send(*trickle, every=0.05)
    assert_timed_out(reply, "request headers not received within 0.5 s", HEADER_TIMEOUT)


async def test_a_silent_connection_is_closed_at_the_header_deadline(target: Target) -> None:
    started = time.monotonic()
    assert await target.send() is None
    assert HEADER_TIMEOUT <= time.monotonic() - started < HEADER_TIMEOUT + 2.0


async def test_a_partial_body_left_idle_gets_408_at_the_body_deadline(target: Target) -> None:
    reply = await target.send(f"{HEAD}Content-Length: 100\r\n\r\n".encode() + EVENT[:10])
    assert_timed_out(reply, "request body not received within 1 s", BODY_TIMEOUT)


async def test_a_body_trickled_gets_408_at_the_body_deadline(target: Target) -> None:
    head = f"{HEAD}Content-Length: {len(EVENT)}\r\n\r\n".encode()
    reply = await target.send(head, *(bytes([b]) for b in EVENT), every=0.2)
    assert_timed_out(reply, "request body not received within 1 s", BODY_TIMEOUT)


async def test_a_reply_before_the_body_arrived_closes_the_connection(target: Target) -> None:
    head = b"POST /nowhere HTTP/1.1\r\nHost: mesbridge\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    reply = await target.send(head, b"{", *(b" " for _ in range(200)), every=0.1)
    assert reply is not None and reply.status == 404
    assert reply.seconds < HEADER_TIMEOUT  # closed at the reply, not at a deadline


async def test_deadlines_leave_kept_alive_connections_and_slow_pipelines_alone(
    target: Target, sims: Sims
) -> None:
    sims.faults("nextplus", latency=HEADER_TIMEOUT + 0.3)  # the ERP outlasts the header deadline
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        for number in ("KEEP-1", "KEEP-2"):
            body = json.dumps({"workorderNumber": number, "sku": "S", "quantity": 1}).encode()
            writer.write(f"{HEAD}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert await read_one(reader) == 201
            await asyncio.sleep(HEADER_TIMEOUT + 0.2)  # idle longer than the header deadline, kept alive
    finally:
        writer.close()
    assert sorted(sims.workorders("KEEP-")) == ["KEEP-1", "KEEP-2"]


async def test_a_client_gone_mid_body_is_one_info_line(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert await target.send(f"{HEAD}Content-Length: 100\r\n\r\n".encode() + EVENT[:10], close=True) is None
    gone = "client disconnected before sending the whole body"
    assert await wait_for(lambda: any(r.getMessage() == gone for r in caplog.records), 5)
    records = [r for r in caplog.records if r.getMessage() == gone]
    assert [(r.levelname, r.exc_info) for r in records] == [("INFO", None)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
