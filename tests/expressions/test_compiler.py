"""The compiled subset: closures and generated functions that do what Jinja's generated code does."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import UndefinedError

from engine.expressions import environment
from engine.expressions.compiler import Closures, Unsupported, is_path, may_build
from engine.expressions.templates import Leaf

CONTEXT: dict[str, Any] = {
    "event": {
        "qty": 3,
        "sku": "007",
        "serial": None,
        "lines": [{"sku": "a"}],
        "name": "Ș",
        "ok": False,
        "items": [1, 2],
        "get": "field",
    },
    "vars": {"table": {"A": "1"}, "source": "ERP"},
}

EXPRESSIONS = [
    "event.qty",
    "event['sku']",
    "event.lines[0].sku",
    "event.qty + 1",
    "event.qty - 1.5",
    "event.qty / 2",
    "event.qty // 2",
    "event.qty % 2",
    "event.qty ** 2",
    "event.qty == 3",
    "1 < event.qty < 5",
    "event.sku != '007'",
    "event.qty > 2 and event.sku",
    "event.ok or 'fallback'",
    "not event.ok",
    "-event.qty",
    "'yes' if event.qty > 1 else 'no'",
    "'a' in event.sku",
    "[event.qty, event.sku]",
    "(event.qty, event.sku)",
    "{'q': event.qty}",
    "'A' | lookup(vars.table)",
    "event.serial | default('none', true)",
    "event.missing | default('d')",
    "event.lines | first",
    "event.items | join('-')",
    "event.name | upper",
    "event.qty is number",
    "vars.source ~ '-' ~ event.sku",
    "event.items",
    "event.get",
    "event.lines[0].get('sku')",
    "dict(event.lines[0], extra=event.qty)",
    "lookup('A', vars.table)",
    "'{}-{}'.format(event.sku, event.qty)",
    "'{function}/{variables}'.format(function=event.sku, variables=event.qty)",  # the caller's own names
    "range(3) | list",
    "true",
    "none",
]


def _jinja_value(expression: str) -> Any:
    return environment().compile_expression(expression, undefined_to_none=False)(**CONTEXT)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_closures_give_jinjas_value(expression: str) -> None:
    env = environment()
    value = Closures(env).expr(env.parse(f"{{{{ {expression} }}}}").body[0].nodes[0])(CONTEXT)
    expected = _jinja_value(expression)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_generated_function_gives_the_closures_value(expression: str) -> None:
    env = environment()
    leaf = Leaf(f"{{{{ {expression} }}}}", (), env)
    fast = leaf.fast(env)
    assert fast is not None
    if "missing" in expression:  # an undefined value: the generated function leaves it to the closures
        with pytest.raises(KeyError):
            fast(CONTEXT)
        return
    assert fast(CONTEXT) == leaf.evaluate(CONTEXT)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("event.missing", "'dict object' has no attribute 'missing'"),
        ("event.missing.deeper | default('x')", "'dict object' has no attribute 'missing'"),
        ("report.FORM | default('')", "'report' is undefined"),
        ("nothing", "'nothing' is undefined"),
        ("event.serial.inner", "'None' has no attribute 'inner'"),
        ("event.missing + 1", "'dict object' has no attribute 'missing'"),
        ("'x' if false", "the inline if-expression on line 1 evaluated to false"),
        ("[] | first", "No first item, sequence was empty."),
    ],
)
def test_undefined_fails_as_strict_jinja_does(expression: str, message: str) -> None:
    env = environment()
    evaluate = Leaf(f"{{{{ {expression} }}}}", (), env).compiled(env)
    with pytest.raises(UndefinedError, match=message):
        evaluate(CONTEXT)
    with pytest.raises(UndefinedError, match=message):  # Jinja: the same error, from the same undefined
        undefined = _jinja_value(expression)
        undefined._fail_with_undefined_error()


def test_an_unused_undefined_argument_is_no_error() -> None:
    """As in Jinja, a filter gets the undefined value and fails only if it uses it."""
    env = environment()
    leaf = Leaf("{{ 'A' | lookup(vars.table, default=event.other) }}", (), env)
    assert leaf.compiled(env)(CONTEXT) == "1" == leaf.jinja(env)(CONTEXT)


def test_a_lazy_filter_given_an_undefined_value_fails_only_when_its_result_is_walked() -> None:
    """`unique` and `map` return generators that Jinja never runs unless something walks them; the
    limits' item counting does not walk (or measure) an undefined value ahead of Jinja."""
    env = environment()
    lazy = Leaf("{% set v = event.missing | unique %}{{ v is defined }}", (), env)
    assert lazy.evaluate(CONTEXT) == "True"
    walked = Leaf("{{ event.missing | unique | list }}", (), env)
    with pytest.raises(UndefinedError, match="'dict object' has no attribute 'missing'"):
        walked.evaluate(CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{% if x %}y{% endif %}",
        "{{ x[1:] }}",
        "{{ x | map('upper') | list }}",
        "{{ f(class=1) }}",
        "{% for a in b %}{{ a }}{% endfor %}",
    ],
)
def test_outside_the_subset_jinja_runs(source: str) -> None:
    env = environment()
    with pytest.raises(Unsupported):
        Leaf(source, (), env).compiled(env)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ event.items }}", [1, 2]),
        ("{{ event.items | first }}", 1),
        ("{{ event.get }}", "field"),
        ("{{ event.lines[0].get('sku') }}", "a"),
        ("{{ vars.table.items() | list }}", [("A", "1")]),
    ],
)
def test_on_a_mapping_a_key_wins_over_a_method(source: str, expected: Any) -> None:
    """`event.items` is the event's field; a mapping without the key keeps its methods."""
    env = environment()
    leaf = Leaf(source, (), env)
    assert leaf.compiled(env)(CONTEXT) == expected == leaf.jinja(env)(CONTEXT)


@pytest.mark.parametrize(
    ("expression", "path", "builds"),
    [
        ("event.a.b", True, False),
        ("event['a'][0]", True, False),
        ("event[x]", False, False),
        ("event.a | lookup(vars.t)", False, False),
        ("event.a | first", False, True),
        ("[event.a]", False, True),
        ("event.a ~ 'x'", False, False),
        ("event.a * 2", False, True),
        ("event.get('a')", False, True),
        ("'x' if event.a", False, True),
    ],
)
def test_structure_is_read_from_the_parse_tree(expression: str, path: bool, builds: bool) -> None:
    node = environment().parse(f"{{{{ {expression} }}}}").body[0].nodes[0]
    assert is_path(node) is path
    assert may_build(node) is builds
