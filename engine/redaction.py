"""Keeping secrets out of logs, errors and dry-run output.

A `Redactor` collects secret values (passwords, client secrets, static keys, obtained tokens and any
`${VAR}` whose name marks it as secret) and replaces each with `***` wherever it appears in a string,
a dict or a list, also as a URL's query carries it (`p%40ss%20word`). `RedactingFilter` applies one
to every log record that passes a handler.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "SECRETS_READ",
    "RedactingFilter",
    "Redactor",
    "distinct",
    "environment_redactor",
    "forms",
    "is_secret_name",
]

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values (a literal password such as `PAT`, say) are not secret and would mangle text."""

_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|(?:^|_)PAT(?:_|$)", re.I)
_SECRET_KEYS = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie)$|secret|password|token", re.I
)


def is_secret_name(name: str) -> bool:
    """True for a variable name that holds a secret: it contains SECRET, PASSWORD, TOKEN, KEY or PAT,
    or it names a file (`file:PATH`: a file's value is always secret)."""
    return name.startswith("file:") or bool(_SECRET_NAME.search(name))


class Redactor:
    """A set of secret values, and the means to mask them anywhere."""

    def __init__(self, secrets: Iterable[str] = (), *, also: Redactor | None = None) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self._also = also
        """Another redactor whose secrets this one masks too (the secrets read while running)."""
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Any) -> bool:
        """Remember one secret value; too-short and non-string values are ignored. True when it was
        not known before (so the caller may `discard` it when it is dead)."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return False
        with self._lock:
            self._secrets.add(secret)
            self._compile()
        return True

    def discard(self, secret: str) -> None:
        """Forget a secret that can no longer be used (a token two logins old)."""
        with self._lock:
            if secret in self._secrets:
                self._secrets.discard(secret)
                self._compile()

    def _compile(self) -> None:
        ordered = sorted({form for secret in self._secrets for form in forms(secret)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def add_basic(self, username: str, password: str) -> None:
        """Remember a Basic credential pair and its encoded header value."""
        self.add(username)
        self.add(password)
        self.add(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))

    @property
    def secrets(self) -> frozenset[str]:
        own = frozenset(self._secrets)
        return own | self._also.secrets if self._also is not None else own

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every secret masked, in keys too; dict entries named like secrets are
        masked whole."""
        if isinstance(value, str):
            pattern = self._pattern
            if pattern is not None:
                value = pattern.sub(MASK, value)
            return self._also.redact(value) if self._also is not None else value
        if isinstance(value, bytes):
            return self.redact(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            masked: dict[Any, Any] = {}
            for key, item in value.items():
                named = isinstance(key, str)
                found = MASK if named and _SECRET_KEYS.search(key) and item else self.redact(item)
                masked[distinct(self.redact(key), masked) if named else key] = found
            return masked
        if isinstance(value, list | tuple):
            return [self.redact(item) for item in value]
        return value


def forms(secret: str) -> set[str]:
    """`secret`, and as a URL's query carries it: as the connectors write it, and with all escaped."""
    from engine.connectors.urls import quote_value

    data = secret.encode("utf-8", "surrogatepass")
    return {secret, quote_value(data), urllib.parse.quote(data, safe="")}


def distinct(key: str, taken: Mapping[Any, Any]) -> str:
    """`key` if it is not in `taken`, else `key #2`, `key #3`, ...: the first that is not (two keys
    that mask alike both stay)."""
    if key not in taken:
        return key
    number = 2
    while f"{key} #{number}" in taken:
        number += 1
    return f"{key} #{number}"


SECRETS_READ = Redactor()
"""The secret values templates and vars have resolved so far (secret-named variables, secret files),
known to every `environment_redactor`."""


def environment_redactor(environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor that knows every secret-named environment variable's value and `SECRETS_READ`."""
    environ = os.environ if environ is None else environ
    return Redactor((value for name, value in environ.items() if is_secret_name(name)), also=SECRETS_READ)


class RedactingFilter(logging.Filter):
    """A logging filter that masks the redactor's secrets in the formatted message of each record."""

    def __init__(self, redactor: Redactor, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        return True
