"""What every auth kind is built on: the call being authorized, what the connector lends, the registry.

An authenticator is an async hook around one call rather than an `httpx.Auth`-style flow, because
two kinds need what such a flow cannot see: body injection edits the JSON body before it is encoded
(a JSON-RPC token field), and `relogin_when.body` reads the parsed reply (some systems answer HTTP 200
to a dead token). The connector calls `apply` before sending, asks `rejected` of the reply, and on a
rejection calls `renew` with the token it used and retries once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine.redaction import Redactor
from engine.registry import Registry

if TYPE_CHECKING:
    from engine.connectors.connector import Reply

__all__ = ["AUTH", "AuthContext", "Authenticator", "Model", "OutgoingCall", "build_auth"]


@dataclass
class OutgoingCall:
    """A call about to be sent; authenticators add headers, query parameters or body fields."""

    method: str
    url: str
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class AuthContext:
    """What the connector lends its authenticator."""

    connector: str
    resolve: Callable[[Any, str], Any]
    """resolve(value, where): `${VAR}` references resolved, secret variables noted for redaction."""
    send: Callable[[str, str, dict[str, str], Any, str | None], Awaitable[Reply]]
    """send(method, url_or_path, headers, json_body, content_type): a raw call; failures to retry raised."""
    error_message: Callable[[Any, str], str | None]
    redactor: Redactor
    clock: Callable[[], float]


class Authenticator:
    """Base authenticator: sends calls unchanged."""

    kind: ClassVar[str]
    static: ClassVar[bool] = True
    """True when the credentials cannot be renewed: a 401/403 is reported as AuthError."""
    injects_body: bool = False
    """True when `apply` writes into the body, so the body is encoded after it, on every attempt."""

    def __init__(self, config: Any, ctx: AuthContext) -> None:
        self.config = config
        self.ctx = ctx
        self.logins = 0
        """Logins made so far (token kinds)."""

    @property
    def held(self) -> bool:
        """Whether credentials are held now: always for static kinds, once logged in for token kinds."""
        return True

    @property
    def expires_at(self) -> float | None:
        """When the held credentials expire, on the context's clock; None when not known to."""
        return None

    async def apply(self, call: OutgoingCall) -> str | None:
        """Authorize the call in place; returns what names the credentials used, handed back to `renew`
        (for token kinds the login they came from; None for static kinds)."""
        return None

    def rejected(self, status: int, body: Any) -> bool:
        """True when the reply says the token is dead and a new login may help."""
        return False

    async def renew(self, stale: str | None) -> None:
        """Obtain a new token unless another caller already logged in since `stale` was used."""


class Model(BaseModel):
    """Base of the auth config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


AUTH: Registry[Authenticator] = Registry("auth")
"""Auth kinds by `kind`; each module of this package registers its own."""


def build_auth(config: Any, ctx: AuthContext) -> Authenticator:
    """The authenticator for a config; an unknown kind names the valid ones."""
    return AUTH.build(config, ctx)
