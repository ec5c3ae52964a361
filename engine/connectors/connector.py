"""The request path: one `Connector` per external system, configured entirely by YAML.

`Connector.request` joins the path to `base_url`, encodes the query the OData way, sends the body as
strict JSON (as `text/plain` when configured), authorizes through the auth kind, classes and retries
failed attempts, reads the envelope and, with `paginate=True`, walks every page. Below it a
`Transport` sends bytes (`engine.connectors.transports`); everything here is written once, whichever
transport is used. Each attempt is reported to an `on_call` hook as a `CallRecord`, redacted, and to
the recorder of a traced run (`engine.traces`).

A write whose attempt is **uncertain** (see `engine.connectors.retry`) is repeated only when it is
safe: an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE), a call marked `idempotent`, a connector
that sends an idempotency key, or a `verify` lookup that first looks for what the attempt may have
created. Otherwise it fails with `UncertainError`, and nobody is told it failed when it may not have.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import wirejson
from engine.env import resolve as resolve_env
from engine.errors import (
    AuthError,
    CaFileUnloadable,
    CertificateRefused,
    ConnectorError,
    DeadlineExceeded,
    MesbridgeError,
    NoReply,
    NotSent,
    NotSentError,
    PipelineError,
    TransientError,
    UncertainError,
)
from engine.recorder import active
from engine.redaction import Redactor, is_secret_name

from .auth import AuthContext, OutgoingCall, build_auth
from .envelope import Envelope, parse_body
from .models import ConnectorConfig
from .pagination import Page, build_paginator
from .retry import AttemptFailed, RetryPolicy, parse_retry_after
from .transports import Transport, WireRequest
from .transports.base import Headers, headers_of
from .transports.default import HttpTransport, TransportSettings
from .urls import encode_query, join, requote

__all__ = ["SAFE_METHODS", "CallRecord", "Connector", "Reply", "Response", "Verify", "dumps"]

log = logging.getLogger("mesbridge.connectors")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods whose repetition changes nothing more than the first request did (RFC 9110 §9.2.2)."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that apply nothing (RFC 9110 §9.2.1)."""

VERIFY_SHARE = 1 / 3
"""The share of what is left of a call's budget that an attempt of a write with a `verify` leaves
unused for its lookup: a reply that never comes still leaves time to look before giving up."""

Verify = Callable[[], Awaitable[tuple[bool, Any]]]
"""A verify lookup: (found, result) for what an uncertain attempt may have created."""


def dumps(body: Any) -> bytes:
    """Strict JSON as sent on the wire: UTF-8, non-ASCII kept; NaN, infinities and lone surrogates
    refused with a ValueError that says which."""
    try:
        return wirejson.dumps(body)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise ValueError(f"the body holds {bad}, a lone surrogate that cannot be sent") from None
    except ValueError:
        raise ValueError("the body holds a number that is not finite (NaN or infinity)") from None
    except TypeError as exc:
        raise ValueError(f"the body holds a value that is not JSON: {exc}") from None


@dataclass(slots=True)
class Reply:
    """A reply as read off the wire: status, headers, parsed body (JSON, text or None) and text."""

    status: int
    headers: Headers
    body: Any
    text: str
    url: str = ""
    record: CallRecord | None = field(default=None, repr=False, compare=False)
    """The attempt as recorded (when a recorder or `on_call` asked for it)."""


@dataclass
class Response:
    """A successful call: `result` is the envelope's result (all items across pages when paginated)."""

    status: int
    headers: Headers
    body: Any
    result: Any
    elapsed: float
    attempts: int
    verified: bool = False
    """True when an uncertain write was found applied by its `verify` lookup, whose result this is."""


@dataclass(slots=True)
class CallRecord:
    """One HTTP attempt, for metrics, logs and traces. The redacted views are computed on first use."""

    connector: str
    method: str
    path: str
    status: int | None
    latency: float
    attempt: int
    error: str | None = None
    failure: str | None = None
    """The attempt's failure class (`not_sent`, `unapplied`, `uncertain`), None when it succeeded."""
    redactor: Redactor = field(default_factory=Redactor, repr=False)
    raw_url: str = field(default="", repr=False)
    raw_request: Any = field(default=None, repr=False)
    raw_reply: Any = field(default=None, repr=False)
    base_url: str = field(default="", repr=False)
    """The connector's base URL: `url` less it is the path the system was called at."""
    token_rejected: bool = False
    """True when the system refused the attempt's token: the auth kind logged in again and the call
    was sent once more, so this reply was answered to the auth, not to the pipeline."""

    @property
    def login(self) -> bool:
        """True for an auth kind's login call (attempt 0), not one the pipeline asked for."""
        return self.attempt == 0

    @property
    def url(self) -> str:
        return str(self.redactor.redact(self.raw_url))

    @property
    def request_body(self) -> Any:
        return self.redactor.redact(self.raw_request)

    @property
    def reply_body(self) -> Any:
        return self.redactor.redact(self.raw_reply)


def _clean_header(name: str, value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, dict | list)
        else str(value)
    )
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"header {name!r} holds a line break, which would split the request")
    return text


class Connector:
    """One external system. Build once, share across calls, `aclose()` at shutdown."""

    def __init__(
        self,
        name: str,
        config: ConnectorConfig,
        *,
        environ: Mapping[str, str] | None = None,
        transport: Transport | None = None,
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
        self.sleep = sleep
        self.clock = clock
        self.envelope = Envelope(config.envelope, name)
        self.retry = RetryPolicy(config.retry, rng)
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
        self.transport = transport or HttpTransport(
            TransportSettings(
                connect_timeout=config.timeout.connect,
                read_timeout=config.timeout.read,
                max_connections=config.pool.max_connections,
                tls_verify=config.tls_verify,
                ca_file=config.tls_ca_file,
            ),
            name,
            lambda path: str(self.resolve(path, "tls_ca_file")),
        )
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

    def url(self, path: str) -> str:
        """The absolute URL of a path (an absolute URL is kept as is); nothing is normalised."""
        self._ensure()
        assert self._base_url is not None
        return join(self._base_url, path)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        self._base_url = None
        await self.transport.aclose()

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
        headers: Mapping[str, Any] | None = None,
        body: Any = None,
        paginate: bool = False,
        deadline: float | None = None,
        idempotent: bool | None = None,
        verify: Verify | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        """Call the system. Raises BusinessError, TransientError, DeadlineExceeded, UncertainError,
        AuthError, ConnectorError, PipelineError (a body or URL that cannot be sent exactly) or
        MissingVariableError; messages are redacted.

        `deadline` (seconds) shortens the connector's retry deadline, e.g. to a webhook's; each
        attempt's read timeout then fits in what is left of it. `idempotent` overrides the method's
        own safety; `verify` and `idempotency_key` make an uncertain attempt safe to repeat.
        """
        method = method.upper()
        start = self.clock()
        ends = None if deadline is None else start + deadline
        try:
            call_headers = self._call_headers(headers, idempotency_key)
            if not paginate:
                repeatable = self.safe_to_repeat(method, idempotent, idempotency_key)
                reply, result, attempts, verified = await self._call(
                    method, path, query, call_headers, body, ends, repeatable, verify
                )
                if method == "GET" and not verified:
                    self.paginator.check_unpaged(result)
                if reply is None:  # found by the verify lookup
                    return Response(0, headers_of(), None, result, self.clock() - start, attempts, True)
                return Response(
                    reply.status, reply.headers, reply.body, result, self.clock() - start, attempts
                )
            pages = _Pages(self, method, path, call_headers, body, ends)
            items = [item async for item in self.paginator.iterate(pages.fetch, dict(query or {}))]
            last = pages.last
            assert last is not None
            return Response(last.status, last.headers, last.body, items, self.clock() - start, pages.attempts)
        except MesbridgeError as exc:
            raise self._redacted(exc) from exc.__cause__

    async def iterate(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> AsyncIterator[Any]:
        """Every item across pages, fetched page by page as they are consumed (a listing: repeatable)."""
        try:
            pages = _Pages(self, method.upper(), path, self._call_headers(headers, None), body, None)
            async for item in self.paginator.iterate(pages.fetch, dict(query or {})):
                yield item
        except MesbridgeError as exc:
            raise self._redacted(exc) from exc.__cause__

    def safe_to_repeat(self, method: str, idempotent: bool | None = None, key: str | None = None) -> bool:
        """Whether sending the call twice changes nothing more than once: `idempotent` when given,
        else an idempotent method, or an idempotency key the connector sends."""
        if idempotent is not None:
            return idempotent
        return method.upper() in SAFE_METHODS or (key is not None and self.config.idempotency_key is not None)

    def _call_headers(self, headers: Mapping[str, Any] | None, key: str | None) -> dict[str, str]:
        try:
            own = {
                name: _clean_header(name, value)
                for name, value in (headers or {}).items()
                if value is not None
            }
            if key is not None and self.config.idempotency_key is not None:
                own[self.config.idempotency_key.header] = _clean_header("idempotency key", key)
        except ValueError as exc:
            raise PipelineError(f"cannot call {self.name}: {exc}", 422) from None
        return own

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
        headers: dict[str, str],
        body: Any,
        ends: float | None,
        repeatable: bool,
        verify: Verify | None,
    ) -> tuple[Reply | None, Any, int, bool]:
        """Attempts until one succeeds, the system answers for good, or the budget is spent.

        Returns (reply, result, attempts, verified); reply is None when the verify lookup found the
        record an uncertain attempt created, and result is then what it found.
        """
        content = self._encode(body)
        own = self.clock() + self.config.retry.deadline
        ends = own if ends is None else min(ends, own)
        attempt = 0
        last: AttemptFailed | None = None
        applied = ""
        """Said of a repeatable write given up on after an uncertain attempt: it may have applied."""
        while True:
            attempt += 1
            remaining = ends - self.clock()
            if remaining <= 0:
                raise self._gave_up(DeadlineExceeded, last, attempt - 1, method, path, applied=applied)
            read_timeout = min(self.config.timeout.read, remaining)
            if verify is not None:  # keep time for the lookup that tells whether a lost write applied
                read_timeout = min(read_timeout, remaining * (1 - VERIFY_SHARE))
            try:
                reply = await self._authorized(
                    method, path, query, headers, body, content, attempt, read_timeout
                )
                failure = self.retry.failure_of(reply.status)
                if failure is None:
                    result = self.envelope.check(
                        reply.status, reply.body, reply.text, auth_error=self.auth.static
                    )
                    return reply, result, attempt, False
                message = self.envelope.error_message(reply.body, reply.text)
                raise AttemptFailed(
                    failure,
                    f"{self.name} answered HTTP {reply.status}" + (f": {message}" if message else ""),
                    status=reply.status,
                    retry_after=(
                        parse_retry_after(reply.headers.get("retry-after"))
                        if reply.status in (429, 503)
                        else None
                    ),
                    body=reply.body,
                )
            except NotSentError as exc:  # this attempt sent nothing; an earlier uncertain one may have
                if not applied:
                    raise
                raise NotSentError(
                    exc.message + applied, connector=self.name, attempts=exc.attempts
                ) from exc.__cause__
            except AttemptFailed as exc:
                last = exc
            # an uncertain attempt is repeated only when that is safe: the call is repeatable (a read,
            # idempotent, keyed), or its verify lookup found nothing after the system answered (a 500 or
            # 502, not a reply that never came nor a gateway's 504). So giving up later is transient:
            # whatever an attempt applied, sending the event again applies nothing more.
            if last.failure == "uncertain":
                if repeatable and method not in READ_METHODS:
                    applied = f"; an attempt may have applied it, and {method} {path} is safe to repeat"
                if verify is not None:
                    found, value = await self._verify(verify, last, method, path)
                    if found:
                        log.info(
                            "%s: %s %s was applied after all: the verify lookup found it",
                            self.name,
                            method,
                            path,
                        )
                        return None, value, attempt, True
                    if last.status is None or last.status == 504:
                        # no reply, or a gateway that stopped waiting for one: the request may still be
                        # running there and apply after the lookup, so finding nothing yet does not make
                        # sending it again safe
                        left = "without a reply" if last.status is None else "by a gateway that timed out"
                        raise self._uncertain(
                            last,
                            attempt,
                            method,
                            path,
                            f", and the verify lookup found nothing yet, but a request left {left} "
                            f"may still be running at {self.name}, so it is not sent again",
                        )
                    applied = ""  # looked for and not there after the system answered: nothing applied
                elif not repeatable:
                    raise self._uncertain(last, attempt, method, path)
            if attempt >= self.config.retry.max_attempts:
                raise self._gave_up(TransientError, last, attempt, method, path, applied=applied)
            wait = self.retry.wait(attempt, last)
            if wait >= ends - self.clock():
                raise self._gave_up(
                    DeadlineExceeded, last, attempt, method, path, retry_wait=wait, applied=applied
                )
            log.info(
                "%s: attempt %d of %s %s failed (%s): %s; again in %.2f s",
                self.name,
                attempt,
                method,
                path,
                last.failure.replace("_", " "),
                last.message,
                wait,
            )
            await self.sleep(wait)

    def _encode(self, body: Any) -> bytes | None:
        if body is None or self.auth.injects_body:
            return None  # encoded per attempt, once the token is in
        try:
            return dumps(body)
        except ValueError as exc:
            raise PipelineError(f"cannot send to {self.name}: {exc}", 422) from None

    async def _verify(self, verify: Verify, last: AttemptFailed, method: str, path: str) -> tuple[bool, Any]:
        try:
            return await verify()
        except MesbridgeError as exc:
            raise self._uncertain(
                last, 1, method, path, f", and the lookup that would tell failed ({exc})"
            ) from None

    def _uncertain(
        self, last: AttemptFailed, attempts: int, method: str, path: str, why: str = ""
    ) -> UncertainError:
        return UncertainError(
            f"outcome unknown after {method} {path}: {last.message}{why}; {self.name} may have applied it. "
            f"Check {self.name} before sending the event again",
            connector=self.name,
            http_status=last.status,
            body=last.body,
            attempts=attempts,
        )

    def _gave_up(
        self,
        kind: type[TransientError],
        last: AttemptFailed | None,
        attempts: int,
        method: str,
        path: str,
        retry_wait: float | None = None,
        applied: str = "",
    ) -> ConnectorError:
        """The error of a call that will not be attempted again: transient, since an uncertain attempt
        is repeated only when that is safe (`applied` says when one may have applied it)."""
        if last is None:
            return DeadlineExceeded(
                f"{self.name}: the deadline passed before {method} {path} could be sent",
                connector=self.name,
                attempts=attempts,
            )
        status = None
        if kind is DeadlineExceeded and retry_wait is not None and last.retry_after is not None:
            message = f"{last.message}; Retry-After {retry_wait:g} s passes the deadline"
            message += f" (after {attempts} attempts)"
            status = 503  # the system is there and asks to wait: not a timeout
        elif kind is DeadlineExceeded:
            message = f"{last.message} (the deadline passed after {attempts} attempts)"
        else:
            message = f"{last.message} (gave up after {attempts} attempts)"
        error_class = DeadlineExceeded if kind is DeadlineExceeded else TransientError
        return error_class(
            message + applied,
            connector=self.name,
            status=status,
            http_status=last.status,
            body=last.body,
            attempts=attempts,
            retry_after=last.retry_after,
        )

    async def _authorized(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        headers: dict[str, str],
        body: Any,
        content: bytes | None,
        attempt: int,
        read_timeout: float | None,
    ) -> Reply:
        """One attempt with credentials; a dead token is renewed and the call repeated once.

        A failed login fails the attempt as not sent: the call itself never left.
        """
        call = self._outgoing(method, path, query, headers, body)
        token = await self._before_sending(self.auth.apply(call))
        reply = await self._send(call, path, attempt, content, read_timeout)
        if not self.auth.rejected(reply.status, reply.body):
            return reply
        if reply.record is not None:
            reply.record.token_rejected = True
        log.info("%s: token rejected (HTTP %s); logging in again", self.name, reply.status)
        await self._before_sending(self.auth.renew(token))
        call = self._outgoing(method, path, query, headers, body)
        await self._before_sending(self.auth.apply(call))
        reply = await self._send(call, path, attempt, content, read_timeout)
        if self.auth.rejected(reply.status, reply.body):
            message = self.envelope.error_message(reply.body, reply.text) or f"HTTP {reply.status}"
            raise AuthError(
                f"{self.name} rejected a freshly obtained token: {message}",
                connector=self.name,
                http_status=reply.status,
                body=reply.body,
            )
        return reply

    async def _before_sending(self, step: Awaitable[Any]) -> Any:
        try:
            return await step
        except AttemptFailed as exc:
            raise AttemptFailed(
                "not_sent", f"{exc.message} (logging in)", exc.status, exc.retry_after, exc.body
            ) from None

    def _outgoing(
        self, method: str, path: str, query: Mapping[str, Any] | None, headers: dict[str, str], body: Any
    ) -> OutgoingCall:
        return OutgoingCall(
            method,
            self.url(path),
            dict(query or {}),
            {**self._headers, **headers},
            dict(body) if isinstance(body, dict) else body,
        )

    async def _send(
        self, call: OutgoingCall, path: str, attempt: int, content: bytes | None, read_timeout: float | None
    ) -> Reply:
        """Encode the call, send it through the transport, record the attempt and parse the reply."""
        headers = dict(call.headers)
        try:
            if call.body is not None:
                if content is None:
                    content = dumps(call.body)
                if not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = self.config.content_type
            url = requote(call.url)
            if call.query:
                url += ("&" if "?" in url else "?") + encode_query(call.query)
        except ValueError as exc:
            raise PipelineError(f"cannot call {self.name}: {exc}", 422) from None
        return await self._exchange(
            call.method, url, headers, content, path, attempt, read_timeout, call.body
        )

    async def _send_login(
        self, method: str, target: str, headers: dict[str, str], body: Any, content_type: str | None
    ) -> Reply:
        """The auth kinds' raw call: no auth, no envelope; a failure to be retried is raised classed."""
        self._ensure()
        all_headers = {**self._headers, **headers}
        content: bytes | None = None
        if body is not None:
            try:
                content = (
                    body.encode("utf-8")
                    if isinstance(body, str) and content_type and "form" in content_type
                    else dumps(body)
                )
            except ValueError as exc:
                raise AuthError(f"cannot log in to {self.name}: {exc}", connector=self.name) from None
            all_headers.setdefault("Content-Type", content_type or self.config.content_type)
        reply = await self._exchange(
            method, requote(self.url(target)), all_headers, content, target, 0, None, None
        )
        failure = self.retry.failure_of(reply.status)
        if failure is not None:
            retry_after = (
                parse_retry_after(reply.headers.get("retry-after")) if reply.status in (429, 503) else None
            )
            raise AttemptFailed(
                "unapplied", f"{self.name} login answered HTTP {reply.status}", reply.status, retry_after
            )
        return reply

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        path: str,
        attempt: int,
        read_timeout: float | None,
        sent_body: Any,
    ) -> Reply:
        """One transport round trip: transport failures classed, the attempt recorded."""
        started = self.clock()
        status: int | None = None
        error: str | None = None
        failure: str | None = None
        parsed: Any = None
        reply: Reply | None = None
        try:
            wire = await self.transport.send(WireRequest(method, url, headers, content, read_timeout))
        except CertificateRefused as exc:  # refused again at every attempt: failed at once
            error, failure = f"cannot reach {self.name}: {exc}", "not_sent"
            raise NotSentError(
                f"{error}. Nothing was sent, and it is not retried: a certificate a CA of your own signed "
                f"needs tls_ca_file (a PEM file of that CA) in connector {self.name}, one made for another "
                "host name a base_url with that name. Send the event again once that is fixed",
                connector=self.name,
                attempts=attempt,
            ) from exc
        except CaFileUnloadable as exc:  # a configuration error, the same at every attempt
            error, failure = f"cannot reach {self.name}: {exc}", "not_sent"
            raise NotSentError(
                f"{error}. Nothing was sent, and it is not retried: tls_ca_file of connector {self.name} "
                "must be a readable PEM file of CA certificates. Send the event again once it is",
                connector=self.name,
                attempts=attempt,
            ) from exc
        except NotSent as exc:
            error, failure = f"cannot reach {self.name}: {exc}", "not_sent"
            raise AttemptFailed("not_sent", error) from exc
        except NoReply as exc:
            error, failure = f"{self.name} did not answer: {exc}", "uncertain"
            raise AttemptFailed("uncertain", error) from exc
        except asyncio.CancelledError:
            error, failure = f"abandoned while waiting for {self.name}", "uncertain"
            raise
        else:
            status = wire.status
            parsed = parse_body(wire.content, wire.headers.get("content-type"))
            failure = self.retry.failure_of(status)
            reply = Reply(status, wire.headers, parsed, wire.text, url)
            return reply
        finally:
            latency = self.clock() - started
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s %s -> %s in %.3f s (attempt %d)",
                    self.name,
                    method,
                    self.redactor.redact(url),
                    status if status is not None else error,
                    latency,
                    attempt,
                )
            recorder = active.get()
            if self.on_call is not None or recorder is not None:
                record = CallRecord(
                    self.name,
                    method,
                    path,
                    status,
                    latency,
                    attempt,
                    self.redactor.redact(error) if error else None,
                    failure,
                    self.redactor,
                    url,
                    sent_body,
                    parsed,
                    self._base_url or "",
                )
                if reply is not None:
                    reply.record = record
                if self.on_call is not None:
                    self.on_call(record)
                if recorder is not None:
                    recorder.call(record)


class _Pages:
    """The `fetch` a paginator drives: one page per call, paging values placed, attempts counted."""

    def __init__(
        self,
        connector: Connector,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        ends: float | None,
    ) -> None:
        self.connector = connector
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.ends = ends
        self.attempts = 0
        self.last: Reply | None = None

    async def fetch(self, query: dict[str, Any], url: str | None) -> Page:
        page_query, page_body = self.connector.paginator.place(query, self.body)
        reply, result, attempts, _ = await self.connector._call(
            self.method, url or self.path, page_query, self.headers, page_body, self.ends, True, None
        )
        assert reply is not None
        self.attempts += attempts
        self.last = reply
        return Page(reply.body, result, reply.url, reply.headers)
