"""Inbound safety for webhook requests: size, content type, JSON, and who the caller is.

Every check answers the caller's mistake with a 4xx and a message that names the problem; secrets are
compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from engine.env import resolve
from engine.errors import RequestRejected
from engine.pipeline import models as m


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


def _same(given: str | bytes, expected: str | bytes) -> bool:
    left = given.encode() if isinstance(given, str) else given
    right = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(left, right)


def authenticate(
    auth: m.CallerAuth | None, request: Request, body: bytes, environ: Mapping[str, str]
) -> None:
    """Refuse the request (401) unless it carries what `auth` asks for."""
    if auth is None or isinstance(auth, m.NoCallerAuth):
        return
    where = "webhook authentication"
    if isinstance(auth, m.SharedSecretAuth):
        secret = str(resolve(auth.secret, environ, where))
        given = (
            request.headers.get(auth.name) if auth.in_ == "header" else request.query_params.get(auth.name)
        )
        if given is None or not _same(given, secret):
            raise RequestRejected(401, f"missing or wrong shared secret in {auth.in_} '{auth.name}'")
        return
    if isinstance(auth, m.BasicCallerAuth):
        username = str(resolve(auth.username, environ, where))
        password = str(resolve(auth.password, environ, where))
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Basic realm="mesbridge"'}
        if scheme.lower() != "basic" or not encoded:
            raise RequestRejected(401, "HTTP Basic authentication required", challenge)
        try:
            user, _, word = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestRejected(401, "malformed Basic credentials", challenge) from None
        user_ok = _same(user, username)
        if not (_same(word, password) and user_ok):
            raise RequestRejected(401, "wrong username or password", challenge)
        return
    if isinstance(auth, m.HmacCallerAuth):
        secret = str(resolve(auth.secret, environ, where))
        given = request.headers.get(auth.header, "")
        given = given.split("=", 1)[1] if "=" in given else given
        digest = hmac.new(secret.encode(), body, getattr(hashlib, auth.algorithm)).hexdigest()
        if not given or not _same(given.lower(), digest):
            raise RequestRejected(401, f"missing or wrong signature in header '{auth.header}'")
        return
