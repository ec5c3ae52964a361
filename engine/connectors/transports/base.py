"""The transport interface: `send(WireRequest) -> WireReply`, and the two ways an attempt can fail.

A transport sends exactly one request, never retries and never follows redirects. It raises `NotSent`
when nothing can have reached the system (connection refused, DNS, TLS, waiting for a pooled
connection) and `NoReply` when the request may have been received but no whole reply came (a read
timeout, a reset). The URL is sent exactly as given: it is already percent-encoded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Headers", "Transport", "WireReply", "WireRequest", "headers_of"]

Headers = CIMultiDictProxy[str]
"""Reply headers: case-insensitive, with every value of a repeated header (`getall("set-cookie")`)."""


def headers_of(pairs: object = ()) -> Headers:
    """Reply headers from a mapping or a list of (name, value) pairs."""
    return CIMultiDictProxy(CIMultiDict(pairs))  # type: ignore[arg-type]


@dataclass(slots=True)
class WireRequest:
    """One request as it goes on the wire."""

    method: str
    url: str
    """Absolute and already percent-encoded; sent as is."""
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    read_timeout: float | None = None
    """Seconds to wait for the reply once sent; None: the transport's own."""


@dataclass(slots=True)
class WireReply:
    """A whole reply: status, headers and body bytes."""

    status: int
    headers: Headers
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.content.decode("utf-8", "replace")


class Transport(ABC):
    """Sends requests to one system; owns its connections until `aclose`."""

    @abstractmethod
    async def send(self, request: WireRequest) -> WireReply:
        """Send one request and read its whole reply; raise `NotSent` or `NoReply` on failure."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close pooled connections; the transport may be used again afterwards."""
