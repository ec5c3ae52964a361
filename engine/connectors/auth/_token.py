"""What the token kinds share: a token obtained by a request, where it goes on each call, and when it is
renewed. Token kinds refresh ahead of expiry, and one login runs at a time: callers waiting on the lock
find the new token and reuse it. Credentials are resolved from `${VAR}` on first use, never before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from pydantic import Field

from engine.connectors.envelope import truthy
from engine.errors import AuthError, ConnectorError
from engine.expressions import Selection, SelectionField
from engine.redaction import Redactor

from ._base import AuthContext, Authenticator, Model, OutgoingCall

__all__ = ["InjectConfig", "ReloginConfig", "TokenAuth", "inject", "note_secrets"]

log = logging.getLogger("mesbridge.connectors.auth")


class InjectConfig(Model):
    """Where an obtained token goes on each call."""

    in_: Literal["header", "query", "body"] = Field(
        "header", alias="in", description="header, query parameter, or a top-level field of the JSON body."
    )
    name: str = Field("Authorization", description="Header, parameter or body field name.")
    format: str = Field("{token}", description="The value sent; `{token}` is replaced by the token.")


class ReloginConfig(Model):
    """What a dead token looks like; the call is retried once after a new login."""

    status: list[int] = Field(
        default_factory=lambda: [401], description="HTTP statuses meaning a dead token."
    )
    body: SelectionField | None = Field(
        None, description="JMESPath predicate over the reply body meaning a dead token (any status)."
    )


def inject(call: OutgoingCall, where: InjectConfig, token: str, connector: str) -> None:
    """Put the token on the call as `where` says."""
    value = where.format.replace("{token}", token)
    if where.in_ == "header":
        call.headers[where.name] = value
    elif where.in_ == "query":
        call.query[where.name] = value
    else:
        if call.body is None:
            call.body = {}
        if not isinstance(call.body, dict):
            raise ConnectorError(
                f"{connector}: the token goes in the body, but this call's body is not an object",
                connector=connector,
            )
        call.body = {where.name: value, **{k: v for k, v in call.body.items() if k != where.name}}


class TokenAuth(Authenticator):
    """A token obtained by a request, kept until it expires or is rejected."""

    static = False
    _token: str | None = None
    _expires_at: float | None = None

    def __init__(self, config: Any, ctx: AuthContext) -> None:
        super().__init__(config, ctx)
        self._lock = asyncio.Lock()
        self.logins = 0
        self.injects_body = config.inject.in_ == "body"

    def _valid(self) -> bool:
        return self._token is not None and (self._expires_at is None or self.ctx.clock() < self._expires_at)

    async def token(self) -> str:
        """The current token, logging in first when there is none or it is about to expire."""
        if not self._valid():
            async with self._lock:
                if not self._valid():
                    await self._login()
        assert self._token is not None
        return self._token

    async def renew(self, stale: str | None) -> None:
        async with self._lock:
            if self._token is not None and self._token != stale and self._valid():
                return
            self._token = None
            await self._login()

    async def apply(self, call: OutgoingCall) -> str | None:
        token = await self.token()
        inject(call, self.config.inject, token, self.ctx.connector)
        return token

    def rejected(self, status: int, body: Any) -> bool:
        when: ReloginConfig = self.config.relogin_when
        if status in when.status:
            return True
        return when.body is not None and isinstance(body, dict | list) and truthy(when.body, body)

    async def _login(self) -> None:
        reply = await self._request()
        token = self._pick(self.config.token, reply)
        if not isinstance(token, str | int) or isinstance(token, bool) or token == "":
            message = self.ctx.error_message(reply.body, reply.text) if reply.status < 300 else None
            message = message or f"no token at {self.config.token.source!r}"
            raise AuthError(
                f"login to {self.ctx.connector} failed: {message}",
                connector=self.ctx.connector,
                http_status=reply.status,
                body=self.ctx.redactor.redact(reply.body),
            )
        token = str(token)
        self.ctx.redactor.add(token)
        lifetime = self._lifetime(reply)
        now = self.ctx.clock()
        if lifetime is None:
            self._expires_at = None
        else:
            self._expires_at = now + lifetime - min(self.config.refresh_before, lifetime / 2)
        self._token = token
        self.logins += 1
        validity = f"valid for {lifetime:g} s" if lifetime is not None else "kept until the system rejects it"
        log.info("%s: logged in (token %s)", self.ctx.connector, validity)

    def _pick(self, path: Selection, reply: Any) -> Any:
        if reply.status >= 400:
            message = self.ctx.error_message(reply.body, reply.text) or f"HTTP {reply.status}"
            raise AuthError(
                f"login to {self.ctx.connector} failed: {message}",
                connector=self.ctx.connector,
                http_status=reply.status,
                body=self.ctx.redactor.redact(reply.body),
            )
        return path.search(reply.body) if isinstance(reply.body, dict | list) else None

    def _lifetime(self, reply: Any) -> float | None:
        path: Selection | None = self.config.expires_in
        if path is not None and isinstance(reply.body, dict | list):
            found = path.search(reply.body)
            try:
                if found is not None:
                    return float(found)
            except (TypeError, ValueError):
                pass
        return getattr(self.config, "ttl", None)

    async def _request(self) -> Any:
        raise NotImplementedError


def note_secrets(body: Any, redactor: Redactor) -> None:
    """Passwords and secrets inside a login body are secrets wherever they show up later."""
    if isinstance(body, dict):
        for key, value in body.items():
            if isinstance(value, str) and any(w in key.lower() for w in ("pass", "secret", "token", "key")):
                redactor.add(value)
            note_secrets(value, redactor)
