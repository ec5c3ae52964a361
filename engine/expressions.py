"""Compiled expressions: JMESPath for selecting, sandboxed Jinja for composing.

Both are compiled once, when the config loads, so a syntax error carries its YAML location and nothing
is parsed per event. `Template` walks a whole YAML value (a request body, say) and keeps types: a
string that is exactly one expression yields the native value; text around expressions yields a string.
`Selection` and `Template` are pydantic-ready through the `SelectionField` and `TemplateField` types.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any

import jmespath
import jmespath.exceptions
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, meta, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from engine import helpers
from engine.compiler import compile_ast, generate
from engine.errors import ExpressionError

__all__ = [
    "Selection",
    "SelectionField",
    "Template",
    "TemplateField",
    "environment",
    "compile_template",
    "compile_selection",
]

_MAX_SEQUENCE = 100_000


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with arithmetic that cannot build huge strings or numbers."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 1000:
                raise ExpressionError("exponent too large in template")
            if isinstance(left, int) and isinstance(right, int) and abs(left).bit_length() * right > 65_536:
                raise ExpressionError("template would build a number over 65,536 bits")
            return operator.pow(left, right)
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    if len(seq) * count > _MAX_SEQUENCE:
                        raise ExpressionError("template would build a sequence over 100,000 items")
            return operator.mul(left, right)
        return super().call_binop(context, operator_name, left, right)


@lru_cache(maxsize=1)
def environment() -> _Environment:
    """The one Jinja environment every template compiles in."""
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(helpers.FILTERS)
    env.globals.update(helpers.GLOBALS)
    return env


_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)
_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$")


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" — did you mean '{close[0]}'?" if close else ""


def _syntax_message(exc: TemplateError, source: str) -> str:
    message = exc.message or str(exc)
    match = re.search(r"No filter named '([^']+)'", message)
    if match:
        return f"unknown filter '{match.group(1)}'" + _did_you_mean(match.group(1), environment().filters)
    match = re.search(r"No test named '([^']+)'", message)
    if match:
        return f"unknown test '{match.group(1)}'" + _did_you_mean(match.group(1), environment().tests)
    return f"invalid template {source!r}: {message}"


class _Getter:
    """`{{ a.b.c }}` without Jinja: a dict walk that fails as StrictUndefined would."""

    __slots__ = ("parts",)

    def __init__(self, path: str) -> None:
        self.parts = path.split(".")

    def __call__(self, context: Mapping[str, Any]) -> Any:
        value: Any = context
        for depth, part in enumerate(self.parts):
            if (type(value) is dict or isinstance(value, Mapping)) and part in value:
                value = value[part]
                continue
            shown = ".".join(self.parts[:depth]) or "context"
            if depth == 0:
                raise ExpressionError(f"'{part}' is undefined")
            raise ExpressionError(f"'{shown}' has no key '{part}'")
        return value


def _compile_string(source: str) -> tuple[Callable[[Mapping[str, Any]], Any], frozenset[str]]:
    """Compile one string; returns the evaluator and the top-level names it reads."""
    env = environment()
    try:
        ast = _parse(source)
        names = frozenset(meta.find_undeclared_variables(ast)) - frozenset(env.globals)
        single = _SINGLE.match(source)
        if single and _single_output(ast):
            expr = single.group("expr")
            path = _PATH.match(expr)
            if path:
                return _Getter(path.group(1)), names
        _check_known(ast)
        native = compile_ast(ast, env)
        if native is not None:
            return native, names
        if single and _single_output(ast):
            expr = single.group("expr")

            def build_value() -> Callable[[Mapping[str, Any]], Any]:
                # compile_expression wraps `{% set result = expr %}`; its template runs without the wrapper
                return _Renderer(env.compile_expression(expr, undefined_to_none=False)._template).value

            return _Lazy(build_value), names
        return _Lazy(lambda: _Renderer(env.from_string(ast)).text), names
    except TemplateSyntaxError as exc:
        raise ValueError(_syntax_message(exc, source)) from None
    except TemplateError as exc:  # e.g. TemplateAssertionError for an unknown filter
        raise ValueError(_syntax_message(exc, source)) from None


def _check_known(ast: nodes.Template) -> None:
    """Unknown filters and tests are errors at load time, though code generation waits for first use."""
    env = environment()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            raise ValueError(f"unknown {kind} '{node.name}'" + _did_you_mean(node.name, known))


class _Lazy:
    """Generates a template's Python code on first use: loading a config only parses and checks it."""

    __slots__ = ("_build", "_run")

    def __init__(self, build: Callable[[], Callable[[Mapping[str, Any]], Any]]) -> None:
        self._build = build
        self._run: Callable[[Mapping[str, Any]], Any] | None = None

    def __call__(self, context: Mapping[str, Any]) -> Any:
        run = self._run
        if run is None:
            run = self._run = self._build()
        return run(context)


class _Renderer:
    """Runs a compiled Jinja template as `Template.render` does, minus its per-call copy of the globals.

    Jinja builds each render's context from a ChainMap of the template's and the environment's globals,
    which costs more than most expressions; the globals are fixed once the environment exists, so they
    are flattened here once.
    """

    __slots__ = ("_env", "_root", "_name", "_blocks", "_globals")

    def __init__(self, template: JinjaTemplate) -> None:
        self._env = template.environment
        self._root = template.root_render_func
        self._name = template.name
        self._blocks = template.blocks
        self._globals = dict(template.globals)

    def _context(self, variables: Mapping[str, Any]) -> Context:
        return Context(self._env, {**self._globals, **variables}, self._name, self._blocks, self._globals)

    def text(self, variables: Mapping[str, Any]) -> str:
        """The rendered text."""
        return "".join(self._root(self._context(variables)))

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The native value of a `{% set result = expr %}` template; undefined fails."""
        context = self._context(variables)
        for _ in self._root(context):
            pass
        result = context.vars["result"]
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return result


def _single_output(ast: nodes.Template) -> bool:
    """True when the template is exactly one `{{ expression }}`."""
    body = ast.body
    return len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


@lru_cache(maxsize=8192)
def _parse(source: str) -> nodes.Template:
    return environment().parse(source)


def _fast_then_exact(
    fast: Callable[[Mapping[str, Any]], Any], exact: Callable[[Mapping[str, Any]], Any]
) -> Callable[[Mapping[str, Any]], Any]:
    """The generated function for the usual event; the exact evaluation when it stumbles."""

    def render(context: Mapping[str, Any]) -> Any:
        try:
            return fast(context)
        except Exception:  # a missing key, a type surprise: the exact path gives the value or the error
            return exact(context)

    return render


def _located(
    render: Callable[[Mapping[str, Any]], Any], source: str, path: tuple[Any, ...]
) -> Callable[[Mapping[str, Any]], Any]:
    """A leaf's evaluator whose errors say which template failed, and where in its value it sits."""
    where = _short(source) + (f" at {_dotted(path)}" if path else "")

    def leaf(context: Mapping[str, Any]) -> Any:
        try:
            return render(context)
        except Exception as exc:  # Jinja and helper errors alike reach the mapping author as one kind
            raise ExpressionError(f"{_describe(exc)} in {where}") from None

    return leaf


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


class TemplateCompileError(ValueError):
    """A template that does not compile; `subpath` locates it inside the YAML value."""

    def __init__(self, message: str, subpath: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.subpath = subpath


class Template:
    """A YAML value whose string leaves may be templates, compiled once and rendered per event."""

    __slots__ = ("source", "names", "_render", "is_constant")

    def __init__(self, source: Any) -> None:
        self.source = source
        names: set[str] = set()
        self._render = self._compile(source, names)
        self.names: frozenset[str] = frozenset(names)
        if names:
            fast = generate(source, environment(), _parse)
            if fast is not None:
                self._render = _fast_then_exact(fast, self._render)
        self.is_constant = not names and not self._has_template(source)

    @classmethod
    def _has_template(cls, value: Any) -> bool:
        if isinstance(value, str):
            return _is_template(value)
        if isinstance(value, dict):
            return any(cls._has_template(v) for v in value.values())
        if isinstance(value, list):
            return any(cls._has_template(v) for v in value)
        return False

    @classmethod
    def _compile(
        cls, value: Any, names: set[str], path: tuple[Any, ...] = ()
    ) -> Callable[[Mapping[str, Any]], Any]:
        if isinstance(value, str) and _is_template(value):
            try:
                render, used = _compile_string(value)
            except ValueError as exc:
                raise TemplateCompileError(str(exc), path) from None
            names.update(used)
            return _located(render, value, path)
        if isinstance(value, dict):
            items = [(key, cls._compile(item, names, path + (key,))) for key, item in value.items()]
            return lambda context: {key: render(context) for key, render in items}
        if isinstance(value, list):
            elements = [cls._compile(item, names, path + (index,)) for index, item in enumerate(value)]
            return lambda context: [render(context) for render in elements]
        return lambda context: value

    def render(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against a context; a failure raises ExpressionError naming the template."""
        return self._render(context)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


_FIELDS = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*$")


class Selection:
    """A compiled JMESPath expression."""

    __slots__ = ("source", "_compiled", "_fields")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._compiled = jmespath.compile(source)
        except jmespath.exceptions.ParseError as exc:
            raise ValueError(f"invalid JMESPath {source!r}: {_jmes_message(exc)}") from None
        # `event.type` and the like: a dict walk with JMESPath's meaning (anything missing is null)
        self._fields = source.strip().split(".") if _FIELDS.match(source) else None

    def search(self, data: Any) -> Any:
        """Select from data; a runtime error (wrong argument type) raises ExpressionError."""
        fields = self._fields
        if fields is not None:
            for name in fields:
                if type(data) is not dict:
                    return None
                data = data.get(name)
            return data
        try:
            return self._compiled.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(f"JMESPath {self.source!r} failed: {exc}") from None

    def __repr__(self) -> str:
        return f"Selection({self.source!r})"


def _jmes_message(exc: jmespath.exceptions.ParseError) -> str:
    token = getattr(exc, "token_value", None)
    position = getattr(exc, "lex_position", None)
    reason = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    where = f" at column {position + 1}" if isinstance(position, int) else ""
    return f"{reason}{where}" + (f" (near {token!r})" if token not in (None, "") else "")


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    message = message.replace("'dict object' has no attribute", "no key")
    return message


def _short(source: Any) -> str:
    text = source if isinstance(source, str) else repr(source)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def compile_template(value: Any) -> Template:
    """Compile a YAML value into a Template; the error carries a readable message and where it is."""
    if isinstance(value, Template):
        return value
    try:
        return Template(value)
    except TemplateCompileError as exc:
        raise PydanticCustomError(
            "template_syntax", "{message}", {"message": str(exc), "subpath": list(exc.subpath)}
        ) from None


def compile_selection(value: Any) -> Selection:
    """Compile a JMESPath string; ValueError carries a readable message."""
    if isinstance(value, Selection):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a JMESPath expression (a string), got {type(value).__name__}")
    return Selection(value)


TemplateField = Annotated[
    Template,
    PlainValidator(compile_template),
    PlainSerializer(lambda t: t.source, return_type=Any),
    WithJsonSchema({"description": "A value; strings may hold Jinja templates {{ ... }}"}),
]
"""A config field whose value is a template (any YAML value)."""

SelectionField = Annotated[
    Selection,
    PlainValidator(compile_selection),
    PlainSerializer(lambda s: s.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "A JMESPath expression"}),
]
"""A config field whose value is a JMESPath expression."""
