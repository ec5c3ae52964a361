"""Templates: YAML values whose strings are Jinja templates, compiled once and rendered per event.

Every string leaf is parsed by Jinja when the config loads, and everything is decided on the parse tree:

- a string whose only content, besides whitespace, comments and whitespace control, is one
  `{{ expression }}` is a *lone expression*: it yields the expression's value (number, list, object,
  null) rather than its text. The value must be data: an undefined value, alone or inside it, is an error;
- a string of literal text and expressions yields text, as Jinja renders it;
- anything else (`{% if %}`, `{% for %}`, `{% set %}` ...) is rendered by Jinja.

The expressions of the compiled subset (`engine.expressions.compiler`) run as closures with Jinja's
meaning; the rest runs in Jinja's sandbox. Both use the one environment (`engine.expressions.sandbox`).
A failure raises `ExpressionError` whose message states the reason and the field, for the operator;
`template` and `where` locate it for the integrator.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any

import jmespath.exceptions
from jinja2 import Template as JinjaTemplate
from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.runtime import Context
from jinja2.runtime import Undefined as JinjaUndefined
from jinja2.utils import missing
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from engine import helpers
from engine.errors import ExpressionError
from engine.expressions import limits, variables
from engine.expressions.compiler import Closures, Evaluator, Unsupported, generate, is_path, may_build
from engine.expressions.limits import budget
from engine.expressions.sandbox import Environment, MissingValue, environment
from engine.suggest import did_you_mean

__all__ = [
    "Leaf",
    "Renderer",
    "Template",
    "TemplateCompileError",
    "TemplateField",
    "compile_jinja",
    "compile_template",
    "outputs",
    "parse",
]


class TemplateCompileError(ValueError):
    """A template that does not compile; `subpath` locates it inside the YAML value."""

    def __init__(self, message: str, subpath: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.subpath = subpath


_NO_LOADER = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def parse(source: str, env: Environment) -> nodes.Template:
    """Jinja's parse tree of `source`; ValueError for anything Jinja can tell is wrong before running it."""
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        where = f" (line {exc.lineno} of the template)" if exc.lineno and "\n" in source.strip() else ""
        raise ValueError(f"invalid template: {exc.message}{where}") from None
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            hint = did_you_mean(node.name, known)
            raise ValueError(f"unknown {kind} '{node.name}'" + (f" — {hint}" if hint else ""))
    for node in ast.find_all(nodes.Filter):
        if node.name == "jmes" and node.args and isinstance(node.args[0], nodes.Const):
            try:
                helpers.compiled_jmes(node.args[0].value)
            except (jmespath.exceptions.JMESPathError, TypeError) as exc:
                raise ValueError(f"invalid JMESPath in jmes(): {exc}".splitlines()[0]) from None
    for statement in ast.find_all(_NO_LOADER):
        raise ValueError(
            f"a template cannot {type(statement).__name__.lower()} other templates (line {statement.lineno})"
        )
    for name in ast.find_all(nodes.Name):
        if name.name == variables.GLOBAL:  # only the references of its own text call it
            raise ValueError(f"'{variables.GLOBAL}' is mesbridge's own name; write `${{VAR}}` in the text")
    return variables.with_references(ast)


@lru_cache(maxsize=4096)
def _analysed(source: str, env: Environment) -> tuple[nodes.Template, frozenset[str]]:
    """The parse tree of `source` (shared, never changed) and the names it reads from its context or
    the environment's globals.

    Text and `{{ }}` alone declare nothing, so their names are those they load; with statements, Jinja's
    own analysis tells which names the template sets itself.
    """
    ast = parse(source, env)
    if outputs(ast) is not None:
        names = {node.name for node in ast.find_all(nodes.Name) if node.ctx == "load"}
    else:
        try:  # Jinja's analysis folds constants as compiling does: one that fails is a load error
            names = set(meta.find_undeclared_variables(ast))
        except TemplateError as exc:
            raise ValueError(f"invalid template: {exc.message}") from None
    return ast, frozenset(names)


def outputs(ast: nodes.Template) -> list[nodes.Node] | None:
    """The parts of a template made only of text and `{{ }}` expressions; None when it has statements."""
    if not all(isinstance(node, nodes.Output) for node in ast.body):
        return None
    return [part for output in ast.body for part in output.nodes]  # type: ignore[attr-defined]


def lone_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression when the template is one `{{ expression }}` with at most whitespace around it."""
    parts = outputs(ast)
    if parts is None:
        return None
    expressions = [part for part in parts if not isinstance(part, nodes.TemplateData)]
    if len(expressions) != 1 or variables.is_reference(expressions[0]):  # a reference is text
        return None
    if any(isinstance(part, nodes.TemplateData) and part.data.strip() for part in parts):
        return None
    return expressions[0]  # type: ignore[return-value]


def compile_jinja(env: Environment, ast: nodes.Template) -> JinjaTemplate:
    """Jinja's compiled template; ValueError for an error Jinja finds compiling (a constant that fails).

    Python's doubts about the code Jinja writes (`0[1:]` draws a SyntaxWarning) are not shown: the
    template then fails when it runs, as it would anywhere.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return env.from_string(ast)
        except TemplateError as exc:
            raise ValueError(f"invalid template: {exc.message}") from None


class Renderer:
    """Runs a compiled Jinja template as `Template.render` does, minus its per-call copy of the globals."""

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
        return str(self._env.concat(self._root(self._context(variables))))

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The value of a `{% set result = expr %}` template."""
        context = self._context(variables)
        for _ in self._root(context):
            pass
        return context.vars["result"]


class Leaf:
    """One string of a templated value, parsed once: its evaluator, and what it reads.

    `kind` is "text" for literal text (`constant` holds it), "lone" for a lone expression, "mixed" for
    text and expressions, "jinja" for a template with statements.
    """

    __slots__ = ("source", "path", "ast", "names", "globals", "kind", "constant", "expression", "evaluate")

    def __init__(self, source: str, path: tuple[Any, ...], env: Environment) -> None:
        self.source = source
        self.path = path
        self.ast, read = _analysed(source, env)
        self.names = read - env.globals.keys()
        self.globals = read & env.globals.keys()
        """The globals it reads (`now`, say) that its context does not shadow."""
        ast = self.ast
        self.constant: str | None = None
        self.expression = lone_expression(ast)
        parts = outputs(ast)
        if parts is not None and all(isinstance(part, nodes.TemplateData) for part in parts):
            self.kind = "text"
            self.constant = "".join(part.data for part in parts)  # type: ignore[attr-defined]
            constant = self.constant
            self.evaluate: Evaluator = lambda context: constant
            return
        self.kind = "lone" if self.expression is not None else "mixed" if parts is not None else "jinja"
        try:
            self.evaluate = self.compiled(env)
        except Unsupported:
            self.evaluate = self.jinja(env)

    def compiled(self, env: Environment) -> Evaluator:
        """The evaluator of the compiled subset; Unsupported when the leaf is outside it."""
        parts = outputs(self.ast)
        closures = Closures(env)
        if self.expression is not None:
            value = closures.expr(self.expression)
            if not may_build(self.expression):
                return lambda context: _defined(value(context))
            return lambda context: limits.check_result(value(context))
        if parts is None:
            raise Unsupported
        return closures.text(parts)

    def jinja(self, env: Environment) -> Evaluator:
        """The evaluator that runs Jinja itself (on a tree of its own: Jinja's optimizer rewrites it)."""
        ast = parse(self.source, env)
        expression = lone_expression(ast)
        if expression is not None:
            ast = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression)], lineno=1)
            ast.set_environment(env)
            value = Renderer(compile_jinja(env, ast)).value
            return lambda context: limits.check_result(value(context))
        return Renderer(compile_jinja(env, ast)).text

    def write(self, source: Any) -> str:
        """Python source of this leaf for `compiler.generate`; Unsupported outside the subset."""
        if self.kind == "text":
            return str(source.ref(self.constant))
        if self.kind == "lone":
            assert self.expression is not None
            code = source.expr(self.expression)
            return f"{source.ref(limits.check_result)}({code})" if may_build(self.expression) else code
        parts = outputs(self.ast)
        if parts is None:
            raise Unsupported
        return str(source.text(parts))

    def fast(self, env: Environment) -> Evaluator | None:
        """The generated function of this leaf alone (see `Template.render`); None outside the subset."""
        return generate(self.source, env, _LeafSource((self,)))

    def references(self, name: str) -> Iterator[tuple[str, ...]]:
        """The key paths this leaf reads from the variable `name` (`vars.x` is `('x',)`, `vars.a['b']`
        is `('a', 'b')`), unless it sets it. A path stops before a key given by a value and before a
        method called (`vars.a.get(k)` is `('a',)`)."""
        if name not in self.names:
            return
        called = {id(call.node) for call in self.ast.find_all(nodes.Call)}
        paths: dict[tuple[str, ...], None] = {}
        for node in self.ast.find_all((nodes.Getattr, nodes.Getitem)):
            keys: list[str] = []
            while isinstance(node, nodes.Getattr | nodes.Getitem):
                if isinstance(node, nodes.Getattr) and id(node) not in called:
                    keys.insert(0, node.attr)
                elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                    keys = [node.arg.value, *keys] if isinstance(node.arg.value, str) else []
                else:
                    keys = []
                node = node.node
            if keys and isinstance(node, nodes.Name) and node.name == name and node.ctx == "load":
                paths[tuple(keys)] = None
        yield from paths

    def filters(self) -> set[str]:
        """The names of the filters this leaf uses."""
        return {node.name for node in self.ast.find_all(nodes.Filter)}


def _defined(value: Any) -> Any:
    if isinstance(value, JinjaUndefined):
        value._fail_with_undefined_error()
    return value


class Template:
    """A YAML value whose string leaves are templates, compiled once and rendered per event."""

    __slots__ = ("source", "names", "globals", "leaves", "is_constant", "_exact", "render")

    def __init__(self, source: Any, env: Environment | None = None) -> None:
        env = env or environment()
        self.source = source
        self.leaves: tuple[Leaf, ...] = tuple(self._leaves(source, (), env))
        self.names: frozenset[str] = frozenset().union(*(leaf.names for leaf in self.leaves))
        self.globals: frozenset[str] = frozenset().union(*(leaf.globals for leaf in self.leaves))
        """The globals any leaf reads (`now`, `lookup`)."""
        self.is_constant = all(leaf.kind == "text" for leaf in self.leaves)
        exact = self._exact = self._compile(source, iter(self.leaves))
        """The exact evaluation: the closures, or Jinja (what the generated function falls back to)."""
        fast = None if self.is_constant else generate(source, env, _LeafSource(self.leaves), exact)
        self.render: Evaluator = fast or _evaluation(exact)
        """Evaluate against a context; a failure raises ExpressionError. Where the template is in the
        generated subset, this is the generated function itself (`compiler.generate`): it serves the
        usual event, and where it stumbles (a missing key, a type surprise) the exact evaluation gives
        the value or the error. Each render is one evaluation, with the whole budget of `limits`."""

    @classmethod
    def _leaves(cls, value: Any, path: tuple[Any, ...], env: Environment) -> Iterator[Leaf]:
        if isinstance(value, str):
            try:
                yield Leaf(value, path, env)
            except ValueError as exc:
                raise TemplateCompileError(str(exc), path) from None
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from cls._leaves(item, path + (key,), env)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from cls._leaves(item, path + (index,), env)

    @classmethod
    def _compile(cls, value: Any, leaves: Iterator[Leaf]) -> Evaluator:
        if isinstance(value, str):
            leaf = next(leaves)
            return leaf.evaluate if leaf.kind == "text" else _located(leaf)
        if isinstance(value, dict):
            items = [(key, cls._compile(item, leaves)) for key, item in value.items()]
            return lambda context: {key: render(context) for key, render in items}
        if isinstance(value, list):
            elements = [cls._compile(item, leaves) for item in value]
            return lambda context: [render(context) for render in elements]
        return lambda context: value

    def filters(self) -> set[str]:
        """The names of the filters any leaf uses (`path_raw`, say)."""
        return set().union(*(leaf.filters() for leaf in self.leaves))

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _evaluation(exact: Evaluator) -> Evaluator:
    """`exact` as one whole evaluation: with the whole budget of `limits` (`limits.start`)."""

    def render(context: Mapping[str, Any]) -> Any:
        budget[0] = limits.MAX_BUILT
        return exact(context)

    return render


class _LeafSource:
    """Hands `compiler.generate` the source of each leaf, in the order the value is walked."""

    def __init__(self, leaves: tuple[Leaf, ...]) -> None:
        self._leaves = iter(leaves)

    def __call__(self, source: Any, value: Any) -> str:
        if not isinstance(value, str):
            return str(source.ref(value))
        return next(self._leaves).write(source)


# --- errors for the operator ----------------------------------------------------------------------


def _located(leaf: Leaf) -> Evaluator:
    """The leaf's evaluator, whose failures are ExpressionErrors naming the reason and the field."""
    evaluate = leaf.evaluate
    where = _dotted(leaf.path)

    def run(context: Mapping[str, Any]) -> Any:
        try:
            return evaluate(context)
        except Exception as exc:  # noqa: BLE001 - Jinja and helper errors reach the operator as one kind
            raise _error(exc, leaf, where, context) from exc

    return run


def _error(exc: Exception, leaf: Leaf, where: str, context: Mapping[str, Any]) -> ExpressionError:
    reason = describe(exc, leaf.ast, context)
    kind = type(exc) if isinstance(exc, ExpressionError) else ExpressionError
    return kind(f"{where}: {reason}" if where else reason, template=leaf.source, where=where)


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def describe(exc: Exception, ast: nodes.Template, context: Mapping[str, Any]) -> str:
    """The reason a template failed, in the words of the data: never the template's source."""
    if isinstance(exc, ExpressionError):
        return exc.message
    if not isinstance(exc, MissingValue):
        return getattr(exc, "message", None) or str(exc) or type(exc).__name__
    undefined = exc.undefined
    hint, obj, name = undefined._undefined_hint, undefined._undefined_obj, undefined._undefined_name
    if hint is not None or name is None:
        return str(exc)
    if obj is missing:
        return f"'{name}' is undefined"
    label = _label(ast, obj, name, context)
    if isinstance(obj, Mapping):
        subject = f"'{label}'" if label else "the object"
        suggestion = did_you_mean(name, [key for key in obj if isinstance(key, str)])
        return f"{subject} has no key {name!r}" + (f" — {suggestion}" if suggestion else "")
    subject = f"'{label}'" if label else "the value"
    if obj is None:
        return f"{subject} is null, it has no {name!r}"
    if isinstance(obj, list | tuple | str) and isinstance(name, int):
        return f"{subject} has no item {name} (it has {len(obj)})"
    return f"{subject} is {type(obj).__name__}, it has no {name!r}"


def _label(ast: nodes.Template, obj: Any, name: Any, context: Mapping[str, Any]) -> str | None:
    """The path in the template (`event.item`) whose value lacked `name`, found on the parse tree."""
    lookups: Iterator[Any] = ast.find_all((nodes.Getattr, nodes.Getitem))
    candidates = [
        node.node
        for node in lookups
        if is_path(node.node)
        and (node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", _NONE)) == name
    ]
    for candidate in candidates:
        if _walk(candidate, context) is obj:
            return _path_text(candidate)
    return _path_text(candidates[0]) if len(candidates) == 1 else None


_NONE: Any = object()


def _walk(node: nodes.Node, context: Mapping[str, Any]) -> Any:
    if isinstance(node, nodes.Name):
        return context.get(node.name, _NONE)
    parent = _walk(node.node, context)  # type: ignore[attr-defined]
    key = node.attr if isinstance(node, nodes.Getattr) else node.arg.value  # type: ignore[attr-defined]
    try:
        return parent[key]
    except Exception:  # noqa: BLE001 - not a lookup the data has
        return _NONE


def _path_text(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_path_text(node.node)}.{node.attr}"
    return f"{_path_text(node.node)}[{node.arg.value!r}]"  # type: ignore[attr-defined]


# --- pydantic -------------------------------------------------------------------------------------


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


TemplateField = Annotated[
    Template,
    PlainValidator(compile_template),
    PlainSerializer(lambda t: t.source, return_type=Any),
    WithJsonSchema({"description": "A value; strings may hold Jinja templates {{ ... }}"}),
]
"""A config field whose value is a template (any YAML value)."""
