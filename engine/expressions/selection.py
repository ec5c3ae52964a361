"""Selections: JMESPath expressions, compiled once, with the `jmespath` library's exact meaning.

A plain field path (`event.type`, `event."work-center"`) is walked directly, doing what JMESPath's
interpreter does for it (`value.get(name)` on anything that has `get`, null otherwise); the path is
recognised on JMESPath's own parse tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import jmespath
import jmespath.exceptions
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from engine.codegen import define
from engine.errors import ExpressionError

__all__ = ["Selection", "SelectionField", "compile_selection"]


def _field_path(parsed: dict[str, Any]) -> list[str] | None:
    """`["event", "type"]` for the parse tree of `event.type`; None for anything but a field path."""
    if parsed["type"] == "field":
        return [parsed["value"]]
    if parsed["type"] == "subexpression" and all(child["type"] == "field" for child in parsed["children"]):
        return [child["value"] for child in parsed["children"]]
    return None


class Selection:
    """A compiled JMESPath expression: `search(data)` selects from data; a runtime error (a wrong
    argument type) raises ExpressionError."""

    __slots__ = ("source", "_compiled", "search", "fields")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._compiled = jmespath.compile(source)
        except jmespath.exceptions.ParseError as exc:
            raise ValueError(f"invalid JMESPath {source!r}: {_jmes_message(exc)}") from None
        fields = _field_path(self._compiled.parsed)
        self.fields: tuple[str, ...] | None = None if fields is None else tuple(fields)
        """The names of a plain field path, in order (`("event", "type")`); None for any other."""
        self.search: Callable[[Any], Any] = _walker(fields) if fields is not None else self._interpret

    def _interpret(self, data: Any) -> Any:
        try:
            return self._compiled.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(f"JMESPath {self.source!r} failed: {exc}") from None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (and copied) as its source, compiled again: the generated walker is not picklable."""
        return (Selection, (self.source,))

    def __repr__(self) -> str:
        return f"Selection({self.source!r})"


def _walker(fields: list[str]) -> Callable[[Any], Any]:
    """One function walking a field path as JMESPath's interpreter does (`value.get(name)` on anything
    that has `get`, null otherwise), written out field by field: the hot path of every `when`."""
    lines = ["def walk(data):"]
    for name in fields:
        lines += [
            "    if type(data) is dict:",
            f"        data = data.get({name!r})",
            "    else:",
            "        try:",
            f"            data = data.get({name!r})",
            "        except AttributeError:",
            "            data = None",
        ]
    lines.append("    return data")
    walk: Callable[[Any], Any] = define(lines, (), "<mesbridge selection>")
    return walk


def _jmes_message(exc: jmespath.exceptions.ParseError) -> str:
    token = getattr(exc, "token_value", None)
    position = getattr(exc, "lex_position", None)
    reason = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    where = f" at column {position + 1}" if isinstance(position, int) else ""
    return f"{reason}{where}" + (f" (near {token!r})" if token not in (None, "") else "")


def compile_selection(value: Any) -> Selection:
    """Compile a JMESPath string; ValueError carries a readable message."""
    if isinstance(value, Selection):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a JMESPath expression (a string), got {type(value).__name__}")
    return Selection(value)


SelectionField = Annotated[
    Selection,
    PlainValidator(compile_selection),
    PlainSerializer(lambda s: s.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "A JMESPath expression"}),
]
"""A config field whose value is a JMESPath expression."""
