"""What the token kinds share: values taken from a login reply, where they go on each call, and when
they are renewed.

A login reply gives a **token** and any other named **values** (a session cookie, a numeric user id), each
read from the reply's body (JMESPath), a header or a cookie the reply sets. **inject** puts them on every
call: a header, a query parameter, a cookie, or any path of the JSON body (`params.args[1]`); a value
that is exactly `{name}` keeps its JSON type (a numeric uid stays a number), and `${VAR}` in a value is
read from the environment when the call is made (a password every call carries). The lifetime comes from the
reply with a unit, or is fixed (`ttl`); without either the token lives until the system rejects it.

Token kinds refresh ahead of expiry, and one login runs at a time: callers waiting on the lock find the
new token and reuse it. Credentials are resolved from `${VAR}` on first use, never before. No cookie is
kept implicitly: a cookie reaches later calls only when `inject` names it.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.connectors.bodypath import BodyPath, parse_body_path
from engine.connectors.envelope import truthy
from engine.env import REFERENCE
from engine.errors import AuthError, ConnectorError
from engine.expressions import SelectionField
from engine.redaction import Redactor

from ._base import AuthContext, Authenticator, Model, OutgoingCall

__all__ = [
    "InjectConfig",
    "Lifetime",
    "ReloginConfig",
    "ReplyValue",
    "TokenAuth",
    "TokenConfig",
    "note_secrets",
]

log = logging.getLogger("mesbridge.connectors.auth")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PIECE = re.compile(r"(?P<env>" + REFERENCE.pattern + r")|\{(?P<value>[A-Za-z_][A-Za-z0-9_]*)\}")
"""An inject value's parts in one pass: a `${VAR}` reference, or a `{name}` of the login's values."""


class ReplyValue(Model):
    """Where a value is in the login reply: a JMESPath over the body, a header, or a cookie it sets.
    A plain string is a JMESPath over the body."""

    body: SelectionField | None = Field(None, description="JMESPath over the reply body.")
    header: str | None = Field(None, description="A reply header.")
    cookie: str | None = Field(None, description="A cookie the reply sets (Set-Cookie).")

    @model_validator(mode="after")
    def _one_place(self) -> ReplyValue:
        given = [name for name in ("body", "header", "cookie") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("say where the value is with exactly one of: body, header, cookie")
        return self

    @property
    def where(self) -> str:
        if self.body is not None:
            return f"body {self.body.source!r}"
        return f"header {self.header!r}" if self.header is not None else f"cookie {self.cookie!r}"

    def read(self, reply: Any) -> Any:
        """The value in `reply` (None when it is not there)."""
        if self.body is not None:
            return self.body.search(reply.body) if isinstance(reply.body, dict | list) else None
        if self.header is not None:
            return reply.headers.get(self.header)
        return _cookies(reply).get(str(self.cookie))


class Lifetime(ReplyValue):
    """Where the token's lifetime is in the reply, and its unit."""

    unit: Literal["seconds", "minutes", "hours", "absolute"] = Field(
        "seconds",
        description="seconds, minutes or hours of lifetime, or absolute: the time it expires (ISO 8601, "
        "an HTTP date, or epoch seconds).",
    )

    def seconds(self, reply: Any) -> float | None:
        """The lifetime in seconds from now; None when the reply does not say."""
        found = self.read(reply)
        if found is None or found == "" or isinstance(found, bool):
            return None
        if self.unit == "absolute":
            return _until(found)
        try:
            amount = float(found)
        except (TypeError, ValueError):
            return None
        return amount * {"seconds": 1, "minutes": 60, "hours": 3600}[self.unit]


def _until(moment: Any) -> float | None:
    if isinstance(moment, int | float):
        return float(moment) - time.time()
    text = str(moment).strip()
    try:
        return float(text) - time.time()
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
        when = parsed
    return when.timestamp() - time.time()


def _cookies(reply: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    getall = getattr(reply.headers, "getall", None)
    for header in getall("set-cookie", []) if getall else [reply.headers.get("set-cookie", "")]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        found.update({name: morsel.value for name, morsel in jar.items()})
    return found


def _reply_value(value: Any) -> Any:
    return {"body": value} if isinstance(value, str) else value


ReplyValueField = Annotated[ReplyValue, BeforeValidator(_reply_value)]
LifetimeField = Annotated[Lifetime, BeforeValidator(_reply_value)]
BodyPathField = Annotated[
    BodyPath,
    PlainValidator(lambda v: v if isinstance(v, BodyPath) else parse_body_path(str(v))),
    PlainSerializer(lambda p: p.text, return_type=str),
    WithJsonSchema({"type": "string", "description": "A path into the JSON body, e.g. params.args[1]"}),
]


class InjectConfig(Model):
    """Where values from the login go on each call."""

    model_config = {**Model.model_config, "arbitrary_types_allowed": True}

    in_: Literal["header", "query", "cookie", "body"] = Field(
        "header",
        alias="in",
        description="A header, a query parameter, a cookie, or a place in the JSON body.",
    )
    name: str | None = Field(
        None, description="Header, parameter or cookie name; for the body, a top-level field (or use path)."
    )
    path: BodyPathField | None = Field(
        None, description="Body only: where in the JSON body, list indices included, e.g. params.args[1]."
    )
    format: str = Field(
        "{token}",
        alias="value",
        description="What is sent: `{token}` and the login's named values are filled in; exactly one "
        "`{name}` sends the value with its own JSON type. `${VAR}` is read from the environment.",
    )

    @model_validator(mode="after")
    def _target(self) -> InjectConfig:
        if self.in_ == "body":
            if self.path is None and self.name is None:
                raise ValueError("a body injection needs a `path` (or a top-level `name`)")
            if self.path is None:
                self.path = parse_body_path(str(self.name))
        elif self.path is not None:
            raise ValueError(f"`path` is for the body; a {self.in_} takes a `name`")
        elif self.name is None:
            self.name = "Authorization" if self.in_ == "header" else None
            if self.name is None:
                raise ValueError(f"a {self.in_} injection needs a `name`")
        return self

    def placeholders(self) -> list[str]:
        return [m.group("value") for m in _PIECE.finditer(self.format) if m.group("value")]

    def value(self, values: dict[str, Any], resolve: Callable[[str], str] = str) -> Any:
        """What is sent, from the login's values (typed when the format is one placeholder); each
        `${VAR}` through `resolve`. One pass: a variable's text is never read as a placeholder."""
        whole = _PLACEHOLDER.fullmatch(self.format)
        if whole is not None:
            return values[whole.group(1)]

        def fill(match: re.Match[str]) -> str:
            if match.group("env") is not None:
                return resolve(match.group("env"))
            return _text(values[match.group("value")])

        return _PIECE.sub(fill, self.format)

    def put(
        self,
        call: OutgoingCall,
        values: dict[str, Any],
        connector: str,
        resolve: Callable[[str], str] = str,
    ) -> None:
        """Place the value on the call."""
        value = self.value(values, resolve)
        if self.in_ == "body":
            assert self.path is not None
            try:
                call.body = self.path.write(call.body, value)
            except ValueError as exc:
                raise ConnectorError(
                    f"{connector}: cannot put the login's value in the body: {exc}", connector=connector
                ) from None
            return
        assert self.name is not None
        text = _text(value)
        if self.in_ == "header":
            call.headers[self.name] = text
        elif self.in_ == "query":
            call.query[self.name] = text
        else:
            cookie = next((k for k in call.headers if k.lower() == "cookie"), "Cookie")
            earlier = call.headers.get(cookie)
            call.headers[cookie] = f"{earlier}; {self.name}={text}" if earlier else f"{self.name}={text}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _inject_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class ReloginConfig(Model):
    """What a dead token looks like; the call is retried once after a new login."""

    status: list[int] = Field(
        default_factory=lambda: [401], description="HTTP statuses meaning a dead token."
    )
    body: SelectionField | None = Field(
        None, description="JMESPath predicate over the reply body meaning a dead token (any status)."
    )


class TokenConfig(Model):
    """The fields every token kind shares."""

    token: ReplyValueField = Field(description="Where the token is in the login reply.")
    values: dict[str, ReplyValueField] = Field(
        default_factory=dict,
        description="More values to keep from the login reply, by name (a uid, a route).",
    )
    expires_in: LifetimeField | None = Field(
        None, description="Where the lifetime is in the reply, and its unit."
    )
    ttl: float | None = Field(None, gt=0, description="Fixed lifetime in seconds when the reply gives none.")
    refresh_before: float = Field(30, ge=0, description="Renew this many seconds before expiry.")
    inject: Annotated[list[InjectConfig], BeforeValidator(_inject_list)] = Field(
        default_factory=lambda: [InjectConfig.model_validate({})],
        description="Where the token and values go on each call (one, or a list).",
    )
    relogin_when: ReloginConfig = Field(
        default_factory=lambda: ReloginConfig.model_validate({}), description="What a dead token looks like."
    )

    @field_validator("values")
    @classmethod
    def _not_token(cls, values: dict[str, Any]) -> dict[str, Any]:
        if "token" in values:
            raise ValueError("`token` is the token itself; name the other values differently")
        return values

    @model_validator(mode="after")
    def _known_placeholders(self) -> TokenConfig:
        known = {"token", *self.values}
        for where in self.inject:
            for name in where.placeholders():
                if name not in known:
                    named = ", ".join(sorted(self.values)) or "no values"
                    raise ValueError(f"inject names {{{name}}}: neither the token nor one of: {named}")
        return self


class TokenAuth(Authenticator):
    """A token (and named values) obtained by a request, kept until they expire or are rejected."""

    static = False
    _token: str | None = None
    _expires_at: float | None = None

    def __init__(self, config: Any, ctx: AuthContext) -> None:
        super().__init__(config, ctx)
        self._lock = asyncio.Lock()
        self._values: dict[str, Any] = {}
        self._noted: collections.deque[set[str]] = collections.deque(maxlen=2)
        """The values each of the last two logins added to the redactor."""
        self.injects_body = any(where.in_ == "body" for where in config.inject)

    @property
    def held(self) -> bool:
        """Whether a token is held now (its value is never exposed but through `token()`)."""
        return self._token is not None

    @property
    def expires_at(self) -> float | None:
        """When the held token expires, on the auth context's clock; None when it is kept until the
        system rejects it."""
        return self._expires_at

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

    def _login_mark(self) -> str:
        """Which login the current token came from: a system may issue the same token again (a uid, a
        reused session id), so the token's text cannot tell a stale login from a fresh one."""
        return f"login {self.logins}"

    async def renew(self, stale: str | None) -> None:
        async with self._lock:
            if self._token is not None and self._login_mark() != stale and self._valid():
                return  # another caller logged in since `stale` was used
            self._token = None
            await self._login()

    async def apply(self, call: OutgoingCall) -> str | None:
        await self.token()
        used = self._login_mark()
        values = self._values
        for index, where in enumerate(self.config.inject):
            at = f"auth.inject[{index}].value"
            where.put(call, values, self.ctx.connector, lambda text, at=at: str(self.ctx.resolve(text, at)))
        return used

    def rejected(self, status: int, body: Any) -> bool:
        when: ReloginConfig = self.config.relogin_when
        if status in when.status:
            return True
        return when.body is not None and isinstance(body, dict | list) and truthy(when.body, body)

    def _note(self, values: dict[str, Any]) -> None:
        """Mask a login's values from now on, and forget those of the login before the last: a call
        in flight may still carry the previous token, none the one before it. So the secrets of a
        long-running service stay as many as its connectors, not as its logins."""
        added = {
            value for value in values.values() if isinstance(value, str) and self.ctx.redactor.add(value)
        }
        if len(self._noted) == self._noted.maxlen:
            oldest = self._noted[0]
            live = set().union(*list(self._noted)[1:]) | {v for v in values.values() if isinstance(v, str)}
            for value in oldest - live:
                self.ctx.redactor.discard(value)
        self._noted.append(added)

    def _failed(self, reply: Any, message: str) -> AuthError:
        return AuthError(
            f"login to {self.ctx.connector} failed: {message}",
            connector=self.ctx.connector,
            http_status=reply.status,
            body=self.ctx.redactor.redact(reply.body),
        )

    async def _login(self) -> None:
        reply = await self._request()
        if reply.status >= 400:
            raise self._failed(
                reply, self.ctx.error_message(reply.body, reply.text) or f"HTTP {reply.status}"
            )
        config: TokenConfig = self.config
        token = config.token.read(reply)
        if not isinstance(token, str | int) or isinstance(token, bool) or token == "":
            message = self.ctx.error_message(reply.body, reply.text) if reply.status < 300 else None
            raise self._failed(reply, message or f"no token at {config.token.where}")
        values: dict[str, Any] = {"token": str(token)}
        for name, source in config.values.items():
            found = source.read(reply)
            if found is None:
                raise self._failed(reply, f"the reply has no {name} (at {source.where})")
            values[name] = found
        self._note(values)
        lifetime = config.expires_in.seconds(reply) if config.expires_in is not None else None
        if lifetime is None:
            lifetime = config.ttl
        now = self.ctx.clock()
        self._expires_at = (
            None if lifetime is None else now + lifetime - min(config.refresh_before, lifetime / 2)
        )
        self._token, self._values = values["token"], values
        self.logins += 1
        validity = f"valid for {lifetime:g} s" if lifetime is not None else "kept until the system rejects it"
        log.info("%s: logged in (token %s)", self.ctx.connector, validity)

    async def _request(self) -> Any:
        raise NotImplementedError


def note_secrets(body: Any, redactor: Redactor) -> None:
    """Passwords and secrets inside a login body are secrets wherever they show up later."""
    if isinstance(body, dict):
        for key, value in body.items():
            if isinstance(value, str) and any(w in key.lower() for w in ("pass", "secret", "token", "key")):
                redactor.add(value)
            note_secrets(value, redactor)
    elif isinstance(body, list):
        for item in body:
            note_secrets(item, redactor)
