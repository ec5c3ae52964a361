"""The production transport's edges: what it may itself send twice, what it
calls NotSent, and replies it must not read as whole."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct

import pytest

from engine.connectors.transports import WireRequest
from engine.connectors.transports.default import HttpTransport, TransportSettings
from engine.errors import NoReply, NotSent
from tests.connectors.test_transport_reference import read_request, server

pytestmark = pytest.mark.slow
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_a_pooled_request_that_times_out_is_sent_once(method: str):
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while await read_request(reader) is not None:
            seen.append(number)
            if len(seen) > 1:
                await asyncio.sleep(3)  # applied; the reply is late
            writer.write(OK)
            await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(connect_timeout=1, read_timeout=0.3))
        try:
            await transport.send(WireRequest(method, base + "/a"))
            with pytest.raises(NoReply, match="nothing within 0.3 s"):
                await transport.send(WireRequest(method, base + "/a"))
        finally:
            await transport.aclose()
    assert seen == [0, 0]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_put_or_delete_on_a_pooled_connection_closed_unanswered_is_left_to_the_connector(method):
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while await read_request(reader) is not None:
            seen.append(number)
            if len(seen) == 2:
                return  # applied, then the connection closed (the call may say `idempotent: false`)
            writer.write(OK)
            await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            await transport.send(WireRequest(method, base + "/a", {}, b"{}"))
            with pytest.raises(NoReply, match="closed before the reply"):
                await transport.send(WireRequest(method, base + "/a", {}, b"{}"))
        finally:
            await transport.aclose()
    assert seen == [0, 0]


async def test_a_repeat_that_cannot_connect_is_no_reply_since_the_first_was_written():
    listener: list[asyncio.AbstractServer] = []
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while await read_request(reader) is not None:
            seen.append(number)
            if len(seen) == 2:
                listener[0].close()  # the listener goes away, then this connection closes
                await asyncio.sleep(0.01)
                return
            writer.write(OK)
            await writer.drain()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer, 0)
        finally:
            writer.close()

    listener.append(await asyncio.start_server(serve, "127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener[0].sockets[0].getsockname()[1]}"
    transport = HttpTransport(TransportSettings(read_timeout=2))
    try:
        await transport.send(WireRequest("GET", base + "/a"))
        with pytest.raises(NoReply):
            await transport.send(WireRequest("GET", base + "/a"))
    finally:
        await transport.aclose()
        listener[0].close()
    assert seen == [0, 0]


async def test_a_call_that_waited_for_a_place_is_not_written_without_time_for_its_reply():
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        request = await read_request(reader)
        assert request is not None
        seen.append(request.split(b" ", 1)[0])
        await asyncio.sleep(0.9 if request.startswith(b"GET") else 0.1)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(connect_timeout=0.5, read_timeout=0.5, max_connections=1))
        try:
            slow = asyncio.ensure_future(transport.send(WireRequest("GET", base + "/slow", read_timeout=2)))
            await asyncio.sleep(0.01)
            with pytest.raises(NotSent, match="no connection within 0.5 s"):
                await transport.send(WireRequest("POST", base + "/report", {}, b"{}"))
            assert (await slow).status == 200
        finally:
            await transport.aclose()
    assert seen == [b"GET"]


async def test_a_close_delimited_body_cut_by_a_reset_is_no_reply():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nlot,qty\nL1,5\nL2,")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            with pytest.raises(NoReply, match="lost"):
                await transport.send(WireRequest("GET", base + "/lots.csv"))
        finally:
            await transport.aclose()


async def test_a_head_without_end_is_refused_and_trailers_are_not_headers():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(1000):
                writer.write(b"X-Pad: " + b"a" * 1000 + b"\r\n")
                await writer.drain()
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
        await writer.drain()
        await asyncio.sleep(1)

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2, max_reply_bytes=1_000_000))
        try:
            with pytest.raises(NoReply, match="head is over"):
                await transport.send(WireRequest("GET", base + "/a"))
            reply = await transport.send(WireRequest("GET", base + "/a"))
        finally:
            await transport.aclose()
    assert "X-Trailer" not in reply.headers and reply.content == b"{}"


@pytest.mark.parametrize("cut", [False, True])
async def test_a_gzip_body_of_two_members_is_read_whole_and_one_cut_short_is_refused(cut: bool):
    body = b"[" + b",".join(b"%d" % i for i in range(3000)) + b"]"
    coded = gzip.compress(body[:100]) + gzip.compress(body[100:])
    coded = coded[:-10] if cut else coded

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(coded) + coded
        )
        await writer.drain()
        await asyncio.sleep(1)

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            if cut:
                with pytest.raises(NoReply, match="cut short"):
                    await transport.send(WireRequest("GET", base + "/a"))
            else:
                assert (await transport.send(WireRequest("GET", base + "/a"))).content == body
        finally:
            await transport.aclose()


async def test_a_connection_idle_past_the_servers_keep_alive_timeout_is_not_used():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2, max=100\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()  # and it stays open: the server would close it as the next one arrives

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))  # at once: reused
            await asyncio.sleep(1.1)  # past timeout=2 less a second: not reused
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
        finally:
            await transport.aclose()
    assert opened == [0, 1]


async def test_the_transport_frames_the_body_whatever_the_headers_given_say():
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while (request := await read_request(reader)) is not None:
            received.append(request)
            writer.write(OK)
            await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            given = {"content-length": "999", "Content-Type": "application/json"}
            assert (await transport.send(WireRequest("POST", base + "/a", given, b'{"a":1}'))).status == 200
            with pytest.raises(NotSent, match="Transfer-Encoding"):
                await transport.send(
                    WireRequest("POST", base + "/a", {"Transfer-Encoding": "chunked"}, b"{}")
                )
        finally:
            await transport.aclose()
    (request,) = received
    assert b"Content-Length: 7\r\n" in request and b"999" not in request and request.endswith(b'{"a":1}')


async def test_a_head_or_304_over_the_cap_by_its_length_is_read_and_a_non_chunked_coding_reads_to_the_end():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        request = await read_request(reader)
        assert request is not None
        if number == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        elif number == 1:
            writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5000\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n" + b"x" * 50)
            await writer.drain()
            writer.close()
            return
        await writer.drain()
        await asyncio.sleep(1)

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2, max_reply_bytes=1000))
        try:
            head = await transport.send(WireRequest("HEAD", base + "/a"))
            cached = await transport.send(WireRequest("GET", base + "/a"))
            streamed = await transport.send(WireRequest("GET", base + "/a"))
        finally:
            await transport.aclose()
    assert (head.status, head.content, cached.status, cached.content) == (200, b"", 304, b"")
    assert (streamed.status, streamed.content) == (200, b"x" * 50)
