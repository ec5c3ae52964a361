"""`${VAR}`, `${VAR:-default}` and `${file:PATH}` references inside config strings.

Config models keep the raw strings; references are resolved only when a value is about to be used,
so `mesbridge check` passes without the variables set and a missing one fails the call that needs it,
naming the variable. `${file:PATH}` reads a file (a container secret, say) without its final newline;
its value is always secret. The environment is the process's, or the one a test run sets with `using`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from engine.errors import MissingVariableError

__all__ = ["FILE_PREFIX", "REFERENCE", "current", "enter", "find_references", "leave", "resolve", "using"]

REFERENCE = re.compile(
    r"\$\{(?:file:(?P<path>[^}]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?)\}"
)
"""One reference: `${NAME}`, `${NAME:-default}` (the default runs to the first `}`) or `${file:PATH}`."""

FILE_PREFIX = "file:"
"""How `on_value` names a file's value: `file:PATH`."""

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("mesbridge_environ", default=None)


def current() -> Mapping[str, str]:
    """The environment references resolve against: the one `using` set, else the process's."""
    environ = _ENVIRON.get()
    return os.environ if environ is None else environ


@contextmanager
def using(environ: Mapping[str, str]) -> Iterator[None]:
    """Resolve references against `environ` inside the block (an offline test run's environment)."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def enter(environ: Mapping[str, str]) -> Token[Mapping[str, str] | None]:
    """`using` without a context manager, for a hot path: resolve against `environ` until `leave`."""
    return _ENVIRON.set(environ)


def leave(token: Token[Mapping[str, str] | None]) -> None:
    """End what `enter` began."""
    _ENVIRON.reset(token)


def find_references(value: Any) -> set[str]:
    """The names of every variable referenced in a string, or in the strings of a dict or list."""
    found: set[str] = set()
    _walk(value, lambda text: found.update(m.group("name") for m in REFERENCE.finditer(text) if m["name"]))
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


def value_of(match: re.Match[str], environ: Mapping[str, str], where: str = "") -> tuple[str, str]:
    """(name, value) of one reference: a file's name is `file:PATH`. MissingVariableError when it
    is not set and has no default, or the file cannot be read."""
    path = match.group("path")
    if path is not None:
        return FILE_PREFIX + path, read_file(path, where)
    name, default = match.group("name"), match.group("default")
    if name in environ:
        return name, environ[name]
    if default is not None:
        return name, default
    raise MissingVariableError(name, where)


def read_file(path: str, where: str = "") -> str:
    """A secret file's text without its final line break; MissingVariableError if it cannot be read."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        suffix = f" (needed by {where})" if where else ""
        raise MissingVariableError(
            FILE_PREFIX + path, where, f"secret file {path} cannot be read: {reason}{suffix}"
        ) from None
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


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
    read (a file as `file:PATH`), so secrets can be collected for redaction.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, found = value_of(match, environ, where)
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
