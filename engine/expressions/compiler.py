"""The common subset of Jinja expressions, compiled to Python closures with Jinja's exact meaning.

Mappings are mostly paths, filters, literals and a little arithmetic: `{{ event.sku }}`,
`{{ event.workCenterCode | lookup(vars.centres) }}`, `WO {{ event.workorderNumber }}`. Running those
through Jinja's runtime costs a context per render. Here each node becomes a closure doing what the
code Jinja generates for it does, calling the same environment methods (`getattr`, `getitem`,
`call_binop`, `concat_values`, `finalize`, `concat`), the same filters and tests, and creating the same
undefined values; so every value and every error is Jinja's. Anything outside the subset (statements,
slices, filters that take the render context, keyword arguments named like Python keywords) raises
`Unsupported`, and the caller runs Jinja.

`generate` writes one Python function for a whole templated value, for the usual event that has every
key it reads; it raises on anything else (a missing key, a value of another type), and the caller then
evaluates the closures, which give Jinja's value or Jinja's error.
"""

from __future__ import annotations

import keyword
import operator
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.filters import do_default
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.tests import test_sameas
from jinja2.utils import _PassArg

from engine import helpers
from engine.codegen import define
from engine.expressions import limits

__all__ = ["Evaluator", "Unsupported", "Closures", "generate", "is_path", "may_build"]

Evaluator = Callable[[Mapping[str, Any]], Any]

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
_PYTHON_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "lteq": "<=", "gt": ">", "gteq": ">=", "in": "in",
                   "notin": "not in"}  # fmt: skip
_BINOPS: dict[type[nodes.Node], str] = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
}


class Unsupported(Exception):
    """The node is outside the compiled subset; Jinja evaluates it."""


def is_path(node: nodes.Node) -> bool:
    """`a`, `a.b`, `a['b'][0]`: a name and constant lookups, which yield a value of the context as it is."""
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const):
            return False
        node = node.node
    return isinstance(node, nodes.Name) and node.ctx == "load"


_PLAIN_FILTERS = frozenset(
    "abs capitalize center count d date default e escape filesizeformat float format indent int iso8601 "
    "join length lookup lower odata_date odata_quote path_raw replace round string striptags title to_bool "
    "to_float to_int to_str tojson trim truncate upper urlencode wordcount wordwrap".split()
)
"""Filters that return a scalar, a string, or one of the values they were given: never a new container
and never an undefined value of their own (unlike `first` on an empty list)."""


def may_build(node: nodes.Node) -> bool:
    """Whether an expression can yield a container it built, or an undefined value, from defined inputs.

    A lone expression that cannot is not walked for undefined values or size once evaluated.
    """
    for child in node.find_all((nodes.List, nodes.Dict, nodes.Tuple, nodes.BinExpr, nodes.Filter, nodes.Call,
                                nodes.CondExpr)):  # fmt: skip
        if not isinstance(child, nodes.Filter) or child.name not in _PLAIN_FILTERS:
            return True
    return isinstance(
        node, nodes.List | nodes.Dict | nodes.Tuple | nodes.BinExpr | nodes.Call | nodes.CondExpr
    ) or (isinstance(node, nodes.Filter) and node.name not in _PLAIN_FILTERS)


def _prefix(function: Any, env: Any, eval_ctx: EvalContext) -> tuple[Any, ...]:
    """What Jinja passes before a filter's or test's value: the environment or eval context, or nothing."""
    pass_arg = _PassArg.from_obj(function)
    if pass_arg is None:
        return ()
    if pass_arg is _PassArg.environment:
        return (env,)
    if pass_arg is _PassArg.eval_context:
        return (eval_ctx,)
    raise Unsupported  # the filter reads the render context (map, select, ...)


def _plain_keywords(node: nodes.Call) -> None:
    """Keyword arguments named like Python keywords are passed by Jinja another way: left to Jinja."""
    if any(keyword.iskeyword(pair.key) or not pair.key.isidentifier() for pair in node.kwargs):
        raise Unsupported


class Caller:
    """`f(a, k=b)` as Jinja's code calls it: `environment.call(context, f, a, k=b)`.

    The sandbox checks the callee, then `Context.call` passes it the context, eval context or environment
    when it asks for one. A template of the compiled subset sets no variables, so its context is its
    variables and the globals; it is built only for a callee that takes it.
    """

    __slots__ = ("env", "_plain")

    def __init__(self, env: Any) -> None:
        self.env = env
        self._plain = Context(env, dict(env.globals), None, {}, env.globals)

    def __call__(self, variables: Mapping[str, Any], function: Any, /, *args: Any, **kwargs: Any) -> Any:
        context = self._plain
        method: Any = getattr(function, "__call__", None)  # noqa: B004 - as Context.call, for a pass_* marker
        callee = method if method is not None and _PassArg.from_obj(method) is not None else function
        if _PassArg.from_obj(callee) is _PassArg.context:
            context = Context(self.env, {**self.env.globals, **variables}, None, {}, self.env.globals)
        return self.env.call(context, function, *args, **kwargs)


class Closures:
    """Compiles expression nodes into closures over a context mapping (the template's variables)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.eval_ctx = EvalContext(env)
        self.caller = Caller(env)

    def expr(self, node: nodes.Node) -> Evaluator:
        """The closure for one expression node; Unsupported outside the subset."""
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise Unsupported
        evaluator: Evaluator = method(node)
        return evaluator

    def _Const(self, node: nodes.Const) -> Evaluator:  # noqa: N802 - named after the node class
        value = node.value
        return lambda context: value

    def _Name(self, node: nodes.Name) -> Evaluator:  # noqa: N802
        if node.ctx != "load":
            raise Unsupported
        name = node.name
        env = self.env
        known = env.globals.get(name, _MISSING)

        def load(context: Mapping[str, Any]) -> Any:
            try:
                return context[name]
            except KeyError:
                return known if known is not _MISSING else env.undefined(name=name)

        return load

    def _Getattr(self, node: nodes.Getattr) -> Evaluator:  # noqa: N802
        parent = self.expr(node.node)
        attr = node.attr
        getattr_ = self.env.getattr

        def load(context: Mapping[str, Any]) -> Any:
            obj = parent(context)
            if type(obj) is dict and attr in obj:
                return obj[attr]
            return getattr_(obj, attr)

        return load

    def _Getitem(self, node: nodes.Getitem) -> Evaluator:  # noqa: N802
        if isinstance(node.arg, nodes.Slice):
            raise Unsupported
        parent, argument = self.expr(node.node), self.expr(node.arg)
        getitem = self.env.getitem
        return lambda context: getitem(parent(context), argument(context))

    def _call_with(self, node: nodes.Filter | nodes.Test, function: Any) -> Evaluator:
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
            raise Unsupported
        prefix = _prefix(function, self.env, self.eval_ctx)
        operand = self.expr(node.node)
        args = [self.expr(arg) for arg in node.args]
        kwargs = [(str(pair.key), self.expr(pair.value)) for pair in node.kwargs]
        if not args and not kwargs:
            return lambda context: function(*prefix, operand(context))

        def apply(context: Mapping[str, Any]) -> Any:
            value = operand(context)
            positional = [arg(context) for arg in args]
            named = {key: arg(context) for key, arg in kwargs}
            return function(*prefix, value, *positional, **named)

        return apply

    def _Filter(self, node: nodes.Filter) -> Evaluator:  # noqa: N802
        return self._call_with(node, self.env.filters[node.name])

    def _Test(self, node: nodes.Test) -> Evaluator:  # noqa: N802
        return self._call_with(node, self.env.tests[node.name])

    def _Call(self, node: nodes.Call) -> Evaluator:  # noqa: N802
        _plain_keywords(node)
        function = self.expr(node.node)
        args = [self.expr(arg) for arg in node.args]
        kwargs = [(pair.key, self.expr(pair.value)) for pair in node.kwargs]
        star = self.expr(node.dyn_args) if node.dyn_args is not None else None
        starstar = self.expr(node.dyn_kwargs) if node.dyn_kwargs is not None else None
        call = self.caller

        def apply(context: Mapping[str, Any]) -> Any:
            callee = function(context)  # evaluated in Jinja's order: callee, args, kwargs, *, **
            positional = [arg(context) for arg in args]
            named = {key: arg(context) for key, arg in kwargs}
            more = star(context) if star is not None else ()
            extra = starstar(context) if starstar is not None else {}
            return call(context, callee, *positional, *more, **named, **extra)

        return apply

    def _Compare(self, node: nodes.Compare) -> Evaluator:  # noqa: N802
        first = self.expr(node.expr)
        ops = [(_COMPARE[op.op], self.expr(op.expr)) for op in node.ops]
        if len(ops) == 1:
            ((compare, second),) = ops
            return lambda context: compare(first(context), second(context))

        def chain(context: Mapping[str, Any]) -> Any:  # Python's `a < b < c`: each operand once, in order
            left = first(context)
            result: Any = True
            for compare, operand in ops:
                right = operand(context)
                result = compare(left, right)
                if not result:
                    return result
                left = right
            return result

        return chain

    def _binop(self, node: Any) -> Evaluator:
        apply = self.env.binop_table[_BINOPS[type(node)]]
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda context: apply(left(context), right(context))

    _Add = _Sub = _Mul = _Div = _FloorDiv = _Mod = _Pow = _binop

    def _And(self, node: nodes.And) -> Evaluator:  # noqa: N802
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda context: left(context) and right(context)

    def _Or(self, node: nodes.Or) -> Evaluator:  # noqa: N802
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda context: left(context) or right(context)

    def _Not(self, node: nodes.Not) -> Evaluator:  # noqa: N802
        inner = self.expr(node.node)
        return lambda context: not inner(context)

    def _Neg(self, node: nodes.Neg) -> Evaluator:  # noqa: N802
        inner = self.expr(node.node)
        return lambda context: -inner(context)

    def _Pos(self, node: nodes.Pos) -> Evaluator:  # noqa: N802
        inner = self.expr(node.node)
        return lambda context: +inner(context)

    def _CondExpr(self, node: nodes.CondExpr) -> Evaluator:  # noqa: N802
        test, yes = self.expr(node.test), self.expr(node.expr1)
        if node.expr2 is not None:
            no = self.expr(node.expr2)
        else:  # Jinja's implicit else: the plain (lenient) Undefined, whatever the environment's
            hint = (
                f"the inline if-expression on line {node.lineno} evaluated to false and no else section "
                "was defined."
            )

            def no(context: Mapping[str, Any]) -> Any:
                return Undefined(hint)

        return lambda context: yes(context) if test(context) else no(context)

    def _Concat(self, node: nodes.Concat) -> Evaluator:  # noqa: N802
        parts = [self.expr(part) for part in node.nodes]
        concat = self.env.concat_values
        return lambda context: concat(tuple(part(context) for part in parts))

    def _List(self, node: nodes.List) -> Evaluator:  # noqa: N802
        items = [self.expr(item) for item in node.items]
        return lambda context: [item(context) for item in items]

    def _Tuple(self, node: nodes.Tuple) -> Evaluator:  # noqa: N802
        if node.ctx != "load":
            raise Unsupported
        items = [self.expr(item) for item in node.items]
        return lambda context: tuple(item(context) for item in items)

    def _Dict(self, node: nodes.Dict) -> Evaluator:  # noqa: N802
        pairs = [(self.expr(pair.key), self.expr(pair.value)) for pair in node.items]
        return lambda context: {key(context): value(context) for key, value in pairs}

    def text(self, parts: list[nodes.Node]) -> Evaluator:
        """The text of an output: literal data as written, each expression printed as Jinja prints it."""
        finalize, concat = self.env.finalize, self.env.concat
        prefix = _prefix(finalize, self.env, self.eval_ctx)
        pieces: list[tuple[bool, Any]] = [
            (True, part.data) if isinstance(part, nodes.TemplateData) else (False, self.expr(part))
            for part in parts
        ]

        def render(context: Mapping[str, Any]) -> str:
            return concat(
                [piece if literal else str(finalize(*prefix, piece(context))) for literal, piece in pieces]
            )

        return render


_MISSING: Any = object()
_LITERALS = (nodes.List, nodes.Tuple, nodes.Dict)
_PRINTED = frozenset({str, int, float, bool, type(None)})
"""Types whose printed text `finalize` leaves as `str()` makes it (a number's digits fit every limit)."""


# --- whole values as generated Python ------------------------------------------------------------


_LITERAL_TYPES = frozenset({str, int, bool, type(None)})
"""Constants written as Python literals: their `repr` is source that makes an equal value."""


class _Source:
    """Python source for one templated value, with the objects it refers to (`_o0`, `_o1`, ... in the
    source) and the context's variables it reads (each read once, as `_n0`, `_n1`, ...)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.eval_ctx = EvalContext(env)
        self.objects: list[Any] = []
        self.ids: dict[int, int] = {}
        self.names: dict[str, str] = {}
        self.temporaries = 0

    def temporary(self, prefix: str) -> str:
        """A fresh local for an intermediate value (one that a nested expression cannot overwrite)."""
        self.temporaries += 1
        return f"{prefix}{self.temporaries}"

    def ref(self, obj: Any) -> str:
        if type(obj) in _LITERAL_TYPES and (type(obj) is not int or obj.bit_length() < 64):
            return repr(obj)
        known = self.ids.get(id(obj))
        if known is not None and self.objects[known] is obj:
            return f"_o{known}"
        self.objects.append(obj)
        self.ids[id(obj)] = index = len(self.objects) - 1
        return f"_o{index}"

    def variable(self, name: str) -> str:
        """The local that holds the context's variable `name` (read once, when the function starts:
        a missing one raises, and the caller evaluates the closures)."""
        local = self.names.get(name)
        if local is None:
            local = self.names[name] = f"_n{len(self.names)}"
        return local

    def value(self, value: Any, leaf: Callable[[Any], Any]) -> str:
        if isinstance(value, dict):
            items = ", ".join(f"{self.ref(key)}: {self.value(item, leaf)}" for key, item in value.items())
            return "{" + items + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.value(item, leaf) for item in value) + "]"
        return leaf(value)

    def expr(self, node: nodes.Node) -> str:
        if isinstance(node, nodes.Const):
            return self.ref(node.value)
        if isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name in self.env.globals:  # a variable of that name shadows the global
                return f"_c.get({node.name!r}, {self.ref(self.env.globals[node.name])})"
            return self.variable(node.name)
        if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, _LITERALS):
            raise Unsupported  # `()['x']`: Python itself refuses to compile it; the closures answer
        if isinstance(node, nodes.Getattr):
            return f"{self.expr(node.node)}[{node.attr!r}]"
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return f"{self.expr(node.node)}[{self.ref(node.arg.value)}]"
        if isinstance(node, nodes.Filter | nodes.Test):
            return self.call(node)
        if isinstance(node, nodes.Call):
            callee = node.node
            if isinstance(callee, nodes.Getattr):  # a method: the attribute as Jinja looks it up
                function = f"{self.ref(self.env.getattr)}({self.expr(callee.node)}, {callee.attr!r})"
            else:
                function = self.expr(callee)
            _plain_keywords(node)
            args = [function, *(self.expr(arg) for arg in node.args)]
            args += [f"{pair.key}={self.expr(pair.value)}" for pair in node.kwargs]
            if node.dyn_args is not None:
                args.append(f"*{self.expr(node.dyn_args)}")
            if node.dyn_kwargs is not None:
                args.append(f"**{self.expr(node.dyn_kwargs)}")
            return f"{self.ref(Caller(self.env))}(_c, {', '.join(args)})"
        if isinstance(node, nodes.List):
            return "[" + ", ".join(self.expr(item) for item in node.items) + "]"
        if isinstance(node, nodes.Tuple) and node.ctx == "load":
            return "(" + "".join(self.expr(item) + ", " for item in node.items) + ")"
        if isinstance(node, nodes.Dict):
            return "{" + ", ".join(f"{self.expr(p.key)}: {self.expr(p.value)}" for p in node.items) + "}"
        if isinstance(node, nodes.Compare):
            ops = "".join(f" {_PYTHON_COMPARE[op.op]} {self.expr(op.expr)}" for op in node.ops)
            return f"({self.expr(node.expr)}{ops})"
        if type(node) in _BINOPS:
            apply = self.ref(self.env.binop_table[_BINOPS[type(node)]])
            return f"{apply}({self.expr(node.left)}, {self.expr(node.right)})"  # type: ignore[attr-defined]
        if isinstance(node, nodes.And | nodes.Or):
            word = "and" if isinstance(node, nodes.And) else "or"
            return f"({self.expr(node.left)} {word} {self.expr(node.right)})"
        if isinstance(node, nodes.Not | nodes.Neg | nodes.Pos):
            sign = {nodes.Not: "not ", nodes.Neg: "-", nodes.Pos: "+"}[type(node)]
            return f"({sign}{self.expr(node.node)})"
        if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
            return f"({self.expr(node.expr1)} if {self.expr(node.test)} else {self.expr(node.expr2)})"
        if isinstance(node, nodes.Concat):
            concat = self.ref(self.env.concat_values)
            return f"{concat}((" + "".join(self.expr(part) + ", " for part in node.nodes) + "))"
        raise Unsupported

    def call(self, node: nodes.Filter | nodes.Test) -> str:
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
            raise Unsupported
        table = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
        function = table[node.name]
        if function is test_sameas:  # constants written as literals are merged by Python: `is` differs
            raise Unsupported
        if function is do_default and not node.kwargs and all(isinstance(a, nodes.Const) for a in node.args):
            return self.default(node.node, [arg.value for arg in node.args])  # type: ignore[attr-defined]
        if function is helpers.lookup and len(node.args) == 1 and not node.kwargs:
            return self.lookup(node.node, node.args[0])
        if getattr(function, "__wrapped__", None) is helpers.to_str and not node.args and not node.kwargs:
            value, whole = self.expr(node.node), self.ref(function)  # to_str's first cases: str, then int
            digits = f"str(_v) if _v.__class__ is int else {whole}(_v)"
            return f"(_v if (_v := {value}).__class__ is str else {digits})"
        prefix = [self.ref(arg) for arg in _prefix(function, self.env, self.eval_ctx)]
        args = [self.expr(node.node), *(self.expr(arg) for arg in node.args)]
        args += [f"{pair.key}={self.expr(pair.value)}" for pair in node.kwargs]
        return f"{self.ref(function)}({', '.join(prefix + args)})"

    def lookup(self, key: nodes.Node, table: nodes.Node) -> str:
        """`key | lookup(table)`: a `str` key that a `dict` table has, read inline; any other key or
        table as `helpers.lookup` answers it (a miss raises there). Each is evaluated once, the key
        first (`&` evaluates both sides), and the table's source is written once."""
        k, t, whole = self.temporary("_k"), self.temporary("_t"), self.ref(helpers.lookup)
        found = (
            f"(({k} := {self.expr(key)}).__class__ is str) & (({t} := {self.expr(table)}).__class__ is dict)"
        )
        return f"({t}[{k}] if {found} and {k} in {t} else {whole}({k}, {t}))"

    def default(self, operand: nodes.Node, args: list[Any]) -> str:
        """`x | default(c, b)` with constant arguments, for the generated function, where `x` is never
        undefined (a missing key raises): `x` itself, or `c` when `b` and `x` is falsy (as do_default)."""
        value = self.expr(operand)
        fallback, boolean = (args + ["", False][len(args) :])[:2]
        if not boolean:
            return value
        return f"(_v if (_v := {value}) else {self.ref(fallback)})"

    def text(self, parts: list[nodes.Node]) -> str:
        """An output's text; a printed string skips `finalize` (which returns it unchanged)."""
        finalize = self.env.finalize
        prefix = "".join(self.ref(arg) + ", " for arg in _prefix(finalize, self.env, self.eval_ctx))
        call = f"{self.ref(finalize)}({prefix}"
        pieces = []
        for part in parts:
            if isinstance(part, nodes.TemplateData):
                pieces.append(self.ref(part.data))
            elif _PassArg.from_obj(finalize) is None:  # finalize(x) of a str is x; of a number, its text
                printed = self.ref(_PRINTED)
                pieces.append(
                    f"(_v if (_v := {self.expr(part)}).__class__ is str else "
                    f"str(_v) if _v.__class__ in {printed} else str({call}_v)))"
                )
            else:
                pieces.append(f"str({call}{self.expr(part)}))")
        joined = "((" + "".join(piece + ", " for piece in pieces) + "))"
        values = sum(not isinstance(part, nodes.TemplateData) for part in parts)
        if self.env.concat is limits.join_text and values <= limits.SLACK:
            # a few pieces, each a printed value within the limits or a string of the data: joined, checked
            return f"{self.ref(limits.check)}({self.ref(''.join)}{joined})"
        return f"{self.ref(self.env.concat)}{joined}"


def generate(
    value: Any, env: Any, leaf: Callable[[_Source, Any], str], exact: Evaluator | None = None
) -> Evaluator | None:
    """One Python function computing a whole templated value, for events that have every key it reads.

    `leaf(source, item)` writes the source of one leaf of the value (raising Unsupported for one outside
    the subset). The function raises on anything unusual (a missing key, a non-mapping on a path); the
    caller then evaluates the closures or Jinja, which give the exact value or the exact error. With
    `exact`, the function is a whole evaluation: it starts the evaluation's budget (`limits.start`)
    and, where it stumbles, starts it again and returns `exact(context)`. None when some part is
    outside the subset.
    """
    source = _Source(env)
    try:
        expression = source.value(value, lambda item: leaf(source, item))
    except Unsupported:
        return None
    reads = [f"{local} = _c[{name!r}]" for name, local in source.names.items()]
    if exact is None:
        lines = ["def render(_c):", *(f"    {line}" for line in reads), f"    return {expression}"]
    else:
        budget, full, fallback = source.ref(limits.budget), source.ref(limits.MAX_BUILT), source.ref(exact)
        lines = [
            "def render(context):",  # Template.render(context): the parameter's name is the API's
            "    _c = context",
            f"    {budget}[0] = {full}",
            "    try:",
            *(f"        {line}" for line in reads),
            f"        return {expression}",
            "    except Exception:  # the exact evaluation decides, outside the handler: its error",
            "        pass  # is not chained to this one",
            f"    {budget}[0] = {full}",
            f"    return {fallback}(_c)",
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python doubting the code it compiles: leave it to the closures
        try:
            function: Evaluator = define(lines, source.objects, "<mesbridge template>")
        except (SyntaxError, SyntaxWarning):
            return None
    return function
