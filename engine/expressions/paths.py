"""Path templates: what an expression puts into a URL path is one segment's data, never structure.

`/api/Workorders/{{ existing.id }}` keeps its literal text as written; each printed value is
percent-encoded as RFC 6570 simple expansion does (only the unreserved characters `A-Za-z0-9-._~` stay),
so a `/`, `?`, `#` or `%` in a value cannot change the target. A segment that a value turns into `.`
or `..`, or that values alone leave empty, is an error, and so is a value holding a lone surrogate.
Quoting filters compose: `/Orders({{ x | odata_quote }})` quotes, then encodes the quoted text.

A template that must insert structure says so with the `path_raw` filter (`{{ base | path_raw }}`):
that value is inserted as written. `PathTemplate.raw_lines` lists where it is used, for `check`.

Both evaluation paths run in one overlay of the environment whose `finalize` encodes each printed value
and whose `concat` checks the segments, so the compiled subset and Jinja give the same path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote

from jinja2 import meta, nodes, pass_eval_context
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from engine.errors import ExpressionError, PathValueError
from engine.expressions import limits
from engine.expressions.compiler import Closures, Evaluator, Unsupported
from engine.expressions.sandbox import Environment, environment
from engine.expressions.templates import Leaf, Renderer, compile_jinja, describe, outputs, parse
from engine.helpers import RawPath

__all__ = ["PathTemplate", "PathTemplateField", "compile_path_template", "encode_segment"]


class _Encoded(str):
    """A printed value, encoded: data inside one segment."""

    __slots__ = ()

    def __str__(self) -> str:
        return self


def encode_segment(value: Any) -> str:
    """`value` printed as Jinja prints it, percent-encoded (UTF-8) as the data of one path segment."""
    text = limits.to_text(value)
    try:
        return quote(text, safe="", encoding="utf-8", errors="strict")
    except UnicodeEncodeError as exc:
        raise PathValueError(
            f"the value {text!r} holds a lone surrogate (U+{ord(text[exc.start]):04X}) at position "
            f"{exc.start}; it cannot be written in a URL"
        ) from None


@pass_eval_context  # so that Jinja never folds a constant into the template's literal text
def _finalize(eval_ctx: Any, value: Any) -> str:
    if isinstance(value, RawPath):
        return value
    return _Encoded(encode_segment(value))


def join_path(pieces: Iterable[str]) -> str:
    """The path from its pieces; a segment that a value made `.` or `..`, or left empty, is refused.

    Literal and `path_raw` pieces split segments at `/`; the path ends at the first `?` or `#` of one.
    """
    pieces = list(pieces)
    text = limits.join_text(pieces)
    segment: list[str] = []
    valued = literal = False
    for piece in pieces:
        if type(piece) is _Encoded:
            segment.append(piece)
            valued = True
            continue
        end = min((i for i in (piece.find("?"), piece.find("#")) if i >= 0), default=len(piece))
        for index, chunk in enumerate(piece[:end].split("/")):
            if index:
                _check_segment("".join(segment), valued, literal)
                segment, valued, literal = [], False, False
            segment.append(chunk)
            literal = literal or bool(chunk)
        if end < len(piece):
            break
    _check_segment("".join(segment), valued, literal)
    return text


def _check_segment(segment: str, valued: bool, literal: bool) -> None:
    if not valued:
        return
    if segment in (".", ".."):
        raise PathValueError(f"a value makes the path segment {segment!r}, which would change the target")
    if not segment and not literal:
        raise PathValueError("a value leaves a path segment empty, which would change the target")


@lru_cache(maxsize=1)
def path_environment() -> Environment:
    """The environment of path templates: the one environment, printing values as segment data."""
    env = environment().overlay(finalize=_finalize)
    env.concat = join_path
    return env


class PathTemplate:
    """A URL path template, compiled once: its literal text as written, each value one segment's data."""

    __slots__ = ("source", "names", "globals", "leaves", "raw_lines", "constant", "_ast", "_render")

    def __init__(self, source: str) -> None:
        env = path_environment()
        self.source = source
        try:
            source.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the path holds a lone surrogate (U+{ord(source[exc.start]):04X}) at position {exc.start}"
            ) from None
        self._ast = ast = parse(source, environment())
        self.names = frozenset(meta.find_undeclared_variables(ast)) - frozenset(env.globals)
        self.leaves = (Leaf(source, (), environment()),)
        """What `check` reads of it, as of any template: the names and `vars` keys it uses."""
        self.globals = self.leaves[0].globals
        self.raw_lines = tuple(node.lineno for node in ast.find_all(nodes.Filter) if node.name == "path_raw")
        parts = outputs(ast)
        self.constant: str | None = None
        """The path when it holds no value, only literal text (it renders to that, as written)."""
        try:
            if parts is None:
                raise Unsupported
            if all(isinstance(part, nodes.TemplateData) for part in parts):  # literal text: as written
                constant = self.constant = "".join(part.data for part in parts)  # type: ignore[attr-defined]
                self._render: Evaluator = lambda context: constant
            else:
                self._render = Closures(env).text(parts)
        except Unsupported:
            self._render = Renderer(compile_jinja(env, parse(source, env))).text

    def render(self, context: Mapping[str, Any]) -> str:
        """The path for `context`; a failure raises ExpressionError (PathValueError for an unsafe value)."""
        limits.start()
        try:
            return str(self._render(context))
        except Exception as exc:  # noqa: BLE001 - every failure reaches the operator as one kind
            reason = describe(exc, self._ast, context)
            kind = type(exc) if isinstance(exc, ExpressionError) else ExpressionError
            raise kind(f"path: {reason}", template=self.source, where="path") from exc

    def __repr__(self) -> str:
        return f"PathTemplate({self.source!r})"


def compile_path_template(value: Any) -> PathTemplate:
    """Compile a path template; the error carries a readable message for the config's diagnostics."""
    if isinstance(value, PathTemplate):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "template_syntax", "{message}", {"message": "a path is a string", "subpath": []}
        )
    try:
        return PathTemplate(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "template_syntax", "{message}", {"message": str(exc), "subpath": []}
        ) from None


PathTemplateField = Annotated[
    PathTemplate,
    PlainValidator(compile_path_template),
    PlainSerializer(lambda t: t.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "A URL path; each {{ value }} is one segment's data"}),
]
"""A config field whose value is a URL path template."""
