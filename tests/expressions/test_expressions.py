"""Templates keep types, mean what Jinja means, fail loudly and clearly, and cannot escape the sandbox."""

from __future__ import annotations

from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import Selection, Template

CONTEXT = {
    "event": {"validQty": 3, "sku": "007", "price": 1.5, "ok": True, "serial": None, "tags": ["a", "b"]},
    "vars": {"wc": {"WC-1": "01"}},
}
FIELDS = {"items": [1, 2], "values": ["a", "b"], "keys": {"k": 1}, "update": True, "get": "g", "n": 5}


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
        pytest.param("{{- event.validQty * 2 }}", 6, id="whitespace-control-left"),
        pytest.param("{{ event.validQty * 2 -}}", 6, id="whitespace-control-right"),
        pytest.param("{# c #}{{ event.validQty is number }}", True, id="comment-then-lone-expression"),
        pytest.param("  {{ event.sku }}\n", "007", id="whitespace-around-lone-expression"),
        pytest.param("{{ true }}", True, id="true"),
        pytest.param("{{ none }}", None, id="none"),
        pytest.param("{{ False }}", False, id="False"),
        pytest.param("{{ (1, 2) }}", (1, 2), id="tuple"),
        pytest.param("qty {{ event.validQty }}", "qty 3", id="text-around-gives-string"),
        pytest.param("{{ event.validQty }}{{ event.sku }}", "3007", id="two-expressions-give-string"),
        pytest.param("{% if event.ok %}{{ event.validQty }}{% endif %}", "3", id="statement-gives-string"),
        pytest.param("plain", "plain", id="literal"),
        pytest.param("a {# note #}b", "a b", id="comment-only"),
        pytest.param(7, 7, id="literal-number"),
        pytest.param({"a": ["{{ event.sku }}", 1]}, {"a": ["007", 1]}, id="walks-objects"),
        pytest.param("{{ 'WC-1' | lookup(vars.wc) }}", "01", id="lookup"),
        pytest.param("{{ event.serial | default('none', true) }}", "none", id="default-replaces-null"),
        pytest.param("{{ event.sku | to_int }}", 7, id="explicit-cast"),
        pytest.param("{{ event | jmes('tags[0]') }}", "a", id="jmes-filter"),
        pytest.param(
            "{{ 'WC-1' | lookup(vars.wc, default=event.other) }}", "01", id="unused-undefined-argument"
        ),
        pytest.param(
            "x {{ [event.missing] }}", "x [Undefined]", id="printed-list-holding-undefined-as-jinja"
        ),
    ],
)
def test_render_keeps_types(source: Any, expected: Any) -> None:
    result = Template(source).render(CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ event.items | first }}", 1),
        ("{{ event.values | join(',') }}", "a,b"),
        ("{{ event.items | map('string') | join }}", "12"),
        ("{{ event.items | sum }}", 3),
        ("{% for i in event.items %}{{ i }}{% endfor %}", "12"),
        ("{% if event.update %}yes{% endif %}", "yes"),
        ("{{ event.keys.k }}", 1),
        ("{{ event.get }}", "g"),
        ("{{ event.values | selectattr('upper') | list }}", ["a", "b"]),
        ("{% set x = event.items %}{{ x | length }}", "2"),
    ],
)
def test_on_a_mapping_a_key_wins_over_a_method_on_every_path(source: str, expected: Any) -> None:
    assert Template(source).render({"event": FIELDS}) == expected


def test_a_mapping_without_the_key_keeps_its_methods() -> None:
    template = Template("{{ dict(line, SUB=[{'S': event.get('serial')}]) if event.get('serial') else line }}")
    assert template.render({"event": {"serial": "S1"}, "line": {"A": 1}}) == {"A": 1, "SUB": [{"S": "S1"}]}
    assert template.render({"event": {}, "line": {"A": 1}}) == {"A": 1}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{{ event.missing }}", "'event' has no key 'missing'", id="missing-key"),
        pytest.param("{{ event.validqty }}", "did you mean 'validQty'?", id="missing-key-did-you-mean"),
        pytest.param("{{ nothing }}", "'nothing' is undefined", id="undefined-name"),
        pytest.param("{{ report.FORM | default('') }}", "'report' is undefined", id="step-that-did-not-run"),
        pytest.param("{{ nothing | default(1) + x }}", "'x' is undefined", id="undefined-in-expression"),
        pytest.param("x {{ event.nope }}", "'event' has no key 'nope'", id="undefined-in-text"),
        pytest.param("{{ [event.nope] }}", "'event' has no key 'nope'", id="undefined-inside-a-value"),
        pytest.param(
            "{{ event.serial.inner }}", "'event.serial' is null, it has no 'inner'", id="null-on-a-path"
        ),
        pytest.param("{{ event.tags[5] }}", r"'event.tags' has no item 5 \(it has 2\)", id="index"),
        pytest.param("{{ event.sku | lookup(vars.wc) }}", "no entry for '007'", id="lookup-miss"),
        pytest.param("{{ 'x' | to_int }}", "cannot cast 'x' to an integer", id="bad-cast"),
        pytest.param("{{ 'x' if event.serial }}", "no else section was defined", id="implicit-else"),
    ],
)
def test_undefined_and_bad_values_are_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Template(source).render(CONTEXT)


def test_the_operator_message_states_reason_and_field_never_the_template() -> None:
    source = "{{ event.workCenterCode | lookup(vars.wc) if event.workCenterCode else none }}"
    with pytest.raises(ExpressionError) as caught:
        Template({"WORKCNAME": source}).render(
            {"event": {"workCenterCode": "WC-99"}, "vars": CONTEXT["vars"]}
        )
    error = caught.value
    assert error.message == "WORKCNAME: no entry for 'WC-99' in the lookup table (known: WC-1)"
    assert "{{" not in str(error) and "lookup(" not in str(error)
    assert (error.template, error.where) == (source, "WORKCNAME")


def test_a_field_deep_in_a_value_is_named() -> None:
    with pytest.raises(ExpressionError, match=r"^lines\[1\]\.sku: 'event' has no key 'sku'$"):
        Template({"lines": [{"sku": "a"}, {"sku": "{{ event.sku }}"}]}).render({"event": {}})


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ ().__class__.__bases__[0].__subclasses__() }}", id="class-walk"),
        pytest.param("{{ event.__class__ }}", id="dunder-on-dict"),
        pytest.param("{{ lookup.__globals__ }}", id="function-globals"),
        pytest.param("{{ now.__code__ }}", id="function-code"),
        pytest.param("{{ event.tags.append(1) }}", id="mutation"),
        pytest.param("{{ event.update({'a': 1}) }}", id="dict-mutation"),
        pytest.param("{{ ''.format.__globals__ }}", id="format-globals"),
        pytest.param("{{ '{0.__class__}'.format(event) }}", id="format-field-walk"),
        pytest.param("{{ cycler.__init__.__globals__ }}", id="global-class-walk"),
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
        pytest.param("{{ event.sku is numbr }}", "unknown test 'numbr' — did you mean 'number'?", id="test"),
        pytest.param("{% if x %}{{ y | nope }}{% endif %}", "unknown filter 'nope'", id="filter-in-a-branch"),
        pytest.param("{% for x in %}{% endfor %}", "invalid template", id="bad-statement"),
        pytest.param("{% include 'other' %}", "cannot include other templates", id="include"),
        pytest.param("{{ a }\n}", "invalid template", id="broken-close"),
    ],
)
def test_errors_jinja_sees_before_running_are_load_errors(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Template(source)
    assert source.strip() not in str(caught.value)


def test_names_are_collected_for_reference_checks() -> None:
    template = Template({"a": "{{ qty }}", "b": ["{{ event.x | lookup(vars.t) }}", "{% set v = 1 %}{{ v }}"]})
    assert template.names == {"qty", "event", "vars"}
    assert [list(leaf.references("vars")) for leaf in template.leaves] == [[], [("t",)], []]
    assert [leaf.path for leaf in template.leaves] == [("a",), ("b", 0), ("b", 1)]


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ("{{ vars.methods.orders }}", [("methods", "orders"), ("methods",)]),
        ("{{ vars['a'].b }}", [("a", "b"), ("a",)]),
        ("{{ vars.fields[name].x }}", [("fields",)]),  # a key given by a value ends the path
        ("{{ vars.centres.get(code) }}", [("centres",)]),  # a method called is no key
        ("{{ vars.rows[0].sku }}", [("rows",)]),
    ],
)
def test_references_are_key_paths(text: str, paths: list[tuple[str, ...]]) -> None:
    [leaf] = Template(text).leaves
    assert sorted(leaf.references("vars"), key=len, reverse=True) == paths


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
    return bool(left == right)


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
        OrderedDict(event=OrderedDict(type="ordered")),
        MappingProxyType({"event": MappingProxyType({"type": "proxied"})}),
    ],
)
@pytest.mark.parametrize("expression", ["event.type", "event", "event.type.deeper", "event.n", "missing.x"])
def test_field_paths_mean_what_jmespath_means(data: Any, expression: str) -> None:
    assert Selection(expression).search(data) == jmespath.search(expression, data)
