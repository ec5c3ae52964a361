"""engine.wirejson against the standard library it stands in for: the same JSON, the same errors.

CI runs 1,000 cases of each differential test; `MESBRIDGE_DIFFERENTIAL_EXAMPLES=30000` runs a campaign.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
import os
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import wirejson

EXAMPLES = int(os.environ.get("MESBRIDGE_DIFFERENTIAL_EXAMPLES", "1000"))


def standard(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def canonical(value: Any) -> Any:
    """`value` with every float by its bits and every container's order kept: NaN equals NaN, -0.0
    differs from 0.0, and an int from the float of the same value."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, dict):
        return ("dict", [(key, canonical(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [canonical(item) for item in value])
    return (type(value).__name__, value)


def outcome(write: Any, value: Any) -> tuple[str, Any]:
    """What writing `value` gives: its JSON read back (canonical), or the error's class and message."""
    try:
        data = write(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    return "json", canonical(json.loads(data))


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


@settings(max_examples=EXAMPLES, deadline=None)
@given(values)
def test_same_json_and_same_errors_as_the_standard_library(value: Any) -> None:
    assert outcome(wirejson.dumps, value) == outcome(standard, value)


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


def reading(parse: Any) -> tuple[str, Any]:
    """What parsing gives: the value (canonical), or that it was refused (a ValueError)."""
    try:
        return "value", canonical(parse())
    except ValueError:
        return "refused", None


numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["1e400", "-1e400", "1e-400", "-0", "-0.0", "1E+2", "0.1000000000000000055511151231257827"]
    ),
)
tokens = st.one_of(
    numbers.map(str),
    st.text(max_size=6).map(lambda s: json.dumps(s, ensure_ascii=bool(len(s) % 2))),
    st.sampled_from(
        ['"\\ud800"', '"\\u0000"', "NaN", "-Infinity", "true", "null", '"a"', '"1234567890123456789"']
    ),
    # near JSON: raw control characters in a string, numbers JSON does not allow, a raw surrogate
    st.sampled_from(
        ['"a\x01b"', '"a\nb"', '"\x7f"', "01", "1.", "+1", "'a'", '"\\x41"', '"\\/"', '"\ud800"']
    ),
)


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """JSON a system may send, and text that is nearly JSON: duplicate keys, big numbers, escapes, a
    BOM, stray bytes, a cut end."""

    def node(depth: int) -> str:
        kind = draw(st.integers(0, 2 if depth < 3 else 0))
        if kind == 0:
            return draw(tokens)
        if kind == 1:
            return "[" + ",".join(node(depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
        names = draw(st.lists(st.sampled_from(["a", "b", "items", "ש"]), max_size=4))  # repeats: duplicates
        return "{" + ",".join(f'"{name}": {node(depth + 1)}' for name in names) + "}"

    text = node(0).encode("utf-8", "surrogatepass")
    prefix = draw(st.sampled_from([b"", b" \n", b"\xef\xbb\xbf", b"\xff"]))
    cut = draw(st.one_of(st.none(), st.integers(0, len(text))))
    return prefix + (text if cut is None else text[:cut])


@settings(max_examples=EXAMPLES, deadline=None)
@given(replies())
def test_reads_every_reply_as_the_standard_library_reads_it(content: bytes) -> None:
    text = content.decode("utf-8", "replace")
    assert reading(lambda: wirejson.loads(content, text)) == reading(lambda: json.loads(text))


def test_an_integer_beyond_64_bits_stays_an_integer() -> None:
    content = b'{"FORM": 123456789012345678901234567890, "NEG": -9223372036854775809}'
    assert wirejson.loads(content, content.decode()) == {
        "FORM": 123456789012345678901234567890,
        "NEG": -9223372036854775809,
    }
