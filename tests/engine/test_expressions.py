"""Templates keep types, fail loudly on undefined names, and cannot escape the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import Selection, Template

CONTEXT = {
    "event": {"validQty": 3, "sku": "007", "price": 1.5, "ok": True, "serial": None, "tags": ["a", "b"]},
    "vars": {"wc": {"WC-1": "01"}},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("{{ event.validQty }}", 3, id="number-stays-number"),
        pytest.param("{{ event.sku }}", "007", id="leading-zero-string-stays-string"),
        pytest.param("{{ event.price }}", 1.5, id="float"),
        pytest.param("{{ event.ok }}", True, id="bool"),
        pytest.param("{{ event.serial }}", None, id="null"),
        pytest.param("{{ event.tags }}", ["a", "b"], id="list"),
        pytest.param("{{ event.validQty + 1 }}", 4, id="expression-native"),
        pytest.param("qty {{ event.validQty }}", "qty 3", id="text-around-gives-string"),
        pytest.param("{{ event.validQty }}{{ event.sku }}", "3007", id="two-expressions-give-string"),
        pytest.param("plain", "plain", id="literal"),
        pytest.param(7, 7, id="literal-number"),
        pytest.param({"a": ["{{ event.sku }}", 1]}, {"a": ["007", 1]}, id="walks-objects"),
        pytest.param("{{ 'WC-1' | lookup(vars.wc) }}", "01", id="lookup"),
        pytest.param("{{ event.serial | default('none', true) }}", "none", id="default-replaces-null"),
        pytest.param("{{ event.sku | to_int }}", 7, id="explicit-cast"),
        pytest.param("{{ event | jmes('tags[0]') }}", "a", id="jmes-filter"),
    ],
)
def test_render_keeps_types(source: Any, expected: Any) -> None:
    result = Template(source).render(CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{{ event.missing }}", "'event' has no key 'missing'", id="missing-key"),
        pytest.param("{{ nothing }}", "'nothing' is undefined", id="undefined-name"),
        pytest.param("{{ nothing | default(1) + x }}", "undefined", id="undefined-in-expression"),
        pytest.param("x {{ event.nope }}", "no key 'nope'", id="undefined-in-text"),
        pytest.param("{{ event.sku | lookup(vars.wc) }}", "no entry for '007'", id="lookup-miss"),
        pytest.param("{{ 'x' | to_int }}", "cannot cast 'x' to an integer", id="bad-cast"),
    ],
)
def test_undefined_and_bad_values_are_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Template(source).render(CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ ().__class__.__bases__[0].__subclasses__() }}", id="class-walk"),
        pytest.param("{{ event.__class__ }}", id="dunder-on-dict"),
        pytest.param("{{ lookup.__globals__ }}", id="function-globals"),
        pytest.param("{{ now.__code__ }}", id="function-code"),
        pytest.param("{{ range(10**9) | list }}", id="range-bomb"),
        pytest.param("{{ 'a' * 10**9 }}", id="string-bomb"),
        pytest.param("{{ [1] * 10**9 }}", id="list-bomb"),
        pytest.param("{{ 2 ** 100000 }}", id="power-bomb"),
        pytest.param("{{ ((10 ** 1000) ** 1000) ** 1000 }}", id="nested-power-bomb"),
        pytest.param("{{ event.tags.append(1) }}", id="mutation"),
        pytest.param("{{ ''.format.__globals__ }}", id="format-globals"),
    ],
)
def test_sandbox_blocks_escapes(source: str) -> None:
    with pytest.raises(ExpressionError):
        Template(source).render(CONTEXT)
    assert CONTEXT["event"]["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{{ event.sku ", "unexpected end of template", id="unclosed"),
        pytest.param(
            "{{ event.sku | lookupp }}", "unknown filter 'lookupp' — did you mean 'lookup'?", id="filter"
        ),
        pytest.param("{% for x in %}{% endfor %}", "invalid template", id="bad-statement"),
    ],
)
def test_syntax_errors_at_compile_time(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Template(source)


def test_names_are_collected_for_reference_checks() -> None:
    assert Template({"a": "{{ qty }}", "b": ["{{ event.x | lookup(vars.t) }}"]}).names == {
        "qty",
        "event",
        "vars",
    }


def test_selection_compiles_once_and_reports_syntax() -> None:
    assert Selection("event.tags[1]").search(CONTEXT) == "b"
    with pytest.raises(ValueError, match="invalid JMESPath"):
        Selection("event.[")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(min_size=1), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_mapping_never_changes_a_values_type(value: Any) -> None:
    """A value passed through `{{ event.value }}`, alone or nested in a body, comes out identical."""
    context = {"event": {"value": value}}
    assert _same(Template("{{ event.value }}").render(context), value)
    assert _same(Template({"body": ["{{ event.value }}"]}).render(context), {"body": [value]})


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return left == right


@pytest.mark.parametrize(
    "data",
    [
        {"event": {"type": "add", "n": 0, "l": [1]}},
        {"event": {"type": None}},
        {"event": "text"},
        {"event": [{"type": "x"}]},
        {},
        None,
        {"event": {"type": {"deeper": True}}},
    ],
)
@pytest.mark.parametrize("expression", ["event.type", "event", "event.type.deeper", "event.n", "missing.x"])
def test_field_paths_mean_what_jmespath_means(data: Any, expression: str) -> None:
    import jmespath

    assert Selection(expression).search(data) == jmespath.search(expression, data)
