"""The size limits: whatever builds a value, a template cannot build a large one, on any path."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ExpressionError, TemplateLimitError
from engine.expressions import Template, environment
from engine.expressions.limits import MAX_BUILT, MAX_INT_BITS, MAX_LENGTH, printf_size, start
from engine.expressions.templates import Leaf

BIG = "{% set s = 'x' * 100000 %}"

BOMBS = [
    pytest.param("{{ 'a' * 10**9 }}", id="string-repeat"),
    pytest.param("{{ [1] * 10**9 }}", id="list-repeat"),
    pytest.param("{{ 10**9 * 'a' }}", id="repeat-reversed"),
    pytest.param("{{ 2 ** 100000 }}", id="power"),
    pytest.param("{{ ((10 ** 1000) ** 1000) ** 1000 }}", id="nested-power"),
    pytest.param("{{ (2 ** 60000) * (2 ** 60000) }}", id="product"),
    pytest.param("{{ ('%0' ~ 50000000 ~ 'd') % 1 }}", id="printf-width"),
    pytest.param("{{ '%.50000000f' % 1.5 }}", id="printf-precision"),
    pytest.param("{{ '%*d' % (50000000, 1) }}", id="printf-star-width"),
    pytest.param("{{ ('%s' * 1000) % (('x' * 1000,) * 1000) }}", id="printf-many-fields"),
    pytest.param("{{ '%(a)s' * 1000 % {'a': 'x' * 1000} }}", id="printf-mapping"),
    pytest.param("{{ 'x' | center(50000000) }}", id="center"),
    pytest.param("{{ 'x'.center(50000000) }}", id="center-method"),
    pytest.param("{{ 'x'.zfill(50000000) }}", id="zfill-method"),
    pytest.param("{{ 'x'.ljust(50000000, '-') }}", id="ljust-method"),
    pytest.param("{{ ('\\t' * 1000).expandtabs(100000) }}", id="expandtabs"),
    pytest.param("{{ '{0:>50000000}'.format(1) }}", id="format-width"),
    pytest.param("{{ '{0:.50000000f}'.format(1.5) }}", id="format-precision"),
    pytest.param("{{ '{:{}}'.format(1, 50000000) }}", id="format-nested-spec"),
    pytest.param("{{ ('{0}' * 30000).format('x' * 1000) }}", id="format-many-fields"),
    pytest.param("{{ '{a:>50000000}'.format_map({'a': 1}) }}", id="format-map"),
    pytest.param("{{ ('x\\n' * 1000) | indent(100000) }}", id="indent"),
    pytest.param("{{ 'x' | indent(' ' * 99999, true) * 2 }}", id="indent-string"),
    pytest.param(BIG + "{{ ([s] * 1000) | join(',') }}", id="join"),
    pytest.param(BIG + "{{ ''.join([s] * 1000) }}", id="join-method"),
    pytest.param(BIG + "{{ s ~ s }}", id="concat"),
    pytest.param(BIG + "{{ s + s }}", id="add"),
    pytest.param(BIG + "{{ s | replace('x', 'xx') }}", id="replace"),
    pytest.param("{{ 'ab' | replace('', 'x' * 100000) }}", id="replace-empty"),
    pytest.param(BIG + "{{ s.replace('x', 'yy') }}", id="replace-method"),
    pytest.param("{{ 'ab' | wordwrap(1, wrapstring='x' * 100000) }}", id="wordwrap"),
    pytest.param(BIG + "{{ s | truncate(10**9) ~ s }}", id="truncate"),
    pytest.param(BIG + "{{ [s] * 1000 }}", id="print-shared-list"),
    pytest.param(BIG + "{{ ([s] * 1000) | string }}", id="string"),
    pytest.param(BIG + "{{ ([s] * 1000) | tojson }}", id="tojson"),
    pytest.param("{{ [1, 2] | tojson(10**8) }}", id="tojson-indent"),
    pytest.param(BIG + "{{ ([s] * 1000) | pprint }}", id="pprint"),
    pytest.param(BIG + "{{ ([s] * 1000) | to_str }}", id="to_str"),
    pytest.param(BIG + "{{ s | urlencode }}", id="urlencode"),
    pytest.param("{{ ('<' * 50000) | escape | string }}", id="escape"),
    pytest.param("{{ range(10**9) | list }}", id="range"),
    pytest.param("{{ [] | slice(10**9) | list }}", id="slice"),
    pytest.param("{{ [1] | batch(10**9, 0) | list }}", id="batch-fill"),
    pytest.param("{{ lipsum(10**6) }}", id="lipsum"),
    pytest.param("{{ ([[0] * 1000] * 1000) | sum(start=[]) }}", id="sum-lists"),
    pytest.param(BIG + "{{ ([s] * 1000) | jmes('to_string(@)') }}", id="jmes-to-string"),
    pytest.param(BIG + "{{ ([s] * 1000) | jmes(\"join(',', @)\") }}", id="jmes-join"),
    pytest.param("{{ ([[1] * 100000] * 1000) | jmes('[]') }}", id="jmes-flatten"),
    pytest.param("{{ ([[1] * 1000] * 1000) | jmes('[*][*][*].[@, @, @, @]') }}", id="jmes-steps"),
    pytest.param("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", id="loop-output"),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", id="loops"
    ),
    pytest.param("{% for i in [] | slice(10**9) %}{% endfor %}", id="loop-over-slices"),
    pytest.param(
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ['x' * 1000] %}{% endfor %}",
        id="loop-accumulation",
    ),
    pytest.param(
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [2 ** 65000] %}{% endfor %}",
        id="loop-accumulation-numbers",
    ),
    pytest.param(
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        id="loop-doubling",
    ),
    pytest.param(
        BIG
        + "{% set ns = namespace(a=[s]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
        "{{ ns.a }}",
        id="shared-tree-printed",
    ),
    pytest.param(
        BIG
        + "{% set ns = namespace(a=[s]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
        "{{ ns.a | tojson }}",
        id="shared-tree-tojson",
    ),
    pytest.param(
        "{% set a = [1] %}{% set a = [a, a] %}" * 1 + "{{ [[[['x' * 99999] * 2] * 2] * 2] * 2 }}",
        id="native-shared",
    ),
    pytest.param(
        "{% filter upper %}{% for i in range(100000) %}xx{% endfor %}{% endfilter %}", id="filter-block"
    ),
    pytest.param(
        "{% set t %}{% for i in range(100000) %}xx{% endfor %}{% endset %}{{ t | length }}", id="block-set"
    ),
]


@pytest.mark.parametrize("source", BOMBS)
def test_a_bomb_is_refused_quickly_naming_the_limit_without_building_it(source: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ExpressionError) as caught:
            Template(source).render({})
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    error = caught.value
    assert isinstance(error, TemplateLimitError) or "MAX_RANGE (100000)" in str(error), error
    assert "the limit is" in str(error) or "MAX_RANGE" in str(error)
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert peak < 16_000_000, f"built {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ ('x' * 100000) | length }}", 100_000),
        ("{{ ([0] * 100000) | length }}", 100_000),
        ("{{ (2 ** 65535).bit_length() }}", 65_536),
        ("{{ ('x' | center(100000)) | length }}", 100_000),
        ("{{ ('%0100000d' % 1) | length }}", 100_000),
        ("{{ ('{:>100000}'.format(1)) | length }}", 100_000),
        ("{{ (('x' * 50000) ~ ('x' * 50000)) | length }}", 100_000),
        ("{{ range(100000) | list | length }}", 100_000),
        ("{{ ([1, 2] | tojson(4)) | length }}", 16),
        ("{{ 'a b' | wordwrap(1) }}", "a\nb"),
        ("{{ 'x' | truncate(10**9) }}", "x"),
    ],
)
def test_anything_within_the_limits_is_built(source: str, expected: Any) -> None:
    assert Template(source).render({}) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' * 100001 }}", "a string of 100,001 characters; the limit is 100,000"),
        ("{{ [0] * 100001 }}", "a list of 100,001 items; the limit is 100,000"),
        ("{{ 2 ** 65536 }}", "a number of 65,537 bits; the limit is 65,536"),
    ],
)
def test_one_past_the_limit_is_refused(source: str, message: str) -> None:
    with pytest.raises(TemplateLimitError, match=message):
        Template(source).render({})


def test_a_macro_calling_itself_twice_is_stopped_by_the_evaluation_total() -> None:
    """It builds nothing, yet runs 2**n times: each call counts towards the total, as a loop's turn does
    (f(60) would run for ever)."""
    macro = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    assert Template(macro + "{{ f(12) }}x").render({}) == "x"
    with pytest.raises(TemplateLimitError, match="loop iterations and calls in one evaluation"):
        Template(macro + "{{ f(20) }}").render({})


LIST = "{% set r = range(100000) | list %}"
WALK = "{% set a = r | map('abs') | select | sum %}"
MAX = "{% set a = range(100000) | max %}"
EMPTY, JOIN = "{% set e = [''] * 100000 %}", "{% set a = e | join %}"


@pytest.mark.parametrize(
    ("within", "past"),
    [
        pytest.param(LIST + WALK + "x", LIST + WALK * 30, id="filter-chains"),
        pytest.param(MAX * 9 + "x", MAX * 30, id="walks"),
        pytest.param(EMPTY + JOIN * 8 + "x", EMPTY + JOIN * 30, id="join-of-empty-strings"),
    ],
)
def test_each_item_a_filter_walks_counts_towards_the_evaluation_total(within: str, past: str) -> None:
    """`map`, `select`, `sum`, `max`... build nothing large, yet walk every item: counted as a loop's turns
    are, or 300 such chains over a long list run for a minute."""
    assert Template(within).render({}) == "x"
    with pytest.raises(TemplateLimitError, match="loop iterations and calls in one evaluation"):
        Template(past).render({})


def test_context_values_are_not_limited_when_passed_through() -> None:
    big = {"lines": [{"sku": f"{i:04}" + "x" * 996} for i in range(2000)]}  # 2 MB of distinct data
    assert Template("{{ event.lines }}").render({"event": big}) is big["lines"]
    assert len(Template("{{ event.lines | selectattr('sku') | list }}").render({"event": big})) == 2000


@pytest.mark.parametrize(
    "source",
    ["{{ s * n }}", "{{ s ~ s }}", "{{ s | center(n) }}", "{{ '%0*d' % (n, 1) }}", "x{{ s }}{{ s }}"],
)
@given(st.integers(0, 3 * MAX_LENGTH), st.integers(0, 3 * MAX_LENGTH))
def test_both_paths_refuse_and_build_alike(source: str, size: int, n: int) -> None:
    """The compiled subset and Jinja agree on every size, either side of the limits."""
    env = environment()
    context = {"s": "x" * (size % 3000), "n": n % (2 * MAX_LENGTH)}
    outcomes = []
    for evaluate in (Leaf(source, (), env).compiled(env), Leaf(source, (), env).jinja(env)):
        start()
        try:
            outcomes.append(("value", evaluate(context)))
        except TemplateLimitError as exc:
            outcomes.append(("limit", str(exc)))
    assert outcomes[0] == outcomes[1]


@given(st.text(alphabet="%sdrfx0-9.*()ab", max_size=12), st.integers(0, 300))
def test_printf_size_bounds_the_formatted_length(template: str, number: int) -> None:
    args = (number, "x" * number, number / 7)
    try:
        text = template % args
    except (TypeError, ValueError, KeyError, OverflowError):
        return
    assert len(text) <= printf_size(template, args)


def test_the_documented_limits() -> None:
    assert (MAX_LENGTH, MAX_INT_BITS, MAX_BUILT) == (100_000, 65_536, 1_000_000)
