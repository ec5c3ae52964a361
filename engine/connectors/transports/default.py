"""The production transport: HTTP/1.1 over asyncio with httptools' parser, a keep-alive pool per connector.

Written for the request path's cost: a call is one write, one parse and the reply; aiohttp's client,
which it replaces, spent about five times the CPU per call (`benchmarks/webhook.py`, and
tests/connectors/test_transport_reference.py holds the two to the same behaviour on the same replies).

- The URL is sent exactly as the request path built it (no re-quoting, no dot-segment normalisation);
  redirects are not followed; no cookie is kept (a connector that needs a session cookie says so in its
  auth config); no proxy is used; a URL's user and password are sent as Basic auth. A header or URL
  holding a line break is refused, never sent.
- A reply is framed by Content-Length, chunked coding or the end of the connection; 1xx replies are
  skipped; a gzip or deflate body (asked for with Accept-Encoding) is decoded, and the reply cap
  (`max_reply_bytes`) holds for the body as received and as decoded.
- TLS is verified against the system's CAs, or `tls_ca_file`'s, with the host name checked.
- A GET, HEAD or OPTIONS is sent again once, on a new connection, when a pooled keep-alive connection
  turns out closed before any byte of a reply (RFC 9112 §9.3.1); a timeout is not such a close, and a
  PUT, DELETE, POST or PATCH never is (the connector knows whether the call may be repeated).
- Timeouts: `connect` bounds waiting for a place in the pool and opening a connection together, so a
  request is never written with less than `read` left for its reply; `read` is the silence allowed
  once sent, between any two pieces of the reply; connect + read bounds the whole exchange, so a reply
  trickled byte by byte cannot hold a call.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import re
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from engine import __version__
from engine.connectors.transports.base import Transport, WireReply, WireRequest
from engine.errors import CaFileUnloadable, CertificateRefused, NoReply, NotSent

__all__ = ["HttpTransport", "TransportSettings", "load_ca_file"]

KEEP_IDLE = 15.0
"""Seconds a pooled connection may stay idle before it is closed instead of used."""
_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods sent again on a new connection when a pooled one closed unanswered. Not PUT or DELETE: a
call may say `idempotent: false`, which only the connector knows; it repeats them itself."""
_HEAD_LIMIT = 64 * 1024
"""Bytes a reply may take before its head is whole (status line, header fields, interim replies)."""
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT", "TRACE"})
"""Methods that say nothing of a body they do not carry (the others say `Content-Length: 0`)."""
_BODIED = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose request says a Content-Type even without a body."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULTS = (("accept", "Accept", "*/*"), ("accept-encoding", "Accept-Encoding", "gzip, deflate"))


@dataclass(frozen=True)
class TransportSettings:
    """What a connector config says about its connections."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_connections: int = 100
    tls_verify: bool = True
    ca_file: str | None = None
    max_reply_bytes: int = 64 * 1024 * 1024


def load_ca_file(path: str) -> ssl.SSLContext:
    """The TLS context trusting the CA certificates of the PEM file `path` (relative: to the working
    directory); CaFileUnloadable says why it cannot be read or loaded (at start and at a call)."""
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaFileUnloadable(f"tls_ca_file {path} cannot be loaded: {reason}") from None


class _Connection(asyncio.Protocol):
    """One connection: its reply parser and the exchange in progress (one at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, epoch: int) -> None:
        self.loop = loop
        self.limit = limit
        self.epoch = epoch
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_idle = KEEP_IDLE
        """Seconds it may stay idle in the pool: KEEP_IDLE, or less when the server said `Keep-Alive:
        timeout=N` (Apache's default is 5), so that a request is not sent as the server closes it."""
        self._timer: asyncio.TimerHandle | None = None
        self._begin(False)

    def _begin(self, head_request: bool) -> None:
        self.head_request = head_request
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.framed = False
        """The reply says where its body ends (a length, chunked coding, or a status without a body)."""
        self.complete = False
        self.keep = False
        self.error: NoReply | None = None
        self.dropped = False
        """The connection ended (closed or reset) before any byte of the reply."""
        self.received = 0
        """Bytes of the reply received (0: none yet)."""
        self.last_data = self.loop.time()

    # -- the exchange --------------------------------------------------------------------------

    async def exchange(
        self, data: bytes, head_request: bool, read: float, deadline: float, total: float
    ) -> None:
        """Send `data` and wait for the whole reply (status, headers, body); NoReply otherwise."""
        assert self.transport is not None
        self._begin(head_request)
        if not self.usable:  # nothing written: never waited for
            raise NotSent("the connection closed before sending")
        try:
            self.transport.write(data)
        except (RuntimeError, OSError) as exc:  # nothing was written
            self.close()
            raise NotSent(f"the connection closed before sending: {exc}") from None
        self.waiter = self.loop.create_future()
        self._arm(read, deadline, total)
        try:
            await self.waiter
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self.waiter = None

    def _arm(self, read: float, deadline: float, total: float) -> None:
        """Wake at the end of the read silence allowed since the last data, or at the deadline."""
        when = min(self.last_data + read, deadline)
        self._timer = self.loop.call_at(when, self._tick, read, deadline, total)

    def _tick(self, read: float, deadline: float, total: float) -> None:
        now = self.loop.time()
        if now >= deadline - 1e-3:
            self._fail(NoReply(f"no whole reply within {round(total, 2):g} s"))
        elif now - self.last_data >= read - 1e-3:
            self._fail(NoReply(f"nothing within {round(read, 2):g} s after sending"))
        else:
            self._arm(read, deadline, total)

    def _done(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: NoReply) -> None:
        self.close()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep and not self.closed and self.error is None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():  # bytes that answer nothing: unusable
            self.close()
            return
        self.last_data = self.loop.time()
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(NoReply("unreadable reply: the server switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(NoReply(f"unreadable reply: {exc}"))
            return
        if not self.head_done and not self.complete and self.received > _HEAD_LIMIT:
            self.error = NoReply(f"unreadable reply: its head is over {_HEAD_LIMIT} bytes")
        if self.error is not None:
            self._fail(self.error)
        elif self.complete:
            self._done()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.head_done and not self.framed and not self.complete and self.error is None and exc is None:
            self.complete = True  # a body the end of the connection delimits
            self._done()
        elif exc is not None:
            self.dropped = not self.received
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = reason or type(exc).__name__
            self._fail(NoReply(f"the connection was lost ({reason})"))
        elif self.received:
            self._fail(NoReply("unreadable reply: the connection closed before the whole reply"))
        else:
            self.dropped = True
            self._fail(NoReply("the connection closed before the reply"))

    # -- httptools' callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # more after the whole reply answers nothing: never a later call's reply
            self.keep = False
            return
        self.headers = []
        self.body = []
        self.size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete and not self.head_done:  # trailers are not the reply's headers
            self.headers.append(
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            )

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.status = status = self.parser.get_status_code()
        if status < 200:
            return  # an interim reply: the final one follows
        self.head_done = True
        bodiless = status in (204, 304) or self.head_request
        self.framed = bodiless
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == "transfer-encoding":  # chunked last, else the connection's end delimits it
                self.framed = self.framed or value.rpartition(",")[2].strip().lower() == "chunked"
            elif lowered == "content-length":
                self.framed = True
                if not bodiless and value.strip().isdigit() and int(value) > self.limit:
                    self.error = NoReply(f"the reply is over {self.limit} bytes")
            elif lowered == "keep-alive":
                self.keep_idle = _idle_limit(value)
        if self.head_request:  # no body follows, whatever the headers say; the connection is not reused
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.size += len(body)
        if self.size > self.limit:
            self.error = NoReply(f"the reply is over {self.limit} bytes")
        elif self.error is None:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status >= 200 and not self.complete:
            self.complete = True
            self.keep = self.parser.should_keep_alive() and not self.head_request


class HttpTransport(Transport):
    """Requests over pooled HTTP/1.1 connections, at most `max_connections` in use at once."""

    def __init__(
        self,
        settings: TransportSettings,
        name: str = "",
        resolve: Callable[[str], str] = str,
    ) -> None:
        """`resolve` reads the `${VAR}` references of `ca_file` when the first connection opens."""
        self.settings = settings
        self.name = name
        self._resolve = resolve
        self._agent = f"mesbridge/{__version__}"
        self._idle: dict[tuple[str, int, bool], collections.deque[_Connection]] = {}
        self._in_use = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._epoch = 0
        self._context: ssl.SSLContext | None = None

    async def send(self, request: WireRequest) -> WireReply:
        s = self.settings
        read = s.read_timeout if request.read_timeout is None else request.read_timeout
        connect = min(s.connect_timeout, read)
        url, target = _parsed(request.url)
        key = (url.raw_host or "", url.port or 0, url.scheme == "https")
        method = request.method
        data = self._head(method, target, url, request.headers, request.content)
        head_request = method == "HEAD"
        loop = asyncio.get_running_loop()
        connected_by = loop.time() + connect  # the pool wait and the connect: `read` is left to reply
        deadline = connected_by + read
        await self._slot(loop, connected_by, connect)
        try:
            written: NoReply | None = None  # the first attempt's failure, once a request was written
            for again in (False, True):
                try:
                    conn, pooled = await self._connection(
                        loop, key, url, connect, deadline if again else connected_by, again
                    )
                except NotSent:
                    if written is not None:
                        raise written from None  # the first attempt may have reached the system
                    raise
                try:
                    await conn.exchange(data, head_request, read, deadline, connect + read)
                except NoReply as exc:
                    if pooled and conn.dropped and not again and method in _REPEATABLE:
                        written = exc
                        continue  # the pooled connection had closed: a request that applies once
                    raise
                finally:
                    self._put_back(key, conn)
                headers = CIMultiDictProxy(CIMultiDict(conn.headers))
                content = b"".join(conn.body)
                return WireReply(conn.status, headers, _decoded(headers, content, s.max_reply_bytes))
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
        finally:
            self._free()

    def _head(
        self, method: str, target: str, url: URL, headers: dict[str, str], content: bytes | None
    ) -> bytes:
        """The request's head and body as written: the given headers over the transport's own."""
        if not _TOKEN.fullmatch(method):
            raise NotSent(f"invalid method {method!r}")
        given = {name.lower() for name in headers}
        if "content-length" in given or "transfer-encoding" in given:  # the transport frames the body
            if "transfer-encoding" in given:
                raise NotSent("a Transfer-Encoding header is the transport's to send; not sent")
            headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}
            given.discard("content-length")
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in given:
            lines.append(f"Host: {url.host_port_subcomponent}\r\n")
        if url.raw_user is not None and "authorization" not in given:  # http://user:password@host/
            lines.append(f"Authorization: {_basic(url.user or '', url.password or '')}\r\n")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {self._agent}\r\n")
        for lowered, name, value in _DEFAULTS:
            if lowered not in given:
                lines.append(f"{name}: {value}\r\n")
        if content is not None or method not in _BODILESS:  # a given Content-Length was dropped above
            lines.append(f"Content-Length: {len(content or b'')}\r\n")
        if "content-type" not in given and (content is not None or method in _BODIED):
            lines.append("Content-Type: application/octet-stream\r\n")
        count = len(lines) + len(headers)
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        lines.append("\r\n")
        text = "".join(lines)
        if text.count("\n") != count + 1 or text.count("\r") != count + 1 or "\0" in text:
            raise NotSent("a header holds a line break or a NUL; not sent")
        head = text.encode("utf-8")
        return head + content if content else head

    async def _slot(self, loop: asyncio.AbstractEventLoop, deadline: float, within: float) -> None:
        """Take one of the `max_connections` places, waiting until the deadline for one."""
        if self._in_use < self.settings.max_connections and not self._waiting:
            self._in_use += 1
            return
        turn = loop.create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout_at(deadline):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._free()  # handed a place while leaving: pass it on
            else:
                turn.cancel()
            if isinstance(exc, TimeoutError):
                raise NotSent(f"no connection within {within:g} s") from None
            raise

    def _free(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._in_use -= 1

    async def _connection(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, int, bool],
        url: URL,
        connect: float,
        by: float,
        fresh: bool = False,
    ) -> tuple[_Connection, bool]:
        """A pooled connection to the URL's origin (True), or a new one (False) opened by `by`."""
        idle = None if fresh else self._idle.get(key)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < conn.keep_idle:
                return conn, True
            conn.close()
        host, port, tls = key
        context = self._tls() if tls else None
        try:
            if now >= by:
                raise TimeoutError
            async with asyncio.timeout_at(by):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(loop, self.settings.max_reply_bytes, self._epoch),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise NotSent(f"no connection within {connect:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            raise CertificateRefused(f"the TLS certificate of {url.host} was refused: {reason}") from None
        except ssl.SSLError as exc:
            raise NotSent(f"TLS handshake failed: {exc}") from None
        except OSError as exc:
            raise NotSent(f"cannot connect: {exc.strerror or exc}") from None
        conn.transport = transport  # uvloop may say `connection_made` only after this returns
        return conn, False

    def _put_back(self, key: tuple[str, int, bool], conn: _Connection) -> None:
        if not conn.reusable or conn.epoch != self._epoch:
            conn.close()
            return
        now = conn.loop.time()
        conn.idle_since = now
        idle = self._idle.setdefault(key, collections.deque())
        while idle and now - idle[0].idle_since >= idle[0].keep_idle:
            idle.popleft().close()
        idle.append(conn)

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            if not self.settings.tls_verify:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif self.settings.ca_file is None:
                context = ssl.create_default_context()
            else:
                context = load_ca_file(self._resolve(self.settings.ca_file))
            self._context = context
        return self._context

    async def aclose(self) -> None:
        self._epoch += 1  # connections in use now are closed when their exchange ends
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._context = None


def _idle_limit(keep_alive: str) -> float:
    """How long a connection may idle by the server's `Keep-Alive: timeout=N, max=M`: a second short of
    N (its clock and ours differ), at most KEEP_IDLE; KEEP_IDLE when it gives no timeout."""
    for part in keep_alive.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "timeout" and value.strip().isdigit():
            return max(0.0, min(KEEP_IDLE, int(value) - 1.0))
    return KEEP_IDLE


def _basic(user: str, password: str) -> str:
    try:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")
    except UnicodeEncodeError:
        raise NotSent("invalid URL: its user name or password is not Latin-1") from None


def _parsed(url_text: str) -> tuple[URL, str]:
    """The URL and its request target, as given (already percent-encoded); NotSent when unusable."""
    try:
        url = URL(url_text, encoded=True)
        host, _ = url.raw_host, url.explicit_port
    except ValueError as exc:  # a base URL with a port such as 86O2, say
        raise NotSent(f"invalid URL: {str(exc).removeprefix('Invalid URL: ')}") from None
    if url.scheme not in ("http", "https") or not host:
        raise NotSent(f"invalid URL: {url_text} (an http or https URL with a host)")
    target = url.raw_path_qs
    if not target.isprintable() or " " in target:
        raise NotSent("invalid URL: its path holds a space or a control character")
    return url, target


def _decoded(headers: CIMultiDictProxy[str], content: bytes, limit: int) -> bytes:
    """The body without its gzip or deflate coding, at most `limit` bytes decoded; NoReply otherwise."""
    coding = headers.get("content-encoding", "").strip().lower()
    if not content or coding not in ("gzip", "x-gzip", "deflate"):
        return content
    tries = (zlib.MAX_WBITS | 16,) if coding != "deflate" else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for wbits in tries:
        parts: list[bytes] = []
        size = 0
        rest = content
        try:
            while True:  # a gzip body may be several members, one after another (RFC 1952 §2.2)
                decoder = zlib.decompressobj(wbits)
                part = decoder.decompress(rest, limit + 1 - size)
                if decoder.unconsumed_tail or size + len(part) > limit:
                    raise NoReply(f"the reply is over {limit} bytes")
                part += decoder.flush()
                size += len(part)
                parts.append(part)
                if not decoder.eof:
                    raise zlib.error("the compressed body is cut short")
                rest = decoder.unused_data
                if wbits != zlib.MAX_WBITS | 16 or not rest.strip(b"\0"):
                    break
        except zlib.error as exc:
            error = exc
            continue
        if size > limit:
            raise NoReply(f"the reply is over {limit} bytes")
        return b"".join(parts)
    raise NoReply(f"unreadable reply: its {coding} body cannot be decoded ({error})")
