"""A whole templated value (a body, a reply) computed by its one generated function equals what its
leaves' exact evaluation builds: keys of every YAML type, constants written as Python literals,
each context variable read once, and lookups read inline."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import helpers
from engine.errors import ExpressionError
from engine.expressions import Template
from engine.expressions.compiler import generate
from engine.expressions.sandbox import environment
from engine.expressions.templates import TemplateError, _LeafSource

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
keys = st.one_of(
    texts,
    st.sampled_from(["'", '"', "\\", "\n", "}}", "{{", "a'b\"c", "\u05e9\u05dc\u05d5\u05dd", "0042"]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
leaves = st.one_of(
    texts.filter(lambda text: "{" not in text and "%" not in text and "#" not in text),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "{{ event.a }}",
            "{{ event.b ~ '-' ~ event.a }}",
            "n {{ event.a }} / {{ vars.c }}",
            "{{ event.missing | default('none') }}",
            "{{ vars.c | lookup(vars.table, default=event.a) }}",
            "{{ event.b if event.a else vars.c }}",
            "{{ 'quote\\' and \"both\"' }}",
            "{{ event.a }}\n{{ event.b }}",
        ]
    ),
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
contexts = st.fixed_dictionaries(
    {
        "event": st.fixed_dictionaries(
            {"a": st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none()), "b": texts}
        ),
        "vars": st.fixed_dictionaries(
            {"c": st.sampled_from(["x", "y", "0042"]), "table": st.just({"x": 1, "0042": "kept"})}
        ),
    }
)


def outcome(function: Any, context: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", function(context)
    except Exception as exc:  # noqa: BLE001 - the error's class is the result compared
        return "error", type(exc).__name__


def typed(value: Any) -> Any:
    """The value with every scalar's type beside it, so 1, 1.0 and True never compare equal."""
    if isinstance(value, dict):
        return {(type(key).__name__, repr(key)): typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, repr(value))


@settings(max_examples=400, deadline=None)
@given(values, contexts)
def test_a_whole_value_is_what_its_leaves_build(source: Any, context: dict[str, Any]) -> None:
    try:
        template = Template(source)
    except TemplateError:
        return
    # the one generated function alone (render wraps it with its fallback), when in the compiled subset
    fast = generate(source, environment(), _LeafSource(template.leaves)) if not template.is_constant else None
    exact = outcome(template._exact, context)
    if fast is not None:
        generated = outcome(fast, context)
        if generated[0] == "value":  # it may raise instead; then render takes the exact evaluation
            assert exact[0] == "value" and typed(generated[1]) == typed(exact[1])
    rendered = outcome(template.render, context)
    assert rendered[0] == exact[0]
    if exact[0] == "value":
        assert typed(rendered[1]) == typed(exact[1])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.sampled_from(["x", "0042", "1", "missing", "ש"]), st.integers(0, 2), st.none(), st.booleans()
    ),
    st.sampled_from([dict, MappingProxyType]),
)
def test_lookup_written_inline_answers_as_the_helper(key: Any, kind: Any) -> None:
    """`x | lookup(table)` reads a `str` key of a `dict` table inline; any other key or table, and a
    miss, are the helper's: the same value, or the same error."""
    table = kind({"x": "one", "0042": "kept", "1": 1, "true": "yes", "null": None, "kept": "twice"})
    context = {
        "event": {"k": key, "j": "x"},  # "x": a key of the table too
        "vars": {
            "t": table,
            "n": {"x": "T"},
            "u": {"one": "1", "kept": "K", "1": "uno", "yes": "Y", "null": "-", "twice": "T"},
        },
    }
    try:
        expected: Any = ("value", helpers.lookup(key, table))
    except ValueError as exc:
        expected = ("error", str(exc))
    for source, wrap in [
        ("{{ event.k | lookup(vars.t) }}", lambda value: value),
        ("{{ [event.k | lookup(vars.t), event.k | lookup(vars.t)] }}", lambda value: [value, value]),
        (
            "{{ event.k | lookup(vars.t if event.j | lookup(vars.n) else vars.u) }}",
            lambda value: value,
        ),  # a lookup in the table
    ]:
        try:
            got: Any = ("value", Template(source).render(context))
        except ExpressionError as exc:
            got = ("error", str(exc))
        if expected[0] == "value":
            assert got == ("value", wrap(expected[1]))
        else:
            assert got[0] == "error" and expected[1] in got[1]
    if expected[0] == "value":  # a lookup of a lookup: each keeps its own key and table
        nested = Template("{{ event.k | lookup(vars.t) | lookup(vars.u) }}").render(context)
        assert nested == helpers.lookup(expected[1], context["vars"]["u"])


def test_a_failure_carries_the_exact_evaluations_error_not_the_generated_functions() -> None:
    """The generated function stumbles on a missing key (a KeyError) and hands over to the exact
    evaluation: the error that reaches the logs is the exact one, not chained to that KeyError."""
    template = Template({"SERNUM": "{{ event.serial }}", "QUANT": "{{ event.qty * 2 }}"})
    try:
        template.render({"event": {"qty": 3}})
    except ExpressionError as exc:
        chain, seen = [], exc.__context__
        while seen is not None:
            chain.append(type(seen).__name__)
            seen = seen.__context__
        assert "KeyError" not in chain, chain
        assert "SERNUM" in str(exc)
    else:
        raise AssertionError("a missing key rendered")


def test_render_takes_its_context_by_name_whether_generated_or_not() -> None:
    """`Template.render(context)` is the library's API (docs/api.md): a template in the generated
    subset is rendered by its generated function itself, whose parameter was `_c`, so
    `render(context=...)` raised TypeError there and worked for every other template."""
    context = {"event": {"x": 2}}
    for source in (
        "{{ event.x }}",
        {"a": "n {{ event.x }}"},
        "{% if true %}{{ event.x }}{% endif %}",
        "plain",
    ):
        template = Template(source)
        assert template.render(context=context) == template.render(context)


def test_lookup_written_inline_evaluates_its_table_once() -> None:
    """The inline lookup evaluated its table's expression again for the helper when the table was not
    a dict: a call there ran twice (and counted twice towards the evaluation's budget)."""
    calls: list[str] = []

    def table() -> Any:
        calls.append("table")
        return MappingProxyType({"x": "one"})

    for source in ("{{ event.k | lookup(vars.table()) }}", {"a": "{{ event.k | lookup(vars.table()) }}"}):
        calls.clear()
        rendered = Template(source).render({"event": {"k": "x"}, "vars": {"table": table}})
        assert rendered in ("one", {"a": "one"})
        assert calls == ["table"]


def test_lookups_nested_in_the_table_write_source_that_grows_with_the_template() -> None:
    """The inline lookup wrote its table's source twice, so a lookup in the table of a lookup in the
    table of ... doubled the generated function per level: 14 levels took seconds to compile, 20 about
    two minutes, while the config loaded."""

    def template(depth: int) -> Template:
        table = "vars.t"
        for _ in range(depth):
            table = f"(event.k | lookup({table}))"
        return Template("{{ event.k | lookup(" + table + ") }}")

    sizes = [len(template(depth).render.__code__.co_code) for depth in (8, 16)]
    assert sizes[1] < 3 * sizes[0], sizes
    table: dict[str, Any] = {}
    table["x"] = table  # each level finds the table again
    assert template(16).render({"event": {"k": "x"}, "vars": {"t": table}}) is table
