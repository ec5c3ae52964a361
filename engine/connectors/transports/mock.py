"""A transport that answers from a function: for `mesbridge test`, `dry-run` and unit tests.

The handler gets each `WireRequest` and returns a `WireReply` (or awaits to one); it may raise
`NotSent` or `NoReply` to play a failure. Nothing leaves the process.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.connectors.transports.base import Transport, WireReply, WireRequest, headers_of

__all__ = ["MockTransport", "reply"]

Handler = Callable[[WireRequest], WireReply | Awaitable[WireReply]]


def reply(
    status: int = 200,
    body: Any = None,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    *,
    raw: str | bytes | None = None,
) -> WireReply:
    """A reply: `body` as JSON, or `raw` text as given (no body when both are None)."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {name.lower() for name, _ in pairs}
    if raw is not None:
        content = raw.encode("utf-8") if isinstance(raw, str) else raw
        if "content-type" not in names:
            pairs.append(("Content-Type", "text/plain; charset=utf-8"))
    elif body is not None:
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if "content-type" not in names:
            pairs.append(("Content-Type", "application/json"))
    else:
        content = b""
    return WireReply(status, headers_of(pairs), content)


class MockTransport(Transport):
    """Answers every request with `handler(request)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def send(self, request: WireRequest) -> WireReply:
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        assert isinstance(answer, WireReply), f"a mock handler must return a WireReply, got {answer!r}"
        return answer

    async def aclose(self) -> None:
        """Nothing to close."""
