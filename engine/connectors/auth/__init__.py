"""Auth kinds: each module of this package is one kind, its config model and its authenticator,
registered in `AUTH` by `kind`. `AuthConfig` (the union the connector config uses) is built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

from ._base import AUTH, AuthContext, Authenticator, OutgoingCall, build_auth

Registry.load(__name__)

if TYPE_CHECKING:
    AuthConfig = Any
else:
    AuthConfig = AUTH.union()
"""Any registered auth config, chosen by `kind`."""

__all__ = ["AUTH", "AuthConfig", "AuthContext", "Authenticator", "OutgoingCall", "build_auth"]
