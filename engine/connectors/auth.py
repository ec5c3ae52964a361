"""Auth kinds: each a config model and an authenticator, registered together in `AUTH_KINDS` by `kind`.

An authenticator is an async hook around one call rather than an `httpx.Auth` flow, because two of
the kinds need what an httpx flow cannot see: body injection edits the JSON body before it is
serialized (a JSON-RPC token field, say), and `relogin_when.body` reads the parsed reply (some systems
answer HTTP 200 to a dead token). The connector calls `apply` before sending, asks `rejected` of the
reply, and on a rejection calls `renew` with the token it used and retries once.

Token kinds refresh ahead of expiry, and one login runs at a time: callers waiting on the lock find
the new token and reuse it. Credentials are resolved from `${VAR}` on first use, never before.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import AuthError, ConnectorError
from engine.expressions import Selection, SelectionField
from engine.redaction import Redactor

from .envelope import truthy
from .kinds import Kinds

__all__ = [
    "AUTH_KINDS",
    "AuthConfig",
    "AuthContext",
    "Authenticator",
    "BasicAuthConfig",
    "HeaderAuthConfig",
    "InjectConfig",
    "LoginAuthConfig",
    "LoginRequest",
    "NoAuthConfig",
    "OAuth2ClientCredentialsConfig",
    "OutgoingCall",
    "QueryAuthConfig",
    "RawReply",
    "ReloginConfig",
    "build_auth",
]

log = logging.getLogger("mesbridge.connectors.auth")


# -- what an authenticator works on ------------------------------------------------------------------


@dataclass
class OutgoingCall:
    """A call about to be sent; authenticators add headers, query parameters or body fields."""

    method: str
    url: str
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class RawReply:
    """A reply as read off the wire: status, headers, parsed body (JSON, text or None) and text."""

    status: int
    headers: Any
    body: Any
    text: str


@dataclass
class AuthContext:
    """What the connector lends its authenticator."""

    connector: str
    resolve: Callable[[Any, str], Any]
    """resolve(value, where): `${VAR}` references resolved, secret variables noted for redaction."""
    send: Callable[[str, str, dict[str, str], Any, str | None], Awaitable[RawReply]]
    """send(method, url_or_path, headers, json_body, content_type): a raw call, transient failures raised."""
    error_message: Callable[[Any, str], str | None]
    redactor: Redactor
    clock: Callable[[], float]


class Authenticator:
    """Base authenticator: sends calls unchanged."""

    kind: ClassVar[str]
    static: ClassVar[bool] = True
    """True when the credentials cannot be renewed: a 401/403 is reported as AuthError."""

    def __init__(self, config: Any, ctx: AuthContext) -> None:
        self.config = config
        self.ctx = ctx

    async def apply(self, call: OutgoingCall) -> str | None:
        """Authorize the call in place; returns the token used (None for static kinds)."""
        return None

    def rejected(self, status: int, body: Any) -> bool:
        """True when the reply says the token is dead and a new login may help."""
        return False

    async def renew(self, stale: str | None) -> None:
        """Obtain a new token unless another caller already replaced `stale`."""


_KINDS: Kinds[Authenticator] = Kinds("auth")
AUTH_KINDS = _KINDS.classes
register = _KINDS.register


def build_auth(config: Any, ctx: AuthContext) -> Authenticator:
    """The authenticator for a config; an unknown kind names the valid ones."""
    return _KINDS.build(config, ctx)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


# -- none, basic, header, query ----------------------------------------------------------------------


class NoAuthConfig(_Model):
    """No credentials."""

    kind: Literal["none"] = Field("none", description="No authentication.")


@register("none")
class NoAuth(Authenticator):
    static = False


class BasicAuthConfig(_Model):
    """HTTP Basic. A personal access token often goes as username = the token, password = a fixed word."""

    kind: Literal["basic"] = Field(description="HTTP Basic authentication.")
    username: str = Field(description="The user name, sent first; may be `${VAR}`.")
    password: str = Field(description="The password, sent second; may be `${VAR}`.")


@register("basic")
class BasicAuth(Authenticator):
    config: BasicAuthConfig
    _header: str | None = None

    async def apply(self, call: OutgoingCall) -> str | None:
        if self._header is None:
            user = self.ctx.resolve(self.config.username, "auth.username")
            password = self.ctx.resolve(self.config.password, "auth.password")
            self.ctx.redactor.add_basic(user, password)
            self._header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        call.headers["Authorization"] = self._header
        return None


class HeaderAuthConfig(_Model):
    """A fixed header, e.g. `Authorization: Bearer ${KEY}` or `X-Api-Key: ${KEY}`."""

    kind: Literal["header"] = Field(description="A static header.")
    name: str = Field(description="Header name.")
    value: str = Field(description="Header value; may be `${VAR}`.")


@register("header")
class HeaderAuth(Authenticator):
    config: HeaderAuthConfig
    _value: str | None = None

    async def apply(self, call: OutgoingCall) -> str | None:
        if self._value is None:
            self._value = self.ctx.resolve(self.config.value, "auth.value")
            self.ctx.redactor.add(self._value)
            self.ctx.redactor.add(self._value.split(" ", 1)[-1])
        call.headers[self.config.name] = self._value
        return None


class QueryAuthConfig(_Model):
    """A fixed query parameter, e.g. `?api_key=${KEY}`."""

    kind: Literal["query"] = Field(description="A static query parameter.")
    name: str = Field(description="Query parameter name.")
    value: str = Field(description="Query parameter value; may be `${VAR}`.")


@register("query")
class QueryAuth(Authenticator):
    config: QueryAuthConfig
    _value: str | None = None

    async def apply(self, call: OutgoingCall) -> str | None:
        if self._value is None:
            self._value = self.ctx.resolve(self.config.value, "auth.value")
            self.ctx.redactor.add(self._value)
            self.ctx.redactor.add(urllib.parse.quote(self._value, safe=""))
        call.query[self.config.name] = self._value
        return None


# -- token kinds ---------------------------------------------------------------------------------------


class InjectConfig(_Model):
    """Where an obtained token goes on each call."""

    in_: Literal["header", "query", "body"] = Field(
        "header", alias="in", description="header, query parameter, or a top-level field of the JSON body."
    )
    name: str = Field("Authorization", description="Header, parameter or body field name.")
    format: str = Field("{token}", description="The value sent; `{token}` is replaced by the token.")


class ReloginConfig(_Model):
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


class _TokenAuth(Authenticator):
    """A token obtained by a request, kept until it expires or is rejected."""

    static = False
    _token: str | None = None
    _expires_at: float | None = None

    def __init__(self, config: Any, ctx: AuthContext) -> None:
        super().__init__(config, ctx)
        self._lock = asyncio.Lock()
        self.logins = 0

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

    def _pick(self, path: Selection, reply: RawReply) -> Any:
        if reply.status >= 400:
            message = self.ctx.error_message(reply.body, reply.text) or f"HTTP {reply.status}"
            raise AuthError(
                f"login to {self.ctx.connector} failed: {message}",
                connector=self.ctx.connector,
                http_status=reply.status,
                body=self.ctx.redactor.redact(reply.body),
            )
        return path.search(reply.body) if isinstance(reply.body, dict | list) else None

    def _lifetime(self, reply: RawReply) -> float | None:
        path: Selection | None = self.config.expires_in
        if path is not None and isinstance(reply.body, dict | list):
            found = path.search(reply.body)
            try:
                if found is not None:
                    return float(found)
            except (TypeError, ValueError):
                pass
        return getattr(self.config, "ttl", None)

    async def _request(self) -> RawReply:
        raise NotImplementedError


class OAuth2ClientCredentialsConfig(_Model):
    """OAuth 2 client credentials grant."""

    kind: Literal["oauth2_client_credentials"] = Field(description="OAuth 2 client credentials.")
    token_url: str = Field(description="Token endpoint: an absolute URL or a path under base_url.")
    client_id: str = Field(description="Client id; may be `${VAR}`.")
    client_secret: str = Field(description="Client secret; may be `${VAR}`.")
    scope: str | None = Field(None, description="Requested scope.")
    body: Literal["json", "form"] = Field("form", description="Send the grant as JSON or as a form.")
    extra: dict[str, str] = Field(
        default_factory=dict, description="More fields of the grant (audience, ...)."
    )
    token: SelectionField = Field(
        "access_token",  # type: ignore[assignment]
        description="JMESPath to the token in the reply.",
    )
    expires_in: SelectionField | None = Field(
        "expires_in",  # type: ignore[assignment]
        description="JMESPath to the lifetime in seconds.",
    )
    ttl: float | None = Field(None, gt=0, description="Lifetime in seconds when the reply gives none.")
    refresh_before: float = Field(30, ge=0, description="Renew this many seconds before expiry.")
    inject: InjectConfig = Field(
        default_factory=lambda: InjectConfig.model_validate(
            {"name": "Authorization", "format": "Bearer {token}"}
        ),
        description="Where the token goes.",
    )
    relogin_when: ReloginConfig = Field(
        default_factory=lambda: ReloginConfig.model_validate({}), description="What a dead token looks like."
    )


@register("oauth2_client_credentials")
class OAuth2ClientCredentials(_TokenAuth):
    config: OAuth2ClientCredentialsConfig

    async def _request(self) -> RawReply:
        c = self.config
        grant = {
            "grant_type": "client_credentials",
            "client_id": self.ctx.resolve(c.client_id, "auth.client_id"),
            "client_secret": self.ctx.resolve(c.client_secret, "auth.client_secret"),
        }
        self.ctx.redactor.add(grant["client_secret"])
        if c.scope:
            grant["scope"] = c.scope
        grant.update(self.ctx.resolve(c.extra, "auth.extra"))
        url = self.ctx.resolve(c.token_url, "auth.token_url")
        if c.body == "json":
            return await self.ctx.send("POST", url, {"Accept": "application/json"}, grant, "application/json")
        form = urllib.parse.urlencode(grant)
        return await self.ctx.send(
            "POST", url, {"Accept": "application/json"}, form, "application/x-www-form-urlencoded"
        )


class LoginRequest(_Model):
    """The login call. `${VAR}` references are resolved when it is sent."""

    method: str = Field("POST", description="HTTP method.")
    path: str | None = Field(None, description="Path under base_url.")
    url: str | None = Field(None, description="Absolute URL, instead of path.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers.")
    body: Any = Field(None, description="JSON body (any YAML value).")
    content_type: Literal["application/json", "text/plain"] | None = Field(
        None, description="Content type of the body; null: the connector's."
    )


class LoginAuthConfig(_Model):
    """A login request whose reply holds a token, sent with every later call."""

    kind: Literal["login"] = Field(description="Log in with a request, then send the token.")
    request: LoginRequest = Field(description="The login call.")
    token: SelectionField = Field(description="JMESPath to the token in the login reply.")
    expires_in: SelectionField | None = Field(None, description="JMESPath to the token lifetime in seconds.")
    ttl: float | None = Field(None, gt=0, description="Fixed lifetime in seconds when the reply gives none.")
    refresh_before: float = Field(30, ge=0, description="Renew this many seconds before expiry.")
    inject: InjectConfig = Field(
        default_factory=lambda: InjectConfig.model_validate({}), description="Where the token goes."
    )
    relogin_when: ReloginConfig = Field(
        default_factory=lambda: ReloginConfig.model_validate({}), description="What a dead token looks like."
    )


@register("login")
class LoginAuth(_TokenAuth):
    config: LoginAuthConfig

    async def _request(self) -> RawReply:
        r = self.config.request
        target = r.url or r.path
        if not target:
            raise AuthError(
                f"{self.ctx.connector}: auth.request needs a path or a url", connector=self.ctx.connector
            )
        body = self.ctx.resolve(r.body, "auth.request.body")
        _note_secrets(body, self.ctx.redactor)
        headers = self.ctx.resolve(r.headers, "auth.request.headers")
        return await self.ctx.send(
            r.method.upper(), self.ctx.resolve(target, "auth.request"), headers, body, r.content_type
        )


def _note_secrets(body: Any, redactor: Redactor) -> None:
    """Passwords and secrets inside a login body are secrets wherever they show up later."""
    if isinstance(body, dict):
        for key, value in body.items():
            if isinstance(value, str) and any(w in key.lower() for w in ("pass", "secret", "token", "key")):
                redactor.add(value)
            _note_secrets(value, redactor)


AuthConfig = Annotated[
    NoAuthConfig
    | BasicAuthConfig
    | HeaderAuthConfig
    | QueryAuthConfig
    | OAuth2ClientCredentialsConfig
    | LoginAuthConfig,
    Field(discriminator="kind"),
]
"""Any auth config, chosen by `kind`."""


def dumps(body: Any) -> bytes:
    """JSON as sent on the wire: UTF-8, non-ASCII kept as is."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
