"""Inbound safety for webhook requests: size, content type, JSON, and who the caller is.

Every check answers the caller's mistake with a 4xx and a message that names the problem; secrets are
compared in constant time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from engine.errors import RequestRejected
from engine.pipeline.sources.caller_auth import CallerAuthModel


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (413) whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestRejected(413, f"request body over {limit} bytes")
        except ValueError:
            raise RequestRejected(400, "invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(request: Request, body: bytes) -> Any:
    """The JSON event: content type checked (415), syntax checked (400), an object required (422)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise RequestRejected(415, f"expected Content-Type application/json, got {content_type}")
    if not body.strip():
        raise RequestRejected(400, "empty request body; expected a JSON object")
    try:
        event = json.loads(body)
    except UnicodeDecodeError:
        raise RequestRejected(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestRejected(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(event, dict):
        raise RequestRejected(422, f"expected a JSON object, got {type(event).__name__}")
    return event


def authenticate(
    auth: CallerAuthModel | None, request: Request, body: bytes, environ: Mapping[str, str]
) -> None:
    """Refuse the request (401) unless it carries what `auth` asks for."""
    if auth is not None:
        auth.verify(request.headers, request.query_params, body, environ)
