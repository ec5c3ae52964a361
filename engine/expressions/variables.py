"""`${VAR}`, `${VAR:-default}` and `${file:PATH}` in the literal text of a template.

Decided on the parse tree: only the template's own text (Jinja's `TemplateData`) holds references, so a
value rendered from event data is never resolved, and `{{ '${X}' }}` writes `${X}` as it stands. Each
reference becomes a call of one global that resolves it when the template renders (lazily: `check`
needs no variables set), against the environment of `engine.env.current`. A value of a secret-named
variable or of a file is remembered in `SECRETS_READ`, so every log, trace and report masks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import nodes

from engine import env as environment
from engine.redaction import SECRETS_READ, is_secret_name

__all__ = ["GLOBAL", "Variables", "is_reference", "reference_value", "references", "with_references"]

GLOBAL = "_mesbridge_reference"
"""The global each reference calls with its text; no config name can start with an underscore."""


def reference_value(text: str) -> str:
    """The value of one reference (`${NAME}`, `${NAME:-default}`, `${file:PATH}`), read now."""
    match = environment.REFERENCE.fullmatch(text)
    assert match is not None, text
    name, value = environment.value_of(match, environment.current())
    _note(name, value)
    return value


class Variables:
    """A binding's `vars`, whose `${…}` references resolve each time they are read (lazily, like a
    template's): `value()` is the mapping itself when nothing in it refers to anything."""

    __slots__ = ("_raw", "_where", "refers")

    def __init__(self, raw: Mapping[str, Any], where: str = "vars") -> None:
        self._raw = dict(raw)
        self._where = where
        self.refers = _refers(self._raw)
        """Whether anything in the vars refers to a variable: else `value()` is always the same."""

    def value(self) -> dict[str, Any]:
        """The vars, references resolved now; MissingVariableError names a variable that is not set."""
        if not self.refers:
            return self._raw
        return environment.resolve(self._raw, environment.current(), self._where, on_value=_note)


def _note(name: str, value: str) -> None:
    if is_secret_name(name):
        SECRETS_READ.add(value)


def _refers(value: Any) -> bool:
    if isinstance(value, str):
        return environment.REFERENCE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_refers(key) or _refers(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_refers(item) for item in value)
    return False


def with_references(ast: nodes.Template) -> nodes.Template:
    """`ast` with every reference in its text replaced, in place, by a call of `GLOBAL`."""
    for output in ast.find_all(nodes.Output):
        parts: list[nodes.Node] = []
        for part in output.nodes:
            if isinstance(part, nodes.TemplateData) and "${" in part.data:
                parts.extend(_split(part))
            else:
                parts.append(part)
        output.nodes = parts  # type: ignore[assignment]
    return ast


def references(ast: nodes.Template) -> Iterator[re.Match[str]]:
    """The references a template's text holds, as `with_references` made them calls: each is read
    when the template renders, and nothing else is (not a `${X}` inside an expression's string)."""
    for call in ast.find_all(nodes.Call):
        if is_reference(call):
            match = environment.REFERENCE.fullmatch(call.args[0].value)  # type: ignore[attr-defined]
            assert match is not None
            yield match


def is_reference(node: nodes.Node) -> bool:
    """True for the call a reference became."""
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == GLOBAL


def _split(part: nodes.TemplateData) -> list[nodes.Node]:
    found: list[nodes.Node] = []
    start = 0
    for match in environment.REFERENCE.finditer(part.data):
        if match.start() > start:
            found.append(nodes.TemplateData(part.data[start : match.start()], lineno=part.lineno))
        call = nodes.Call(
            nodes.Name(GLOBAL, "load", lineno=part.lineno),
            [nodes.Const(match.group(0), lineno=part.lineno)],
            [],
            None,
            None,
            lineno=part.lineno,
        )
        found.append(call)
        start = match.end()
    if start < len(part.data):
        found.append(nodes.TemplateData(part.data[start:], lineno=part.lineno))
    return found
