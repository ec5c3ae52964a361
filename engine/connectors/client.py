"""The generic HTTP connector: one pooled client per external system, configured entirely by YAML.

`Connector.request` joins the path to `base_url`, encodes the query the OData way (`$filter` kept,
spaces as `%20`, `+` as `%2B`, quotes and parentheses kept), sends the JSON body (as `text/plain` when
configured), authorizes through the auth kind, retries transient failures, reads the envelope and,
with `paginate=True`, walks every page. Each attempt is reported to an `on_call` hook, redacted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from engine.config.env import resolve as resolve_env
from engine.errors import AuthError, ConnectorError, MesbridgeError
from engine.redaction import Redactor, is_secret_name

from .auth import AuthContext, OutgoingCall, RawReply, build_auth, dumps
from .envelope import Envelope, parse_body
from .models import ConnectorConfig
from .pagination import Page, build_paginator, collect
from .retry import Retryable, RetryPolicy, parse_retry_after

__all__ = ["CallRecord", "Connector", "Response", "default_transport", "encode_query"]

log = logging.getLogger("mesbridge.connectors")

_QUERY_SAFE = "$'(),:/*@!"


@dataclass
class Response:
    """A successful call: `result` is the envelope's result (all items across pages when paginated)."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive (httpx.Headers, or aiohttp's CIMultiDictProxy on the native path)."""
    body: Any
    result: Any
    elapsed: float
    attempts: int


@dataclass
class CallRecord:
    """One HTTP attempt, for metrics and logs; `url` is redacted."""

    connector: str
    method: str
    path: str
    url: str
    status: int | None
    latency: float
    attempt: int
    error: str | None = None


def encode_query(query: Mapping[str, Any]) -> str:
    """A query string the OData way: names and values percent-encoded, `$ ' ( ) , :` kept.

    None values are left out, booleans are `true`/`false`, lists repeat the name, dicts are JSON
    (LoopBack's `filter={...}`).
    """
    parts: list[str] = []
    for name, value in query.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, dict | list):
                text = dumps(item).decode("utf-8")
            else:
                text = str(item)
            parts.append(
                f"{urllib.parse.quote(str(name), safe='$')}={urllib.parse.quote(text, safe=_QUERY_SAFE)}"
            )
    return "&".join(parts)


def default_transport(config: ConnectorConfig) -> httpx.AsyncBaseTransport:
    """An httpx transport for `config` (see benchmarks/http_transport.py).

    A connector without a supplied transport and with `pool.transport: aiohttp` does not use this: it
    talks to aiohttp directly (`Connector._over_aiohttp`), without the httpx layer on top.
    """
    limits = httpx.Limits(
        max_connections=config.pool.max_connections, max_keepalive_connections=config.pool.max_connections
    )
    if config.pool.transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(verify=config.tls_verify, limits=limits)
    return httpx.AsyncHTTPTransport(verify=config.tls_verify, limits=limits)


class Connector:
    """One external system. Build once, share across calls, `aclose()` at shutdown.

    With no `transport` given and `pool.transport: aiohttp` (the default), requests go straight to a
    pooled `aiohttp.ClientSession`; otherwise through an `httpx.AsyncClient` over the transport (tests
    pass httpx mock or ASGI transports). Both paths share auth, envelope, retry, redaction and `on_call`.
    """

    def __init__(
        self,
        name: str,
        config: ConnectorConfig,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        redactor: Redactor | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.redactor = redactor if redactor is not None else Redactor()
        self.on_call = on_call
        self.clock = clock
        self.envelope = Envelope(config.envelope, name)
        self.retry = RetryPolicy(config.retry, connector=name, sleep=sleep, clock=clock, rng=rng)
        self.paginator = build_paginator(config.pagination, name)
        self.auth = build_auth(
            config.auth,
            AuthContext(
                connector=name,
                resolve=self.resolve,
                send=self._send_login,
                error_message=self.envelope.error_message,
                redactor=self.redactor,
                clock=clock,
            ),
        )
        self._transport = transport
        self._native = transport is None and config.pool.transport == "aiohttp"
        self._client: httpx.AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base_url: str | None = None
        self._headers: dict[str, str] = {}

    # -- setup -----------------------------------------------------------------------------------------

    def resolve(self, value: Any, where: str) -> Any:
        """`${VAR}` references of a config value resolved now; secret-named variables are redacted."""
        return resolve_env(value, self.environ, f"connector {self.name}, {where}", on_value=self._note)

    def _note(self, name: str, value: str) -> None:
        if is_secret_name(name):
            self.redactor.add(value)

    def _ensure(self) -> None:
        """Base URL and headers resolved once (until `aclose`)."""
        if self._base_url is None:
            self._base_url = str(self.resolve(self.config.base_url, "base_url")).rstrip("/")
            self._headers = dict(self.resolve(self.config.headers, "headers"))

    def _httpx_client(self) -> httpx.AsyncClient:
        self._ensure()
        if self._client is None:
            t = self.config.timeout
            self._client = httpx.AsyncClient(
                transport=self._transport or default_transport(self.config),
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.read),
                follow_redirects=False,
            )
        return self._client

    def _aiohttp_session(self) -> aiohttp.ClientSession:
        """The pooled session of the native path; the timeouts and limits the httpx path would apply."""
        self._ensure()
        if self._session is None:
            t = self.config.timeout
            limit = self.config.pool.max_connections
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=limit, ssl=httpx.create_ssl_context(verify=self.config.tls_verify)
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=t.connect, sock_read=t.read, connect=t.read
                ),
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # as httpx's client: cookies of IP hosts too
            )
        return self._session

    def url(self, path: str) -> str:
        """The absolute URL of a path (an absolute URL is kept as is)."""
        self._ensure()
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._base_url}/{path.lstrip('/')}" if path else str(self._base_url)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        self._base_url = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- calls -----------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        paginate: bool = False,
        deadline: float | None = None,
    ) -> Response:
        """Call the system. Raises BusinessError, TransientError, DeadlineExceeded, AuthError, ConnectorError
        or MissingVariableError; messages are redacted.

        `deadline` (seconds) can shorten the connector's retry deadline, e.g. to a webhook's.
        """
        method = method.upper()
        start = self.clock()
        try:
            if not paginate:
                raw, result, attempts = await self._call(method, path, query, headers, body, deadline)
                if method == "GET":
                    self.paginator.check_unpaged(result)
                return Response(raw.status, raw.headers, raw.body, result, self.clock() - start, attempts)
            state: dict[str, Any] = {"attempts": 0, "raw": None}

            async def fetch(page_query: dict[str, Any], url: str | None) -> Page:
                page_query, page_body = self.paginator.place(page_query, body)
                raw, result, attempts = await self._call(
                    method, url or path, page_query, headers, page_body, deadline
                )
                state["attempts"] += attempts
                state["raw"] = raw
                return Page(raw.body, result)

            items = await collect(self.paginator.iterate(fetch, dict(query or {})))
            last: RawReply = state["raw"]
            return Response(
                last.status, last.headers, last.body, items, self.clock() - start, state["attempts"]
            )
        except MesbridgeError as exc:
            raise self._redacted(exc) from exc.__cause__

    async def iterate(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> AsyncIterator[Any]:
        """Every item across pages, fetched page by page as they are consumed."""

        async def fetch(page_query: dict[str, Any], url: str | None) -> Page:
            page_query, page_body = self.paginator.place(page_query, body)
            raw, result, _ = await self._call(
                method.upper(), url or path, page_query, headers, page_body, None
            )
            return Page(raw.body, result)

        async for item in self.paginator.iterate(fetch, dict(query or {})):
            yield item

    def _redacted(self, exc: MesbridgeError) -> MesbridgeError:
        text = str(exc)
        clean = self.redactor.redact(text)
        if clean != text:
            exc.args = (clean,)
            if hasattr(exc, "message"):
                exc.message = clean
        if isinstance(exc, ConnectorError) and exc.body is not None:
            exc.body = self.redactor.redact(exc.body)
        return exc

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        body: Any,
        deadline: float | None,
    ) -> tuple[RawReply, Any, int]:
        count = 0

        async def attempt(number: int) -> tuple[RawReply, Any]:
            nonlocal count
            count = number
            raw = await self._authorized(method, path, query, headers, body, number)
            if self.retry.is_transient_status(raw.status):
                message = self.envelope.error_message(raw.body, raw.text) or ""
                retry_after = (
                    parse_retry_after(raw.headers.get("retry-after")) if raw.status in (429, 503) else None
                )
                raise Retryable(
                    f"{self.name} answered HTTP {raw.status}" + (f": {message}" if message else ""),
                    status=raw.status,
                    retry_after=retry_after,
                    body=raw.body,
                )
            result = self.envelope.check(raw.status, raw.body, raw.text, auth_error=self.auth.static)
            return raw, result

        try:
            raw, result = await self.retry.run(attempt, deadline=deadline)
        except ConnectorError as exc:
            if getattr(exc, "attempts", None) is None:
                exc.attempts = count  # type: ignore[attr-defined]
            raise
        return raw, result, count

    async def _authorized(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        body: Any,
        attempt: int,
    ) -> RawReply:
        """One attempt with credentials; a dead token is renewed and the call repeated once."""

        def fresh() -> OutgoingCall:
            url = self.url(path)
            return OutgoingCall(
                method,
                url,
                dict(query or {}),
                {**self._headers, **(headers or {})},
                dict(body) if isinstance(body, dict) else body,
            )

        call = fresh()
        token = await self.auth.apply(call)
        raw = await self._send(call, path, attempt)
        if not self.auth.rejected(raw.status, raw.body):
            return raw
        log.info("%s: token rejected (HTTP %s); logging in again", self.name, raw.status)
        await self.auth.renew(token)
        call = fresh()
        await self.auth.apply(call)
        raw = await self._send(call, path, attempt)
        if self.auth.rejected(raw.status, raw.body):
            message = self.envelope.error_message(raw.body, raw.text) or f"HTTP {raw.status}"
            raise AuthError(
                f"{self.name} rejected a freshly obtained token: {message}",
                connector=self.name,
                http_status=raw.status,
                body=raw.body,
            )
        return raw

    async def _send(self, call: OutgoingCall, path: str, attempt: int) -> RawReply:
        headers = dict(call.headers)
        content: bytes | None = None
        if call.body is not None:
            content = dumps(call.body)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = self.config.content_type
        url = call.url
        if call.query:
            url += ("&" if "?" in url else "?") + encode_query(call.query)
        return await self._send_raw(call.method, url, headers, content, path, attempt)

    async def _send_login(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Any,
        content_type: str | None,
    ) -> RawReply:
        """The auth kinds' raw call: no auth, transient statuses raised as Retryable."""
        all_headers = {**self._headers_now(), **headers}
        content: bytes | None = None
        if body is not None:
            content = (
                body.encode("utf-8")
                if isinstance(body, str) and content_type and "form" in content_type
                else dumps(body)
            )
            all_headers.setdefault("Content-Type", content_type or self.config.content_type)
        raw = await self._send_raw(method, self.url(target), all_headers, content, target, 0)
        if self.retry.is_transient_status(raw.status):
            retry_after = (
                parse_retry_after(raw.headers.get("retry-after")) if raw.status in (429, 503) else None
            )
            raise Retryable(
                f"{self.name} login answered HTTP {raw.status}", status=raw.status, retry_after=retry_after
            )
        return raw

    def _headers_now(self) -> dict[str, str]:
        self._ensure()
        return self._headers

    async def _send_raw(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        path: str,
        attempt: int,
    ) -> RawReply:
        started = self.clock()
        status: int | None = None
        error: str | None = None
        try:
            if self._native:
                reply = await self._over_aiohttp(method, url, headers, content)
                status = reply.status
                return reply
            response = await self._httpx_client().request(method, url, headers=headers, content=content)
            status = response.status_code
            return RawReply(
                status,
                response.headers,
                parse_body(response.content, response.headers.get("content-type")),
                response.text,
            )
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            error = f"bad URL for {self.name}: {exc}"
            raise ConnectorError(error, connector=self.name) from exc
        except aiohttp.ServerTimeoutError as exc:
            error = f"timeout calling {self.name} ({type(exc).__name__})"
            raise Retryable(error) from exc
        except aiohttp.ClientError as exc:
            error = f"cannot reach {self.name}: {type(exc).__name__}: {exc}".rstrip(": ")
            raise Retryable(error) from exc
        except httpx.TimeoutException as exc:
            error = f"timeout calling {self.name} ({type(exc).__name__})"
            raise Retryable(error) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            error = f"bad URL for {self.name}: {exc}"
            raise ConnectorError(error, connector=self.name) from exc
        except (TimeoutError, httpx.TransportError, OSError) as exc:
            error = f"cannot reach {self.name}: {type(exc).__name__}: {exc}".rstrip(": ")
            raise Retryable(error) from exc
        finally:
            latency = self.clock() - started
            record = CallRecord(
                self.name,
                method,
                path,
                self.redactor.redact(url),
                status,
                latency,
                attempt,
                self.redactor.redact(error) if error else None,
            )
            log.debug(
                "%s %s %s -> %s in %.3f s (attempt %d)%s",
                record.connector,
                method,
                record.url,
                status if status is not None else error,
                latency,
                attempt,
                "",
            )
            if self.on_call is not None:
                self.on_call(record)

    async def _over_aiohttp(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> RawReply:
        """One request on the native path: the whole body read, decoded as the httpx path does."""
        session = self._aiohttp_session()
        async with session.request(
            method, url, headers=headers, data=content, allow_redirects=False
        ) as response:
            raw = await response.read()
            text = raw.decode(response.get_encoding() if raw else "utf-8", "replace")
            ctype = response.headers.get("content-type")
            return RawReply(response.status, response.headers, parse_body(raw, ctype), text)
