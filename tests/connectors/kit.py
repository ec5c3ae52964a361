"""Helpers for connector tests: a config from a dict, replies, fake time, and the two transports.

A test's ERP is a handler `(httpx.Request) -> httpx.Response` (httpx's types only as a convenient way
to read a request and write a reply). The same handler runs behind the mock transport (in process)
or behind a real loopback HTTP server reached through the production transport, so connector
behaviour is proved on the path production uses. A handler may raise `httpx.ConnectError` (nothing
sent) or `httpx.ReadTimeout` (sent, no reply) on the mock transport. httpx normalises the paths it
parses, so the exact request target the system received is in `request.extensions["target"]`.
"""

from __future__ import annotations

import inspect
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from engine.connectors import ConnectorConfig
from engine.connectors.transports import WireReply, WireRequest
from engine.connectors.transports.base import headers_of
from engine.connectors.transports.mock import MockTransport
from engine.errors import NoReply, NotSent
from sandbox.serve import serve_in_thread

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
TEST_HOSTS = ("http://erp.test", "http://auth.test")
"""The hosts tests write in configs; on loopback they all mean the loopback server."""


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def config(**fields: Any) -> ConnectorConfig:
    fields.setdefault("base_url", "http://erp.test/api")
    return ConnectorConfig.model_validate(fields)


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


async def _answer(handler: Handler, request: httpx.Request) -> httpx.Response:
    answer = handler(request)
    return await answer if inspect.isawaitable(answer) else answer


def _wire_reply(response: httpx.Response) -> WireReply:
    return WireReply(response.status_code, headers_of(response.headers.multi_items()), response.content)


def mock_transport(handler: Handler) -> MockTransport:
    """The handler in process, behind the mock transport."""

    async def handle(request: WireRequest) -> WireReply:
        parts = urllib.parse.urlsplit(request.url)
        seen = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content or b""
        )
        seen.extensions["target"] = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            return _wire_reply(await _answer(handler, seen))
        except httpx.ConnectError as exc:
            raise NotSent(str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise NoReply(str(exc)) from exc

    return MockTransport(handle)


class LoopbackERP:
    """A real HTTP server on loopback whose answers come from the current handler."""

    def __init__(self) -> None:
        self.handler: Handler = lambda request: reply(404, {"message": "no handler"})
        self.url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        seen = httpx.Request(scope["method"], self.url + target, headers=headers, content=body)
        seen.extensions["target"] = target
        response = await _answer(self.handler, seen)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.content})


@contextmanager
def loopback_erp() -> Iterator[LoopbackERP]:
    """A `LoopbackERP` serving in a background thread."""
    erp = LoopbackERP()
    with serve_in_thread(erp) as url:
        erp.url = url
        yield erp


def on_loopback(fields: Any, url: str) -> Any:
    """A connector config's fields with every test host (base URL, token URL) moved to `url`."""
    if isinstance(fields, dict):
        return {key: on_loopback(value, url) for key, value in fields.items()}
    if isinstance(fields, list):
        return [on_loopback(value, url) for value in fields]
    if isinstance(fields, str):
        for host in TEST_HOSTS:
            if fields.startswith(host):
                return url + fields[len(host) :]
    return fields
