"""`kind: query`: a fixed query parameter, e.g. `?api_key=${KEY}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import AUTH, Authenticator, Model, OutgoingCall


class QueryAuthConfig(Model):
    """A fixed query parameter, e.g. `?api_key=${KEY}`."""

    kind: Literal["query"] = Field(description="A static query parameter.")
    name: str = Field(description="Query parameter name.")
    value: str = Field(description="Query parameter value; may be `${VAR}`.")


@AUTH.register(QueryAuthConfig)
class QueryAuth(Authenticator):
    config: QueryAuthConfig
    _value: str | None = None

    async def apply(self, call: OutgoingCall) -> str | None:
        if self._value is None:
            self._value = self.ctx.resolve(self.config.value, "auth.value")
            self.ctx.redactor.add(self._value)
        call.query[self.config.name] = self._value
        return None
