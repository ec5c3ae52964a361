"""A whole templated value (a body, a reply) computed by its one generated function equals what its
leaves' exact evaluation builds: keys of every YAML type, constants written as Python literals,
and each context variable read once."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.expressions import Template
from engine.expressions.templates import TemplateError

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
    fast = template._fast  # the one generated function, when the value is in the compiled subset
    exact = outcome(template._exact, context)
    if fast is not None:
        generated = outcome(fast, context)
        if generated[0] == "value":  # it may raise instead; then render takes the exact evaluation
            assert exact[0] == "value" and typed(generated[1]) == typed(exact[1])
    rendered = outcome(template.render, context)
    assert rendered[0] == exact[0]
    if exact[0] == "value":
        assert typed(rendered[1]) == typed(exact[1])
