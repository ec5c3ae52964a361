"""`kind: oauth2_client_credentials`: the OAuth 2 client credentials grant."""

from __future__ import annotations

import urllib.parse
from typing import Any, Literal

from pydantic import Field

from engine.expressions import SelectionField

from ._base import AUTH, Model
from ._token import InjectConfig, ReloginConfig, TokenAuth


class OAuth2ClientCredentialsConfig(Model):
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
