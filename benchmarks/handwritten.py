"""The benchmark's Operation "add" -> Priority production report webhook, hand-written on Starlette.

    BENCH_ERP_URL=http://127.0.0.1:8691/odata/Priority/tabula.ini/demo \\
      .venv/bin/python -m uvicorn handwritten:app --app-dir benchmarks --port 8693 \\
      --loop uvloop --http httptools --no-access-log --log-level warning

What an integrator would write without mesbridge, doing the same work as the benchmark pipeline
(benchmarks/config/mappings/priority/operation.yaml): the query-token check, JSON and content-type
checks, the mapping, one POST through a pooled aiohttp session with Basic auth, the ERP's error text
passed through as `{"message"}`, and `{"externalId"}` on success. Used by benchmarks/webhook.py.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ERP_URL = os.environ.get("BENCH_ERP_URL", "http://127.0.0.1:8691/odata/Priority/tabula.ini/demo")
TOKEN = os.environ.get("MESBRIDGE_WEBHOOK_TOKEN", "bench-token")
PAT = os.environ.get("PRIORITY_PAT", "7F3C2A9B1D4E4F6A8B0C2D4E6F8A0B1C")
WORK_CENTRES = {"WC1": "WC1", "WC-10": "WC1", "WC-20": "WC1", "WC-30": "WC1"}

_session: aiohttp.ClientSession | None = None


def production_report(event: dict[str, Any]) -> dict[str, Any]:
    """The ALINE_ONE body for an Operation event; KeyError for an unknown work centre."""
    invalid = event.get("invalidQty")
    return {
        "SERIALNAME": event["workorderNumber"],
        "PARTNAME": event["sku"],
        "ACTNAME": event["actCode"],
        "WORKCNAME": WORK_CENTRES[event["workCenterCode"]],
        "QUANT": event["validQty"],
        "SQUANT": invalid if invalid else 0,
        "SERNUM": event.get("serial"),
        "DETAILS": f"Next Plus {event['workorderNumber']}/{event['actCode']} pos {event['position']}",
    }


def _error_text(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        form = body.get("FORM")
        if isinstance(form, dict) and isinstance(form.get("InterfaceErrors"), dict):
            text = form["InterfaceErrors"].get("text")
            if text:
                return str(text)
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return fallback


async def operation(request: Request) -> JSONResponse:
    """POST /priority/operation?token=…"""
    if not hmac.compare_digest(request.query_params.get("token", "").encode(), TOKEN.encode()):
        return JSONResponse({"message": "missing or wrong shared secret in query 'token'"}, 401)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and content_type != "application/json":
        return JSONResponse({"message": f"expected Content-Type application/json, got {content_type}"}, 415)
    try:
        event = json.loads(await request.body())
    except ValueError as exc:
        return JSONResponse({"message": f"malformed JSON: {exc}"}, 400)
    if not isinstance(event, dict):
        return JSONResponse({"message": "expected a JSON object"}, 422)
    if event.get("type") != "add":
        return JSONResponse({"message": f"Unknown Operation event type {event.get('type')}"}, 400)
    try:
        body = production_report(event)
    except KeyError as exc:
        return JSONResponse({"message": f"missing or unknown {exc}"}, 422)
    assert _session is not None
    try:
        async with _session.post(f"{ERP_URL}/ALINE_ONE", json=body) as response:
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return JSONResponse({"message": f"Priority unreachable: {exc}"}, 502)
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = None
    if status >= 400:
        return JSONResponse({"message": _error_text(record, text)}, 422)
    form = record.get("FORM") if isinstance(record, dict) else None
    return JSONResponse({"externalId": None if form is None else str(form)})


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    """One pooled session for the process, as a connector would keep."""
    global _session
    _session = aiohttp.ClientSession(
        auth=aiohttp.BasicAuth(PAT, "PAT"),
        headers={"Accept": "application/json"},
        connector=aiohttp.TCPConnector(limit=100),
        timeout=aiohttp.ClientTimeout(total=60, connect=5),
    )
    try:
        yield
    finally:
        await _session.close()


app = Starlette(routes=[Route("/priority/operation", operation, methods=["POST"])], lifespan=lifespan)
