"""A mock backend for connectors: canned responses in order, and a record of every call made."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from engine.connectors.transports import WireReply, WireRequest
from engine.connectors.transports.mock import MockTransport, reply
from engine.connectors.urls import split_call
from engine.errors import NoReply, NotSent
from engine.pipeline.models import MockResponse
from engine.redaction import Redactor

__all__ = ["MockBackend", "RecordedCall"]


@dataclass
class RecordedCall:
    """One outgoing request, as the external system would have received it."""

    connector: str
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: Any
    matched: bool

    def as_dict(self) -> dict[str, Any]:
        """The call as plain data (for printing and diffs)."""
        data: dict[str, Any] = {"connector": self.connector, "method": self.method, "path": self.path}
        if self.query:
            data["query"] = self.query
        if self.body is not None:
            data["body"] = self.body
        return data


class MockBackend:
    """Serves canned responses per connector and records the requests.

    A response is used once, by the first request that matches its connector, method and path. A
    request nothing matches is recorded as unmatched and answered with `fallback` (501 in tests, an
    empty 200 in dry runs).
    """

    def __init__(self, responses: list[MockResponse], *, fallback_status: int = 501) -> None:
        self.pending = list(responses)
        self.calls: list[RecordedCall] = []
        self.fallback_status = fallback_status
        self.redactor = Redactor()
        """The secrets of the connectors it answers (set by `offline_connectors`): what tests show."""

    def transport(self, connector: str, base_url: str) -> MockTransport:
        """The transport for one connector; paths are recorded relative to its base URL."""

        def handle(request: WireRequest) -> WireReply:
            path, query = split_call(request.url, base_url)
            body = _decode(request.content)
            headers = {key: value for key, value in request.headers.items() if key.lower() != "authorization"}
            response = self._take(connector, request.method, path)
            self.calls.append(
                RecordedCall(connector, request.method, path, query, headers, body, response is not None)
            )
            if response is None:
                if self.fallback_status < 400:
                    return reply(self.fallback_status, {})
                message = f"no mocked response for {connector} {request.method} {path}"
                return reply(self.fallback_status, {"message": message})
            if response.no_reply is not None:
                raise NoReply(response.no_reply)
            if response.not_sent is not None:
                raise NotSent(response.not_sent)
            if response.raw is not None:
                return reply(response.status, headers=response.header_lines(), raw=response.raw)
            return reply(response.status, response.body, response.header_lines())

        return MockTransport(handle)

    def _take(self, connector: str, method: str, path: str) -> MockResponse | None:
        for index, response in enumerate(self.pending):
            if (
                response.connector == connector
                and response.method.upper() == method.upper()
                and unquote(response.path) == path
            ):
                return self.pending.pop(index)
        return None


def _decode(content: bytes | None) -> Any:
    if not content:
        return None
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
