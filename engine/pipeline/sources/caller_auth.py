"""How webhook callers authenticate: each kind a model that checks one request, registered by `kind`.

Secrets are compared in constant time; a refusal is a 401 whose message says what was missing or wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.env import FILE_PREFIX, REFERENCE, find_references, resolve
from engine.errors import MissingVariableError, RequestRejected
from engine.registry import Registry

__all__ = ["CALLER_AUTH", "CallerAuth", "CallerAuthModel"]

_WHERE = "webhook authentication"


def _same(given: str | bytes, expected: str | bytes) -> bool:
    left = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
    right = expected.encode("utf-8", "surrogateescape") if isinstance(expected, str) else expected
    return hmac.compare_digest(left, right)


class CallerAuthModel(BaseModel):
    """Base of the caller auth kinds."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def secrets(self) -> dict[str, str]:
        """The fields holding `${VAR}` secrets, by name (checked at start and at each reload)."""
        return {}

    def resolved(self, field: str, environ: Mapping[str, str], where: str = _WHERE) -> str:
        """The value of the secret `field` now. MissingVariableError when it is unset, and when it is
        empty: an empty secret would let in every caller that sends none."""
        raw, at = self.secrets()[field], f"{where}, {field}"
        value = str(resolve(raw, environ, at))
        if not value:
            files = [FILE_PREFIX + m["path"] for m in REFERENCE.finditer(raw) if m["path"]]
            names = ", ".join(sorted(find_references(raw)) + files) or field
            message = f"{names} is empty (needed by {at}); an empty secret would let in every caller"
            raise MissingVariableError(names, at, message)
        return value

    def verify(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, environ: Mapping[str, str]
    ) -> None:
        """Raise RequestRejected(401) unless the request carries what this kind asks for."""


CALLER_AUTH: Registry[CallerAuthModel] = Registry("caller auth")


@CALLER_AUTH.register()
class SharedSecretAuth(CallerAuthModel):
    """The caller sends a shared secret in a header, or in the query when it can only be given a URL."""

    kind: Literal["shared_secret"]
    in_: Literal["header", "query"] = Field("header", alias="in", description="Where the secret travels")
    name: str = Field("X-Mesbridge-Token", description="Header or query parameter carrying the secret")
    secret: str = Field(description="The expected secret; use ${VAR}")

    def secrets(self) -> dict[str, str]:
        return {"secret": self.secret}

    def verify(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, environ: Mapping[str, str]
    ) -> None:
        secret = self.resolved("secret", environ)
        given = headers.get(self.name) if self.in_ == "header" else query.get(self.name)
        if given is None or not _same(given, secret):
            raise RequestRejected(401, f"missing or wrong shared secret in {self.in_} '{self.name}'")


@CALLER_AUTH.register()
class BasicCallerAuth(CallerAuthModel):
    """The caller authenticates with HTTP Basic."""

    kind: Literal["basic"]
    username: str
    password: str = Field(description="Use ${VAR}")

    def secrets(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def verify(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, environ: Mapping[str, str]
    ) -> None:
        username = self.resolved("username", environ)
        password = self.resolved("password", environ)
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Basic realm="mesbridge"'}
        if scheme.lower() != "basic" or not encoded:
            raise RequestRejected(401, "HTTP Basic authentication required", challenge)
        try:
            user, _, word = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
            raise RequestRejected(401, "malformed Basic credentials", challenge) from None
        user_ok = _same(user, username)
        if not (_same(word, password) and user_ok):
            raise RequestRejected(401, "wrong username or password", challenge)


@CALLER_AUTH.register()
class HmacCallerAuth(CallerAuthModel):
    """The caller signs the raw body with HMAC; the hex (or `sha256=`-prefixed) digest is in a header."""

    kind: Literal["hmac"]
    header: str = Field("X-Signature", description="Header carrying the signature")
    secret: str = Field(description="The signing key; use ${VAR}")
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"

    def secrets(self) -> dict[str, str]:
        return {"secret": self.secret}

    def verify(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, environ: Mapping[str, str]
    ) -> None:
        secret = self.resolved("secret", environ)
        given = headers.get(self.header, "")
        given = given.split("=", 1)[1] if "=" in given else given
        digest = hmac.new(secret.encode(), body, getattr(hashlib, self.algorithm)).hexdigest()
        if not given or not _same(given.lower(), digest):
            raise RequestRejected(401, f"missing or wrong signature in header '{self.header}'")


@CALLER_AUTH.register()
class NoCallerAuth(CallerAuthModel):
    """No caller authentication (only behind a trusted network)."""

    kind: Literal["none"]


if TYPE_CHECKING:
    CallerAuth = CallerAuthModel
else:
    CallerAuth = CALLER_AUTH.union()
"""Any registered caller auth kind, chosen by `kind`."""
