"""`kind: oauth2_client_credentials`: the OAuth 2 client credentials grant."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from ._base import AUTH
from ._token import InjectConfig, LifetimeField, ReplyValueField, TokenAuth, TokenConfig, _inject_list


class OAuth2ClientCredentialsConfig(TokenConfig):
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
    token: ReplyValueField = Field(
        "access_token",  # type: ignore[assignment]
        description="Where the token is in the reply (default: the body's access_token).",
    )
    expires_in: LifetimeField | None = Field(
        "expires_in",  # type: ignore[assignment]
        description="Where the lifetime is in the reply, and its unit (default: expires_in seconds).",
    )
    inject: Annotated[list[InjectConfig], BeforeValidator(_inject_list)] = Field(
        default_factory=lambda: [
            InjectConfig.model_validate({"name": "Authorization", "format": "Bearer {token}"})
        ],
        description="Where the token goes (default: Authorization: Bearer).",
    )


@AUTH.register(OAuth2ClientCredentialsConfig)
class OAuth2ClientCredentials(TokenAuth):
    config: OAuth2ClientCredentialsConfig

    async def _request(self) -> Any:
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
