"""Differential tests: every evaluation path means exactly what Jinja (and jmespath) mean.

Templates are generated over the grammar integrators use (paths, the project's helpers and Jinja's
filters, `~`, arithmetic, comparisons, inline `if`, `{% if %}`, `{% for %}`, comments, whitespace control,
literals) and evaluated over generated contexts (unicode, Hebrew, leading zeros, numbers, null, missing
keys, lists, nested mappings, fields named `items`, `values`, `keys`, `update`, `get`). Each of the
engine's paths (the generated function, the compiled closures, Jinja in the engine's environment) must
give what a plain `ImmutableSandboxedEnvironment` with `StrictUndefined` gives, with only the two
documented rules added: a lone expression yields its value, and on a mapping a key wins over a method.
The result is compared by value and type, an error by its class (and its message, unless undefined).

CI runs 100 cases of each (a few seconds); `MESBRIDGE_DIFFERENTIAL_EXAMPLES=20000` runs a long campaign.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import jmespath
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine import helpers
from engine.expressions import Selection, environment, limits
from engine.expressions.compiler import Unsupported
from engine.expressions.sandbox import MissingValue
from engine.expressions.templates import Leaf

EXAMPLES = int(os.environ.get("MESBRIDGE_DIFFERENTIAL_EXAMPLES", "100"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Reference(ImmutableSandboxedEnvironment):
    """Jinja as it is, with the documented mapping rule and nothing else of the engine's."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


REFERENCE = Reference(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
REFERENCE.filters.update(helpers.FILTERS)
REFERENCE.globals.update(helpers.GLOBALS)

# --- contexts -------------------------------------------------------------------------------------

FIELDS = [
    "sku",
    "qty",
    "serial",
    "items",
    "values",
    "keys",
    "update",
    "get",
    "name",
    "code",
    "lines",
    "n",
    "flag",
]
TEXTS = [
    "007",
    "0",
    "",
    "WC-10",
    "A",
    "a b",
    'פק"ע',
    "שלום",
    "Ș",
    "12",
    "1.5",
    "x,y",
    "O'Brien",
    "  pad  ",
    "true",
]

scalars = st.one_of(
    st.sampled_from(TEXTS),
    st.text(alphabet="ab0 -_שא", max_size=4),
    st.integers(-20, 1000),
    st.sampled_from([0.5, -1.25, 3.0, 0.0]),
    st.booleans(),
    st.none(),
)
lines = st.lists(
    st.fixed_dictionaries(
        {"sku": st.sampled_from(TEXTS)}, optional={"qty": st.integers(0, 9), "items": scalars}
    ),
    max_size=3,
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    lines,
    st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3),
)


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(st.fixed_dictionaries({field: values for field in FIELDS}))
    for missing in draw(st.lists(st.sampled_from(FIELDS), max_size=len(FIELDS))):
        event.pop(missing, None)
    kind = draw(st.sampled_from([dict, dict, dict, OrderedDict]))
    return {
        "event": kind(event),
        "vars": {"table": {"A": "1", "WC-10": "WC1", "007": "seven", "": "empty"}, "n": 2, "sep": "-"},
        "loopy": draw(st.lists(scalars, max_size=3)),
    }


# --- expressions ----------------------------------------------------------------------------------

STRINGS = ["'A'", "'007'", "''", "'WC-10'", "'פק'", "'a b'", "'x'", "','"]
FILTERS = [
    "upper", "lower", "length", "first", "last", "string", "int", "float", "abs", "trim", "list", "sort",
    "reverse", "unique", "sum", "min", "max", "capitalize", "title", "tojson", "count", "wordcount",
    "to_str", "to_int", "to_float", "to_bool", "odata_quote", "iso8601", "e", "items", "dictsort",
    "default('d')", "default(none, true)", "d(0)", "join(',')", "join", "replace('a', 'b')", "center(6)",
    "truncate(5)", "split(',')", "jmes('sku')", "jmes('[0]')", "lookup(vars.table)",
    "lookup(vars.table, default=event.code)", "lookup(vars.table, default=none)", "batch(2) | list",
    "map('upper') | list", "map(attribute='sku') | list", "select | list", "selectattr('sku') | list",
    "round(1)", "indent(2)", "format(1)", "attr('sku')", "odata_date", "date('%Y')", "fromjson",
]  # fmt: skip
TESTS = ["defined", "undefined", "none", "number", "string", "mapping", "sequence", "odd", "even", "true"]
TESTS_OF_TWO = ["sameas", "eq", "ne", "lt", "ge", "divisibleby", "in", "equalto"]
"""Tests that take a value: `x is sameas y` (identity: equal constants must stay distinct objects)."""

paths = st.one_of(
    st.sampled_from(
        ["event", "vars", "vars.table", "vars.n", "vars.sep", "loopy", "missing", "event.lines[0]"]
    ),
    st.sampled_from(FIELDS).map(lambda f: f"event.{f}"),
    st.sampled_from(FIELDS).map(lambda f: f"event['{f}']"),
    st.tuples(st.sampled_from(FIELDS), st.sampled_from(FIELDS)).map(lambda p: f"event.{p[0]}.{p[1]}"),
    st.sampled_from(["event.lines[0].sku", "event.lines[-1]", "vars.table['A']", "vars.table.A"]),
)
literals = st.one_of(
    st.sampled_from(STRINGS),
    st.integers(-5, 300).map(str),
    st.sampled_from(["1.5", "0.0", "true", "false", "none", "True", "False", "None"]),
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.sampled_from(["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", "<=", ">", ">=", "in",
                              "not in", "and", "or"])  # fmt: skip
    return st.one_of(
        st.tuples(inner, binary, inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(inner, st.integers(0, 3)).map(lambda t: f"({t[0]}) ** {t[1]}"),
        st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]}) | {t[1]}"),
        st.tuples(inner, st.sampled_from(TESTS)).map(lambda t: f"({t[0]}) is {t[1]}"),
        st.tuples(inner, st.sampled_from(TESTS_OF_TWO), inner).map(lambda t: f"({t[0]}) is {t[1]}({t[2]})"),
        literals.map(lambda literal: f"({literal}) is sameas({literal})"),  # equal, yet two objects
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) if ({t[1]}) else ({t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) if ({t[1]})"),
        st.tuples(inner, st.sampled_from(["[0]", "[-1]", ".sku", "['sku']", ".items", "[1:]"])).map(
            lambda t: f"({t[0]}){t[1]}"
        ),
        inner.map(lambda e: f"not ({e})"),
        inner.map(lambda e: f"-({e})"),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(STRINGS), inner).map(lambda t: "{" + f"{t[0]}: {t[1]}" + "}"),
        st.one_of(  # calls: methods and globals
            st.tuples(inner, st.sampled_from(["'sku'", "'x'", "0"])).map(lambda t: f"({t[0]}).get({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"lookup({t[0]}, vars.table, default={t[1]})"),
            inner.map(lambda e: f"({e}).upper()"),
            inner.map(lambda e: f"dict(event, k={e}) | length"),
        ),
    )


expressions = st.recursive(st.one_of(paths, literals), _compound, max_leaves=6)

spaces = st.sampled_from(["", " ", "\n", "{# c #}", " {# note #} ", "\n  "])


@st.composite
def lone_templates(draw: st.DrawFn) -> tuple[str, str]:
    expression = draw(expressions)
    left, right = draw(st.sampled_from(["{{", "{{-"])), draw(st.sampled_from(["}}", "-}}"]))
    return draw(spaces) + f"{left} {expression} {right}" + draw(spaces), expression


@st.composite
def text_templates(draw: st.DrawFn) -> str:
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["WO ", "-", " / ", "פק ", "\n", "007", "  "]),
                expressions.map(lambda e: f"{{{{ {e} }}}}"),
                expressions.map(lambda e: f"{{{{- {e} -}}}}"),
                st.sampled_from(["{# comment #}", "{#- c -#}"]),
                st.tuples(expressions, expressions, expressions).map(
                    lambda t: f"{{% if ({t[0]}) %}}{{{{ {t[1]} }}}}{{% else %}}{{{{ {t[2]} }}}}{{% endif %}}"
                ),
                st.tuples(expressions, expressions).map(
                    lambda t: (
                        f"{{% for x in ({t[0]}) %}}{{{{ loop.index }}}}:{{{{ x }}}}{{{{ {t[1]} }}}},{{% endfor %}}"
                    )
                ),
                st.tuples(expressions, expressions).map(
                    lambda t: f"{{% set v = ({t[0]}) %}}{{{{ v ~ ({t[1]}) }}}}"
                ),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return "".join(pieces)


# --- comparing ------------------------------------------------------------------------------------


class _Lazy:
    """A lazy value (`| reverse`, `| map(...)`), read once: its type and items."""

    def __init__(self, value: Iterator[Any]) -> None:
        self.kind, self.items = type(value), list(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Lazy) and self.kind is other.kind and _same(self.items, other.items)

    def __repr__(self) -> str:
        return f"<{self.kind.__name__} {self.items!r}>"


def _outcome(run: Any) -> tuple[str, Any]:
    limits.start()  # what Template.render does: each evaluation has the whole budget
    try:
        with warnings.catch_warnings():  # Jinja as it runs anywhere: Python's SyntaxWarnings are not errors
            warnings.simplefilter("ignore", SyntaxWarning)
            value = run()
        return "value", _Lazy(value) if isinstance(value, Iterator) else value
    except Exception as exc:  # noqa: BLE001 - the error is the outcome being compared
        return "error", exc


def _first_undefined(value: Any) -> Undefined | None:
    """The first undefined value in `value` as written out, if any."""
    if isinstance(value, Undefined):
        return value
    parts = (
        value
        if isinstance(value, list | tuple)
        else [p for pair in value.items() for p in pair]
        if isinstance(value, dict)
        else []
    )
    return next((found for found in map(_first_undefined, parts) if found is not None), None)


_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, str):  # a printed object (`<generator object ... at 0x7f...>`): its address differs
        return _ADDRESS.sub(">", left) == _ADDRESS.sub(">", right)
    if isinstance(left, Undefined):
        return True
    if isinstance(left, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    return bool(left == right)


def _error_class(exc: BaseException) -> type[BaseException]:
    return UndefinedError if isinstance(exc, MissingValue) else type(exc)


def _agree(expected: tuple[str, Any], actual: tuple[str, Any], what: str) -> None:
    """Jinja's outcome and one of the engine's: the same value and type, or the same error."""
    if actual[0] == "load error":  # refused when the config loads: only what Jinja cannot compile either
        assert expected[0] == "compile error", (
            f"{what}: does not load ({actual[1]}); Jinja gives {expected!r}"
        )
        return
    if expected[0] == "compile error":  # Jinja fails folding a constant; the engine may fail evaluating
        expected = ("error", expected[1])
    if expected[0] == "value" and actual[0] == "value":
        assert _same(expected[1], actual[1]), f"{what}: {actual[1]!r} != Jinja's {expected[1]!r}"
        return
    assert expected[0] == actual[0] == "error", f"{what}: {actual!r} where Jinja gives {expected!r}"
    want, got = expected[1], actual[1]
    assert _error_class(got) is _error_class(want), f"{what}: {got!r} where Jinja raises {want!r}"
    if not isinstance(want, UndefinedError):
        assert str(got) == str(want), f"{what}: {got!r} where Jinja raises {want!r}"


def _paths(source: str, context: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """The outcome of each of the engine's evaluation paths for one template string.

    A template that does not load gives ("load error", ValueError) on every path.
    """
    env = environment()
    try:
        leaf = Leaf(source, (), env)
        jinja = Leaf(source, (), env).jinja(env)
    except ValueError as exc:
        return {"load": ("load error", exc)}
    outcomes = {"jinja": _outcome(lambda: jinja(context))}
    try:
        compiled = leaf.compiled(env)
    except Unsupported:
        return outcomes
    outcomes["closures"] = _outcome(lambda: compiled(context))
    fast = leaf.fast(env)
    if fast is not None:
        generated = _outcome(lambda: fast(context))
        if generated[0] == "value":  # the generated function may only give the exact value, or raise
            outcomes["generated"] = generated
    return outcomes


@PROFILE
@given(lone_templates(), contexts())
def test_a_lone_expression_yields_what_jinja_evaluates(
    template: tuple[str, str], context: dict[str, Any]
) -> None:
    source, expression = template
    compiled = _outcome(lambda: REFERENCE.compile_expression(expression, undefined_to_none=False))
    if compiled[0] == "error":
        value: tuple[str, Any] = ("compile error", compiled[1])
    else:
        value = _outcome(lambda: compiled[1](**context))
    undefined = _first_undefined(value[1]) if value[0] == "value" else None
    if undefined is not None:  # rule (a): the value must be data; an undefined in it fails as it would alone
        value = _outcome(undefined._fail_with_undefined_error)
    for path, outcome in _paths(source, context).items():
        _agree(value, outcome, f"{path} path of {source!r}")


@PROFILE
@given(text_templates(), contexts())
def test_text_is_what_jinja_renders(source: str, context: dict[str, Any]) -> None:
    template = _outcome(lambda: REFERENCE.from_string(source))
    if template[0] == "error":
        expected: tuple[str, Any] = ("compile error", template[1])
    else:
        if REFERENCE.parse(source).body and _is_lone(source):
            return  # a lone expression: the test above
        expected = _outcome(lambda: template[1].render(**context))
    for path, outcome in _paths(source, context).items():
        _agree(expected, outcome, f"{path} path of {source!r}")


def _is_lone(source: str) -> bool:
    from engine.expressions.templates import lone_expression

    return lone_expression(REFERENCE.parse(source)) is not None


# --- selections against jmespath ------------------------------------------------------------------

names = st.one_of(st.sampled_from(FIELDS + ["a", "type"]), st.sampled_from(['"a-b"', '"פק"', '"x y"']))
selections = st.lists(names, min_size=1, max_size=4).map(".".join)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(FIELDS + ["a", "type", "a-b", "פק", "x y"]), inner, max_size=4
        ).flatmap(lambda d: st.sampled_from([d, OrderedDict(d), MappingProxyType(d)])),
    ),
    max_leaves=12,
)


@PROFILE
@given(selections, json_like)
def test_a_field_path_selects_what_jmespath_selects(expression: str, data: Any) -> None:
    expected = jmespath.search(expression, data)
    actual = Selection(expression).search(data)
    assert actual is expected or _same(actual, expected), (expression, data, actual, expected)
