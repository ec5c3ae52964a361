"""`kind: basic`: HTTP Basic, the two fields sent in the order written."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from ._base import AUTH, Authenticator, Model, OutgoingCall


class BasicAuthConfig(Model):
    """HTTP Basic. A personal access token often goes as username = the token, password = a fixed word."""

    kind: Literal["basic"] = Field(description="HTTP Basic authentication.")
    username: str = Field(description="The user name, sent first; may be `${VAR}`.")
    password: str = Field(description="The password, sent second; may be `${VAR}`.")


@AUTH.register(BasicAuthConfig)
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
