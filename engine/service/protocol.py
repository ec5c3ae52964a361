"""uvicorn's HTTP/1.1 protocols with a deadline for the request head, which uvicorn lacks.

A client has `header_timeout` seconds, from connecting or from the first byte of a request on a kept-
alive connection, to send the whole request line and headers. Past it, a client that sent part of a
head is answered 408 and the connection is closed; one that sent nothing is closed. A response given
before the request's body has fully arrived closes the connection too, so a body trickled after a
refusal cannot keep it open. (The body's own deadline is the webhook handler's, `read_body`.)

    protocol_class("httptools", 10.0)   # or "h11": a class for `uvicorn.Config(http=...)`
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

log = logging.getLogger("mesbridge.service")

__all__ = ["protocol_class"]


def _timeout_reply(seconds: float) -> bytes:
    body = json.dumps({"message": f"request headers not received within {seconds:g} s"}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HeadDeadline:
    """The deadline of one connection's request head; mixed into a uvicorn protocol class."""

    header_timeout: float = 10.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _head_timer: asyncio.TimerHandle | None = None
    _head_begun = False
    """Bytes of the current head arrived (a 408 is owed), not only the connection."""

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_begun = False

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            log.info("request headers not received within %g s; connection closed", self.header_timeout)
            self.transport.write(_timeout_reply(self.header_timeout))
        self.transport.close()

    def _close_if_body_pending(self) -> None:
        """After a response: close when the request's body has not fully arrived."""
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self.transport.close()


def protocol_class(http: str, header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's `httptools` or `h11` protocol with the head deadline of `header_timeout` seconds."""
    base = _httptools() if http == "httptools" else _h11()
    return type(base.__name__, (base,), {"header_timeout": header_timeout})


def _httptools() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsHeadDeadline(_HeadDeadline, HttpToolsProtocol):
        """httptools: the parser's message-begin and headers-complete callbacks bound the head."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_begun = True
            self._arm_head()

        def on_headers_complete(self) -> None:
            self._disarm_head()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._close_if_body_pending()

    return HttpToolsHeadDeadline


def _h11() -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11HeadDeadline(_HeadDeadline, H11Protocol):
        """h11: the head is pending while the client's side of the connection is IDLE."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._head_begun = True
                self._arm_head()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._close_if_body_pending()

    return H11HeadDeadline
