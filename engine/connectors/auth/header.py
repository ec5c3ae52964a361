"""`kind: header`: a fixed header, e.g. `Authorization: Bearer ${KEY}` or `X-Api-Key: ${KEY}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import AUTH, Authenticator, Model, OutgoingCall


class HeaderAuthConfig(Model):
    """A fixed header, e.g. `Authorization: Bearer ${KEY}` or `X-Api-Key: ${KEY}`."""

    kind: Literal["header"] = Field(description="A static header.")
    name: str = Field(description="Header name.")
    value: str = Field(description="Header value; may be `${VAR}`.")


@AUTH.register(HeaderAuthConfig)
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
