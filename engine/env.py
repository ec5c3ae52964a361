"""`${VAR}` and `${VAR:-default}` references inside config strings.

Config models keep the raw strings; references are resolved only when a value is about to be used,
so `mesbridge check` passes without the variables set and a missing one fails the call that needs it,
naming the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import MissingVariableError

__all__ = ["REFERENCE", "find_references", "resolve"]

REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
"""One reference: `${NAME}` or `${NAME:-default}` (the default runs to the first `}`)."""


def find_references(value: Any) -> set[str]:
    """The names of every variable referenced in a string, or in the strings of a dict or list."""
    found: set[str] = set()
    _walk(value, lambda text: found.update(m.group("name") for m in REFERENCE.finditer(text)))
    return found


def _walk(value: Any, visit: Callable[[str], None]) -> None:
    if isinstance(value, str):
        visit(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(key, visit)
            _walk(item, visit)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, visit)


def resolve(
    value: Any,
    environ: Mapping[str, str],
    where: str = "",
    *,
    on_value: Callable[[str, str], None] | None = None,
) -> Any:
    """Replace every reference in `value` (walking dicts and lists) with its value from `environ`.

    A set variable wins over the default, even when empty. A variable that is not set and has no
    default raises MissingVariableError(name, where). `on_value(name, value)` sees every variable
    read, so secrets can be collected for redaction.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in environ:
                found = environ[name]
            elif default is not None:
                found = default
            else:
                raise MissingVariableError(name, where)
            if on_value is not None:
                on_value(name, found)
            return found

        return REFERENCE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {
            resolve(key, environ, where, on_value=on_value): resolve(item, environ, where, on_value=on_value)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [resolve(item, environ, where, on_value=on_value) for item in value]
    return value
