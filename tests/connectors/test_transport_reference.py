"""The production transport against aiohttp's client (the reference) on the same replies, and its
pool, framing and refusals over real sockets.

The differential test serves each generated reply (status, repeated headers, a body framed by
Content-Length, chunked coding or the connection's end, gzip or deflate, an interim 100 first, written
in arbitrary pieces) to both transports and requires the same status, headers and body, and the same
request on the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.connectors.transports import Transport, WireRequest
from engine.connectors.transports.default import HttpTransport, TransportSettings
from engine.errors import NoReply, NotSent
from tests.connectors.reference_transport import AiohttpTransport

pytestmark = pytest.mark.slow

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One whole request (head and Content-Length body), or None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server on loopback; `handle(reader, writer, connection number)` serves each connection.
    Yields its base URL and the list of connection numbers opened so far."""
    opened: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(len(opened))
        try:
            await handle(reader, writer, opened[-1])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", opened
    finally:
        listener.close()


def http(transport: Transport) -> HttpTransport:
    assert isinstance(transport, HttpTransport)
    return transport


# -- the differential test ----------------------------------------------------------------------

NAMES = st.sampled_from(["X-Id", "x-id", "Set-Cookie", "Retry-After", "Location", "X-Empty"])
VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12)
REPLIES = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 201, 204, 400, 404, 409, 500, 503]),
        "headers": st.lists(st.tuples(NAMES, VALUES), max_size=4),
        "body": st.binary(max_size=300),
        "framing": st.sampled_from(["length", "chunked", "close"]),
        "coding": st.sampled_from(["identity", "gzip", "deflate", "raw-deflate"]),
        "interim": st.booleans(),
        "cuts": st.lists(st.integers(min_value=1, max_value=400), max_size=4),
        "method": st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
        "content": st.one_of(st.none(), st.binary(max_size=80)),
        "typed": st.booleans(),
        "userinfo": st.sampled_from(["", "user:secret@", "u%40x:p%3Aw@", "only@"]),
    }
)


def reply_bytes(reply: dict) -> bytes:
    body: bytes = reply["body"] if reply["status"] != 204 else b""
    headers = list(reply["headers"])
    if body and reply["coding"] != "identity":
        if reply["coding"] == "gzip":
            body = gzip.compress(body)
        elif reply["coding"] == "deflate":
            body = zlib.compress(body)
        else:
            compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
        headers.append(("Content-Encoding", "deflate" if "deflate" in reply["coding"] else "gzip"))
    framing = reply["framing"] if reply["status"] != 204 else "length"
    if framing == "length":
        if reply["status"] != 204:
            headers.append(("Content-Length", str(len(body))))
        payload = body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        pieces = [body[i : i + 50] for i in range(0, len(body), 50)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    else:
        headers.append(("Connection", "close"))
        payload = body
    head = f"HTTP/1.1 {reply['status']} Whatever\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if reply["interim"] else b""
    return interim + head.encode() + b"\r\n" + payload


async def exchange(transport: Transport, reply: dict) -> tuple[tuple, bytes]:
    """The reply the transport read, and the request the server received."""
    data = reply_bytes(reply)
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        request = await read_request(reader)
        assert request is not None
        received.append(request)
        start = 0
        for cut in sorted(set(reply["cuts"])):
            writer.write(data[start:cut])
            await writer.drain()
            await asyncio.sleep(0)
            start = cut
        writer.write(data[start:])
        await writer.drain()
        if reply["framing"] == "close":
            writer.close()
        else:
            await read_request(reader)  # keep the connection open until the client is done

    async with server(handle) as (base, _):
        headers = {"Content-Type": "application/json"} if reply["typed"] else {}
        url = base.replace("//", "//" + reply["userinfo"]) + "/api/x%20y?q=a%2Fb"
        request = WireRequest(reply["method"], url, headers, reply["content"])
        try:
            got = await transport.send(request)
        finally:
            await transport.aclose()
    result = (got.status, list(got.headers.items()), got.content)
    return result, received[0]


def normalised(request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = request.partition(b"\r\n\r\n")
    line, *fields = head.split(b"\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(b":")
        headers[name.strip().lower()] = value.strip()
    assert headers.pop(b"host").startswith(b"127.0.0.1:")  # each server has a port of its own
    return line, headers, body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=REPLIES)
def test_the_transport_reads_every_reply_as_aiohttp_does(reply):
    async def both() -> tuple:
        ours = await exchange(HttpTransport(TransportSettings(read_timeout=5)), reply)
        theirs = await exchange(AiohttpTransport(TransportSettings(read_timeout=5)), reply)
        return ours, theirs

    (ours, our_request), (theirs, their_request) = asyncio.run(both())
    assert ours == theirs
    ours_sent, theirs_sent = normalised(our_request), normalised(their_request)
    assert ours_sent[0] == theirs_sent[0] == f"{reply['method']} /api/x%20y?q=a%2Fb HTTP/1.1".encode()
    assert ours_sent[2] == theirs_sent[2] == (reply["content"] or b"")
    assert ours_sent[1] == theirs_sent[1]


# -- the pool and the repeat rule ---------------------------------------------------------------


def keep_alive_then(after_first: str) -> Handler:
    """Answers the first request on connection 0 with keep-alive, then `after_first`: `drop` reads the
    next request and closes without a reply; every later connection answers each request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while (request := await read_request(reader)) is not None:
            served.append((number, request.split(b" ", 1)[0]))
            if number == 0 and len([n for n, _ in served if n == 0]) == 2 and after_first == "drop":
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    served: list[tuple[int, bytes]] = []
    handle.served = served  # type: ignore[attr-defined]
    return handle


async def test_a_get_on_a_pooled_connection_closed_unanswered_is_sent_again_on_a_new_one():
    handle = keep_alive_then("drop")
    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings())
        try:
            assert (await transport.send(WireRequest("GET", base + "/a"))).status == 200
            assert (await transport.send(WireRequest("GET", base + "/a"))).status == 200
        finally:
            await transport.aclose()
    assert handle.served == [(0, b"GET"), (0, b"GET"), (1, b"GET")]  # type: ignore[attr-defined]
    assert opened == [0, 1]


async def test_a_post_on_a_pooled_connection_closed_unanswered_is_uncertain_and_sent_once():
    handle = keep_alive_then("drop")
    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings())
        try:
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
            with pytest.raises(NoReply, match="the connection closed before the reply"):
                await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
        finally:
            await transport.aclose()
    assert handle.served == [(0, b"POST"), (0, b"POST")]  # type: ignore[attr-defined]


async def test_a_pooled_connection_the_server_closed_while_idle_is_not_used():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()  # then closed, without saying so in the reply

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings())
        try:
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
            await asyncio.sleep(0.1)  # the end of the connection arrives while it is idle
            assert (await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))).status == 200
        finally:
            await transport.aclose()
    assert opened == [0, 1]


async def test_connections_are_reused_and_at_most_max_connections_are_open_at_once():
    active = 0
    peak = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        nonlocal active, peak
        while await read_request(reader) is not None:
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.02)
            active -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings(max_connections=2))
        try:
            replies = await asyncio.gather(
                *(transport.send(WireRequest("GET", base + "/a")) for _ in range(10))
            )
        finally:
            await transport.aclose()
    assert [reply.status for reply in replies] == [200] * 10
    assert peak == 2 and len(opened) == 2
    assert http(transport)._in_use == 0


async def test_waiting_for_a_pooled_connection_ends_as_not_sent_and_a_cancelled_call_frees_its_place():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings(max_connections=1, connect_timeout=0.1, read_timeout=5))
        try:
            first = asyncio.ensure_future(transport.send(WireRequest("GET", base + "/slow")))
            await asyncio.sleep(0.05)
            second = WireRequest("GET", base + "/b", read_timeout=0.2)
            with pytest.raises(NotSent, match=r"no connection within 0\.1 s"):
                await transport.send(second)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            assert http(transport)._in_use == 0 and not any(http(transport)._idle.values())
        finally:
            await transport.aclose()
    assert opened == [0]  # the waiting call never opened a connection


async def test_a_reply_trickled_byte_by_byte_ends_at_connect_plus_read():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(connect_timeout=0.2, read_timeout=0.3))
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(NoReply, match=r"no whole reply within 0\.5 s"):
                await transport.send(WireRequest("GET", base + "/a"))
        finally:
            await transport.aclose()
    assert asyncio.get_running_loop().time() - started < 1.5


# -- replies and requests it refuses ------------------------------------------------------------


async def test_a_compressed_reply_over_the_cap_once_decoded_is_refused():
    bomb = gzip.compress(b"0" * 200_000)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
        )
        await writer.drain()

    async with server(handle) as (base, _):
        for limit, fails in ((100_000, True), (200_000, False)):
            transport = HttpTransport(TransportSettings(max_reply_bytes=limit))
            try:
                if fails:
                    with pytest.raises(NoReply, match="the reply is over 100000 bytes"):
                        await transport.send(WireRequest("GET", base + "/a"))
                else:
                    assert (await transport.send(WireRequest("GET", base + "/a"))).content == b"0" * limit
            finally:
                await transport.aclose()


async def test_a_reply_over_the_cap_by_its_length_or_its_bytes_is_refused():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000)
        await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(max_reply_bytes=1000))
        try:
            for _ in range(2):
                with pytest.raises(NoReply, match="the reply is over 1000 bytes"):
                    await transport.send(WireRequest("GET", base + "/a"))
        finally:
            await transport.aclose()


@pytest.mark.parametrize(
    "request_",
    [
        WireRequest("POST", "http://127.0.0.1:9/a", {"X-Id": "1\r\nX-Injected: yes"}, b"{}"),
        WireRequest("POST", "http://127.0.0.1:9/a", {"X-Id\nX-Injected": "yes"}, b"{}"),
        WireRequest("POST", "http://127.0.0.1:9/a b", {}, b"{}"),
        WireRequest("POST", "http://127.0.0.1:9/a\r\nX: y", {}, b"{}"),
        WireRequest("PO ST", "http://127.0.0.1:9/a", {}, b"{}"),
        WireRequest("GET", "ftp://127.0.0.1:9/a"),
    ],
    ids=["header-value", "header-name", "space-in-path", "crlf-in-path", "method", "scheme"],
)
async def test_a_request_that_would_change_on_the_wire_is_refused_unsent(request_: WireRequest):
    transport = HttpTransport(TransportSettings())
    with pytest.raises(NotSent):
        await transport.send(request_)
    assert http(transport)._in_use == 0


async def test_a_head_reply_with_a_length_has_no_body_and_a_204_has_none_either():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while (request := await read_request(reader)) is not None:
            if request.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            head = await transport.send(WireRequest("HEAD", base + "/a"))
            empty = await transport.send(WireRequest("DELETE", base + "/a"))
        finally:
            await transport.aclose()
    assert (head.status, head.content, head.headers["Content-Length"]) == (200, b"", "42")
    assert (empty.status, empty.content) == (204, b"")


async def test_an_unreadable_reply_is_no_reply():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        await writer.drain()
        writer.close()

    async with server(handle) as (base, _):
        transport = HttpTransport(TransportSettings())
        try:
            with pytest.raises(NoReply, match="unreadable reply"):
                await transport.send(WireRequest("GET", base + "/a"))
        finally:
            await transport.aclose()


async def test_bytes_after_a_whole_reply_are_never_the_next_calls_reply():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while await read_request(reader) is not None:
            reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
            extra = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nstale" if number == 0 else b""
            writer.write(reply + extra)  # in one piece: a server answering twice
            await writer.drain()

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings())
        try:
            replies = [await transport.send(WireRequest("GET", base + "/a")) for _ in range(2)]
        finally:
            await transport.aclose()
    assert [(reply.status, reply.content) for reply in replies] == [(200, b"first")] * 2
    assert opened == [0, 1]


async def test_a_pooled_connection_closed_under_the_transport_is_not_used():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with server(handle) as (base, opened):
        transport = HttpTransport(TransportSettings(read_timeout=2))
        try:
            await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))
            (idle,) = http(transport)._idle.values()
            assert idle[0].transport is not None
            idle[0].transport.close()  # closed, and the connection not yet told
            assert (await transport.send(WireRequest("POST", base + "/a", {}, b"{}"))).status == 200
        finally:
            await transport.aclose()
    assert opened == [0, 1]
