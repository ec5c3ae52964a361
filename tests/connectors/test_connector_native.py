"""The native aiohttp path (no transport given, `pool.transport: aiohttp`) over a real socket.

Same behaviour as the httpx path: auth header, JSON body, envelope errors, retry of transient
statuses and unreachable hosts, redacted `on_call` records.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.connectors import Connector
from engine.connectors.client import CallRecord
from engine.errors import BusinessError, TransientError
from engine.sandbox.serve import bind_socket, serve_in_thread
from tests.connectors.connector_kit import FakeTime, config

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-token-value"


def _app(seen: list[dict[str, Any]]) -> Starlette:
    flaky = {"left": 1}

    async def echo(request: Request) -> Response:
        body = await request.body()
        seen.append(
            {
                "method": request.method,
                "query": request.url.query,
                "authorization": request.headers.get("authorization"),
                "content_type": request.headers.get("content-type"),
                "body": json.loads(body) if body else None,
            }
        )
        if request.url.path.endswith("/bad"):
            return JSONResponse({"error": {"message": "no such part"}}, 400)
        if request.url.path.endswith("/flaky") and flaky["left"]:
            flaky["left"] -= 1
            return JSONResponse({"error": {"message": "busy"}}, 503)
        if request.url.path.endswith("/text"):
            return Response("plain words", media_type="text/plain; charset=utf-8")
        return JSONResponse({"FORM": 7, "echo": json.loads(body) if body else None}, 201)

    return Starlette(routes=[Route("/api/{rest:path}", echo, methods=["GET", "POST"])])


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    with serve_in_thread(_app(seen)) as base:
        yield base, seen


def _connector(base: str, records: list[CallRecord], fake: FakeTime | None = None) -> Connector:
    cfg = config(
        base_url=f"{base}/api",
        auth={"kind": "basic", "username": "${ERP_TOKEN}", "password": "PAT"},
        envelope={"success": None, "result": None, "error": ["error.message"]},
        retry={"max_attempts": 2, "backoff": {"initial": 0.01, "jitter": False}},
    )
    extra: dict[str, Any] = {}
    if fake is not None:
        extra = {"sleep": fake.sleep, "clock": fake.clock}
    connector = Connector("erp", cfg, environ={"ERP_TOKEN": SECRET}, on_call=records.append, **extra)
    assert connector._native
    return connector


async def test_post_with_auth_body_and_odata_query(server):
    base, seen = server
    records: list[CallRecord] = []
    connector = _connector(base, records)
    try:
        response = await connector.request(
            "POST", "/ALINE_ONE", query={"$filter": "A eq 'x y'"}, body={"QUANT": 2, "name": "ש"}
        )
    finally:
        await connector.aclose()
    assert response.status == 201
    assert response.result == {"FORM": 7, "echo": {"QUANT": 2, "name": "ש"}}
    assert response.headers["content-type"].startswith("application/json")
    assert seen[0]["query"] == "$filter=A%20eq%20'x%20y'"
    assert seen[0]["content_type"] == "application/json"
    expected = base64.b64encode(f"{SECRET}:PAT".encode()).decode()
    assert seen[0]["authorization"] == f"Basic {expected}"
    assert [(r.method, r.path, r.status, r.attempt) for r in records] == [("POST", "/ALINE_ONE", 201, 1)]


async def test_text_reply_and_envelope_error(server):
    base, _ = server
    records: list[CallRecord] = []
    connector = _connector(base, records)
    try:
        text = await connector.request("GET", "/text")
        assert text.result == "plain words"
        with pytest.raises(BusinessError, match="no such part"):
            await connector.request("GET", "/bad")
    finally:
        await connector.aclose()


async def test_transient_status_is_retried(server):
    base, seen = server
    records: list[CallRecord] = []
    connector = _connector(base, records)
    try:
        response = await connector.request("POST", "/flaky", body={"a": 1})
    finally:
        await connector.aclose()
    assert response.attempts == 2
    assert [r.status for r in records] == [503, 201]
    assert len(seen) == 2


async def test_unreachable_is_transient_and_redacted():
    sock = bind_socket()  # bound, never listening: connections are refused
    port = sock.getsockname()[1]
    records: list[CallRecord] = []
    connector = _connector(f"http://127.0.0.1:{port}", records, FakeTime())
    try:
        with pytest.raises(TransientError, match="cannot reach erp"):
            await connector.request("GET", f"/x?token={SECRET}")
    finally:
        await connector.aclose()
        sock.close()
    assert [r.status for r in records] == [None, None]
    assert all(r.error and "cannot reach erp" in r.error for r in records)
    assert all(SECRET not in r.url for r in records)
