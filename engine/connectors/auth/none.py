"""`kind: none`: no credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import AUTH, Authenticator, Model


class NoAuthConfig(Model):
    """No credentials."""

    kind: Literal["none"] = Field("none", description="No authentication.")


@AUTH.register(NoAuthConfig)
class NoAuth(Authenticator):
    static = False
