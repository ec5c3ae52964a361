"""The native compiler agrees with Jinja itself on every expression of the subset it takes."""

from __future__ import annotations

from typing import Any

import pytest

from engine.compiler import compile_ast
from engine.errors import ExpressionError
from engine.expressions import environment

CONTEXT: dict[str, Any] = {
    "event": {"qty": 3, "sku": "007", "serial": None, "lines": [{"sku": "a"}], "name": "Ș", "ok": False},
    "vars": {"table": {"A": "1"}, "source": "ERP"},
}

EXPRESSIONS = [
    "{{ event.qty }}",
    "{{ event['sku'] }}",
    "{{ event.lines[0].sku }}",
    "{{ event.qty + 1 }}",
    "{{ event.qty - 1.5 }}",
    "{{ event.qty / 2 }}",
    "{{ event.qty // 2 }}",
    "{{ event.qty % 2 }}",
    "{{ event.qty == 3 }}",
    "{{ event.sku != '007' }}",
    "{{ event.qty > 2 and event.sku }}",
    "{{ event.ok or 'fallback' }}",
    "{{ not event.ok }}",
    "{{ 'yes' if event.qty > 1 else 'no' }}",
    "{{ 'a' in event.sku }}",
    "{{ [event.qty, event.sku] }}",
    "{{ {'q': event.qty} }}",
    "{{ 'A' | lookup(vars.table) }}",
    "{{ event.serial | default('none', true) }}",
    "{{ event.missing | default('d') }}",
    "{{ event.missing | d(7) }}",
    "{{ event.qty | to_str }}",
    "{{ event.name | upper }}",
    "{{ event.lines | length }}",
    "WO {{ event.sku }}-{{ event.qty }}",
    "{{ event.serial }} and {{ event.ok }}",
    "{{ vars.source ~ '-' ~ event.sku }}",
]


def _jinja(source: str) -> Any:
    env = environment()
    ast = env.parse(source)
    body = ast.body
    if (
        len(body) == 1
        and len(body[0].nodes) == 1
        and not source.strip().startswith(("WO", "{{ event.serial }} and"))
    ):
        inner = source.strip()[2:-2]
        value = env.compile_expression(inner, undefined_to_none=False)(**CONTEXT)
        return value
    return env.from_string(source).render(**CONTEXT)


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_same_result_as_jinja(source: str) -> None:
    env = environment()
    compiled = compile_ast(env.parse(source), env)
    expected = _jinja(source)
    if compiled is None:
        pytest.fail(f"{source} should be in the native subset")
    assert compiled(CONTEXT) == expected
    assert type(compiled(CONTEXT)) is type(expected)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ event.missing }}", "'event' has no key 'missing'"),
        ("{{ event.missing.deeper | default('x') }}", "'event' has no key 'missing'"),
        ("{{ nothing }}", "'nothing' is undefined"),
        ("x {{ event.nope }}", "'event' has no key 'nope'"),
        ("{{ event.serial.inner }}", "'event.serial' is null"),
        ("{{ event.missing + 1 }}", "has no key 'missing'"),
    ],
)
def test_undefined_is_an_error_as_in_strict_jinja(source: str, message: str) -> None:
    env = environment()
    compiled = compile_ast(env.parse(source), env)
    assert compiled is not None
    with pytest.raises(ExpressionError, match=message):
        compiled(CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 3 }}",
        "{{ 2 ** 3 }}",
        "{% if x %}y{% endif %}",
        "{{ range(3) | list }}",
        "{{ x is defined }}",
    ],
)
def test_outside_the_subset_falls_back_to_jinja(source: str) -> None:
    env = environment()
    assert compile_ast(env.parse(source), env) is None


def test_on_a_mapping_keys_win_over_methods() -> None:
    """JSON events have fields like `items` and `keys`; they are data, never dict methods."""
    env = environment()
    compiled = compile_ast(env.parse("{{ event.items }}"), env)
    assert compiled is not None
    assert compiled({"event": {"items": [1, 2]}}) == [1, 2]


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_generated_function_agrees_with_the_closures(source: str) -> None:
    """The generated fast path and the exact closures give the same value on a complete event."""
    from engine.compiler import generate
    from engine.expressions import Template

    env = environment()
    fast = generate({"v": [source]}, env, env.parse)
    assert fast is not None
    if "missing" in source:  # the generated function leaves undefined values to the exact path
        with pytest.raises(KeyError):
            fast(CONTEXT)
        return
    assert fast(CONTEXT) == Template({"v": [source]}).render(CONTEXT)


def test_generated_function_defers_to_the_exact_path_on_a_missing_key() -> None:
    from engine.expressions import Template

    template = Template({"a": "{{ event.missing | default('d') }}", "b": "{{ event.qty }}"})
    assert template.render(CONTEXT) == {"a": "d", "b": 3}
    with pytest.raises(ExpressionError, match="'event' has no key 'nope'"):
        Template({"a": "{{ event.nope }}"}).render(CONTEXT)
