"""`kind: login`: any login request whose reply holds a token, sent with every later call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from engine.errors import AuthError

from ._base import AUTH, Model
from ._token import TokenAuth, TokenConfig, note_secrets


class LoginRequest(Model):
    """The login call. `${VAR}` references are resolved when it is sent."""

    method: str = Field("POST", description="HTTP method.")
    path: str | None = Field(None, description="Path under base_url.")
    url: str | None = Field(None, description="Absolute URL, instead of path.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers.")
    body: Any = Field(None, description="JSON body (any YAML value).")
    content_type: Literal["application/json", "text/plain"] | None = Field(
        None, description="Content type of the body; null: the connector's."
    )


class LoginAuthConfig(TokenConfig):
    """A login request whose reply holds a token (and other values), sent with every later call."""

    kind: Literal["login"] = Field(description="Log in with a request, then send the token.")
    request: LoginRequest = Field(description="The login call.")


@AUTH.register(LoginAuthConfig)
class LoginAuth(TokenAuth):
    config: LoginAuthConfig

    async def _request(self) -> Any:
        r = self.config.request
        target = r.url or r.path
        if not target:
            raise AuthError(
                f"{self.ctx.connector}: auth.request needs a path or a url", connector=self.ctx.connector
            )
        body = self.ctx.resolve(r.body, "auth.request.body")
        note_secrets(body, self.ctx.redactor)
        headers = self.ctx.resolve(r.headers, "auth.request.headers")
        return await self.ctx.send(
            r.method.upper(), self.ctx.resolve(target, "auth.request"), headers, body, r.content_type
        )
