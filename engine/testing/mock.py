"""A mock backend for connectors: canned responses in order, and a record of every call made."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from engine.pipeline.models import MockResponse


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

    def transport(self, connector: str, base_url: str) -> httpx.MockTransport:
        """The transport for one connector; paths are recorded relative to its base URL."""
        base_path = urlsplit(base_url).path.rstrip("/")

        def handle(request: httpx.Request) -> httpx.Response:
            raw_path = unquote(request.url.raw_path.decode("ascii").split("?", 1)[0])
            path = raw_path[len(base_path) :] if base_path and raw_path.startswith(base_path) else raw_path
            path = path or "/"
            query = {key: value for key, value in request.url.params.multi_items()}
            body = _decode(request.content)
            headers = {key: value for key, value in request.headers.items() if key.lower() != "authorization"}
            response = self._take(connector, request.method, path)
            self.calls.append(
                RecordedCall(connector, request.method, path, query, headers, body, response is not None)
            )
            if response is None:
                if self.fallback_status < 400:
                    return httpx.Response(self.fallback_status, json={})
                message = f"no mocked response for {connector} {request.method} {path}"
                return httpx.Response(self.fallback_status, json={"message": message})
            if response.raw is not None:
                return httpx.Response(response.status, headers=response.headers, text=response.raw)
            if response.body is None:
                return httpx.Response(response.status, headers=response.headers)
            return httpx.Response(response.status, headers=response.headers, json=response.body)

        return httpx.MockTransport(handle)

    def _take(self, connector: str, method: str, path: str) -> MockResponse | None:
        for index, response in enumerate(self.pending):
            if (
                response.connector == connector
                and response.method.upper() == method.upper()
                and unquote(response.path) == path
            ):
                return self.pending.pop(index)
        return None


def _decode(content: bytes) -> Any:
    if not content:
        return None
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
