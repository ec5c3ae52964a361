"""Compiles the common subset of Jinja expressions to plain Python closures.

Mappings are mostly paths, filters, literals and a little arithmetic: `{{ event.sku }}`,
`{{ event.workCenterCode | lookup(vars.centres) }}`, `WO {{ event.workorderNumber }}`. Running those
through Jinja's runtime costs a context per render; here each becomes a closure over the parsed
expression with exactly Jinja's meaning under `StrictUndefined` (a missing key is undefined; anything
done with an undefined value other than `default` is an error; attribute access on non-mappings goes
through the sandbox), except that on a mapping a key wins over a method of the same name
(`event.items` is the event's `items` field, not `dict.items`). `compile_ast` returns None for
anything outside the subset, and the caller falls back to Jinja itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

from jinja2 import Undefined, nodes

from engine.errors import ExpressionError

Evaluator = Callable[[Mapping[str, Any]], Any]


class Missing:
    """An undefined value: fine to pass to `default`, an error for anything else."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def fail(self) -> Any:
        raise ExpressionError(self.message)


def _defined(value: Any) -> Any:
    if isinstance(value, Missing):
        value.fail()
    return value


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
_ARITHMETIC: dict[type[nodes.Expr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
}


class _Unsupported(Exception):
    pass


def compile_ast(ast: nodes.Template, env: Any) -> Evaluator | None:
    """A closure for a template of literal text and `{{ expressions }}`; None outside the subset.

    A template that is one expression yields its native value; otherwise the parts are joined as text.
    """
    body = ast.body
    if not all(isinstance(node, nodes.Output) for node in body):
        return None
    parts: list[Any] = [part for output in body for part in cast(nodes.Output, output).nodes]
    try:
        if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
            single = _expr(parts[0], env)
            return lambda context: _defined(single(context))
        pieces: list[tuple[bool, Any]] = [
            (True, part.data) if isinstance(part, nodes.TemplateData) else (False, _expr(part, env))
            for part in parts
        ]
    except _Unsupported:
        return None

    def text(context: Mapping[str, Any]) -> str:
        return "".join(
            cast(str, value) if literal else str(_defined(value(context))) for literal, value in pieces
        )

    return text


def _expr(node: nodes.Node, env: Any) -> Evaluator:
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda context: value
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return _name(node.name)
    path = _path(node)
    if path is not None:
        return _walk(path, env)
    if isinstance(node, nodes.Getattr):
        return _member(_expr(node.node, env), node.attr, env, attribute=True, label=_label(node.node))
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return _member(_expr(node.node, env), node.arg.value, env, attribute=False, label=_label(node.node))
    if isinstance(node, nodes.Filter):
        return _filter(node, env)
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_expr(item, env) for item in node.items]
        return lambda context: [_defined(item(context)) for item in items]
    if isinstance(node, nodes.Dict):
        pairs = [(_expr(pair.key, env), _expr(pair.value, env)) for pair in node.items]
        return lambda context: {_defined(k(context)): _defined(v(context)) for k, v in pairs}
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
        left, right, compare = _expr(node.expr, env), _expr(node.ops[0].expr, env), _COMPARE[node.ops[0].op]
        return lambda context: compare(_defined(left(context)), _defined(right(context)))
    if type(node) in _ARITHMETIC:
        apply = _ARITHMETIC[type(node)]  # type: ignore[index]
        left, right = _expr(node.left, env), _expr(node.right, env)  # type: ignore[attr-defined]
        return lambda context: apply(_defined(left(context)), _defined(right(context)))
    if isinstance(node, nodes.And | nodes.Or):
        left, right = _expr(node.left, env), _expr(node.right, env)
        if isinstance(node, nodes.And):
            return lambda context: _defined(left(context)) and _defined(right(context))
        return lambda context: _defined(left(context)) or _defined(right(context))
    if isinstance(node, nodes.Concat):
        parts = [_expr(part, env) for part in node.nodes]
        return lambda context: "".join(str(_defined(part(context))) for part in parts)
    if isinstance(node, nodes.Not):
        inner = _expr(node.node, env)
        return lambda context: not _defined(inner(context))
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        test, yes, no = _expr(node.test, env), _expr(node.expr1, env), _expr(node.expr2, env)
        return lambda context: yes(context) if _defined(test(context)) else no(context)
    raise _Unsupported


def _name(name: str) -> Evaluator:
    message = f"'{name}' is undefined"

    def load(context: Mapping[str, Any]) -> Any:
        try:
            return context[name]
        except KeyError:
            return Missing(message)

    return load


def _path(node: nodes.Node) -> list[tuple[Any, bool]] | None:
    """`event.item.sku` as [("event", True), ("item", True), ("sku", True)]; None for anything else."""
    steps: list[tuple[Any, bool]] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps.append((node.attr, True))
        elif isinstance(node.arg, nodes.Const):
            steps.append((node.arg.value, False))
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load" or not steps:
        return None
    steps.append((node.name, True))
    steps.reverse()
    return steps


def _walk(path: list[tuple[Any, bool]], env: Any) -> Evaluator:
    """A whole path in one closure: plain dicts walked directly, anything else through the sandbox."""
    first = path[0][0]
    rest = path[1:]
    labels = [first]
    for key, attribute in rest[:-1]:
        labels.append(f"{labels[-1]}.{key}" if attribute else f"{labels[-1]}[{key!r}]")

    def load(context: Mapping[str, Any]) -> Any:
        try:
            value = context[first]
        except KeyError:
            return Missing(f"'{first}' is undefined")
        last = len(rest) - 1
        for index, (key, attribute) in enumerate(rest):
            if type(value) is dict:
                if key in value:
                    value = value[key]
                    continue
                missing = Missing(f"'{labels[index]}' has no key {key!r}")
            else:
                found = _lookup(value, key, attribute, env)
                if not isinstance(found, Missing):
                    value = found
                    continue
                missing = Missing(f"'{labels[index]}' {found.message}")
            if index == last:
                return missing
            missing.fail()
        return value

    return load


def _lookup(value: Any, key: Any, attribute: bool, env: Any) -> Any:
    if isinstance(value, Mapping):
        return value[key] if key in value else Missing(f"has no key {key!r}")
    if value is not None:
        found = env.getattr(value, key) if attribute else env.getitem(value, key)
        if not isinstance(found, Undefined):
            return found
    return Missing(f"is {'null' if value is None else type(value).__name__}, it has no {key!r}")


def _label(node: nodes.Node) -> str:
    """`event.item` for a path expression, for error messages."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_label(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_label(node.node)}[{node.arg.value!r}]"
    return "value"


def _member(parent: Evaluator, key: Any, env: Any, *, attribute: bool, label: str) -> Evaluator:
    def load(context: Mapping[str, Any]) -> Any:
        value = _defined(parent(context))
        if isinstance(value, Mapping):
            try:
                return value[key]
            except KeyError:
                pass
        elif value is not None:
            found = env.getattr(value, key) if attribute else env.getitem(value, key)
            if not isinstance(found, Undefined):
                return found
        if isinstance(value, Mapping):
            return Missing(f"'{label}' has no key {key!r}")
        return Missing(f"'{label}' is {'null' if value is None else type(value).__name__}, it has no {key!r}")

    return load


def _filter(node: nodes.Filter, env: Any) -> Evaluator:
    if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
        raise _Unsupported
    operand = _expr(node.node, env)
    args = [_expr(arg, env) for arg in node.args]
    kwargs = [(str(pair.key), _expr(pair.value, env)) for pair in node.kwargs]
    if node.name in ("default", "d"):
        return _default(operand, args, kwargs)
    function = env.filters.get(node.name)
    if function is None or any(
        getattr(function, flag, None) for flag in ("jinja_pass_arg", "contextfilter", "environmentfilter")
    ):
        raise _Unsupported

    def apply(context: Mapping[str, Any]) -> Any:
        value = _defined(operand(context))
        positional = [_defined(arg(context)) for arg in args]
        named = {key: _defined(arg(context)) for key, arg in kwargs}
        return function(value, *positional, **named)

    return apply


def _default(operand: Evaluator, args: list[Evaluator], kwargs: list[tuple[str, Evaluator]]) -> Evaluator:
    named = dict(kwargs)
    fallback = args[0] if args else named.get("default_value", lambda context: "")
    boolean = args[1] if len(args) > 1 else named.get("boolean", lambda context: False)

    def apply(context: Mapping[str, Any]) -> Any:
        value = operand(context)
        if isinstance(value, Missing) or (_defined(boolean(context)) and not value):
            return _defined(fallback(context))
        return value

    return apply


# --- whole values as generated Python ------------------------------------------------------------


class _Source:
    """Python source for one templated value, with the objects it refers to."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.objects: list[Any] = []

    def ref(self, obj: Any) -> str:
        self.objects.append(obj)
        return f"_o[{len(self.objects) - 1}]"

    def value(self, value: Any, parse: Callable[[str], nodes.Template]) -> str:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return self.template(parse(value))
        if isinstance(value, dict):
            items = ", ".join(f"{self.ref(key)}: {self.value(item, parse)}" for key, item in value.items())
            return "{" + items + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.value(item, parse) for item in value) + "]"
        return self.ref(value)

    def template(self, ast: nodes.Template) -> str:
        if not all(isinstance(node, nodes.Output) for node in ast.body):
            raise _Unsupported
        parts = [part for output in ast.body for part in cast(nodes.Output, output).nodes]
        if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
            return self.expr(parts[0])
        pieces = [
            self.ref(part.data) if isinstance(part, nodes.TemplateData) else f"str({self.expr(part)})"
            for part in parts
        ]
        return "(" + " + ".join(pieces) + ")"

    def expr(self, node: nodes.Node) -> str:
        if isinstance(node, nodes.Const):
            return self.ref(node.value)
        if isinstance(node, nodes.Name) and node.ctx == "load":
            return f"_c[{node.name!r}]"
        if isinstance(node, nodes.Getattr):
            return f"{self.expr(node.node)}[{node.attr!r}]"
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return f"{self.expr(node.node)}[{self.ref(node.arg.value)}]"
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.List | nodes.Tuple):
            return "[" + ", ".join(self.expr(item) for item in node.items) + "]"
        if isinstance(node, nodes.Dict):
            return "{" + ", ".join(f"{self.expr(p.key)}: {self.expr(p.value)}" for p in node.items) + "}"
        if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
            compare = self.ref(_COMPARE[node.ops[0].op])
            return f"{compare}({self.expr(node.expr)}, {self.expr(node.ops[0].expr)})"
        if type(node) in _ARITHMETIC:
            apply = self.ref(_ARITHMETIC[type(node)])  # type: ignore[index]
            return f"{apply}({self.expr(node.left)}, {self.expr(node.right)})"  # type: ignore[attr-defined]
        if isinstance(node, nodes.And):
            return f"({self.expr(node.left)} and {self.expr(node.right)})"
        if isinstance(node, nodes.Or):
            return f"({self.expr(node.left)} or {self.expr(node.right)})"
        if isinstance(node, nodes.Not):
            return f"(not {self.expr(node.node)})"
        if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
            return f"({self.expr(node.expr1)} if {self.expr(node.test)} else {self.expr(node.expr2)})"
        if isinstance(node, nodes.Concat):
            return "(" + " + ".join(f"str({self.expr(part)})" for part in node.nodes) + ")"
        raise _Unsupported

    def filter(self, node: nodes.Filter) -> str:
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
            raise _Unsupported
        operand = self.expr(node.node)
        args = [self.expr(arg) for arg in node.args]
        kwargs = {str(pair.key): self.expr(pair.value) for pair in node.kwargs}
        if node.name in ("default", "d"):
            fallback = args[0] if args else kwargs.get("default_value", self.ref(""))
            boolean = args[1] if len(args) > 1 else kwargs.get("boolean", self.ref(False))
            return f"{self.ref(_fast_default)}({operand}, {fallback}, {boolean})"
        function = self.env.filters.get(node.name)
        if function is None or getattr(function, "jinja_pass_arg", None):
            raise _Unsupported
        call = ", ".join([operand, *args, *(f"{key}={value}" for key, value in kwargs.items())])
        return f"{self.ref(function)}({call})"


def _fast_default(value: Any, fallback: Any, boolean: Any) -> Any:
    return fallback if boolean and not value else value


def generate(value: Any, env: Any, parse: Callable[[str], nodes.Template]) -> Evaluator | None:
    """One Python function computing a whole templated value, for events that have every key it reads.

    The function raises on anything unusual (a missing key, a non-mapping on a path); the caller then
    evaluates the closures of `compile_ast`/Jinja, which produce the exact value or the exact error.
    None when some part is outside the subset.
    """
    source = _Source(env)
    try:
        expression = source.value(value, parse)
    except _Unsupported:
        return None
    namespace: dict[str, Any] = {"_o": source.objects}
    exec(compile(f"def render(_c):\n    return {expression}\n", "<mesbridge template>", "exec"), namespace)  # noqa: S102
    function: Evaluator = namespace["render"]
    return function
