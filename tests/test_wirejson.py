"""engine.wirejson against the standard library it stands in for: the same JSON, the same errors."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import wirejson


def standard(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def outcome(write: Any, value: Any) -> tuple[str, Any]:
    """What writing `value` gives: its JSON read back (floats by their bits, so NaN equals NaN), or the
    error's class and message."""
    try:
        data = write(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    return "json", json.loads(data)


class Label(str):
    pass


class Count(int):
    pass


class Grade(enum.IntEnum):
    A = 1


class Ordered(collections.OrderedDict):  # type: ignore[type-arg]
    pass


@dataclasses.dataclass
class Point:
    x: int


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # over 64 bits: orjson refuses them
    st.floats(),  # NaN and the infinities included
    st.text(),  # lone surrogates included
    st.sampled_from(["null", "nullable", "ש׳", "0042", "\u2028", "\x00", "\x7f"]),
    st.builds(Label, st.text(max_size=5)),
    st.builds(Count, st.integers(-5, 5)),
    st.just(Grade.A),
    st.just(datetime(2026, 12, 2, 8, 30, tzinfo=UTC)),
    st.just(date(2026, 12, 2)),
    st.just(Point(1)),
    st.just(b"raw"),
    st.just({1, 2}),
)
keys = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.booleans(), st.none(), st.floats(width=16))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(st.text(max_size=4), inner, max_size=3).map(Ordered),
    ),
    max_leaves=12,
)


@settings(max_examples=2000, deadline=None)
@given(values)
def test_same_json_and_same_errors_as_the_standard_library(value: Any) -> None:
    mine, theirs = outcome(wirejson.dumps, value), outcome(standard, value)
    if mine[0] == "json" and theirs[0] == "json":
        assert json.dumps(mine[1], sort_keys=False) == json.dumps(theirs[1], sort_keys=False)
    else:
        assert mine == theirs


@given(
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-(2**63), 2**63 - 1), st.text()), max_size=6)
)
def test_plain_json_is_written_byte_for_byte_as_the_standard_library_writes_it(value: Any) -> None:
    assert wirejson.dumps(value) == standard(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused_even_beside_a_null(bad: float) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        wirejson.dumps({"qty": bad, "note": None})


def test_nesting_orjson_refuses_is_written_by_the_standard_library() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    assert wirejson.dumps(deep) == standard(deep)
