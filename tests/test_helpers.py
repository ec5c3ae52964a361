"""The mapping helpers: dates, casts, lookups, strings."""

from __future__ import annotations

from typing import Any

import pytest

from engine import helpers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-18T10:39:00.559Z", "2025-02-18T10:39:00.559Z"),
        ("2025-02-18T12:39:00+02:00", "2025-02-18T10:39:00.000Z"),
        ("2025-02-18T12:39:00 02:00", "2025-02-18T10:39:00.000Z"),  # '+' decoded as a space
        ("2025-02-18", "2025-02-18T00:00:00.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (None, None),
    ],
)
def test_iso8601(value: Any, expected: Any) -> None:
    assert helpers.iso8601(value) == expected


def test_odata_date_keeps_or_moves_offset() -> None:
    assert helpers.odata_date("2025-02-18T10:39:00.559Z") == "2025-02-18T10:39:00+00:00"
    assert helpers.odata_date("2025-02-18T10:39:00Z", 2) == "2025-02-18T12:39:00+02:00"


def test_date_in_a_time_zone_is_the_day_and_hour_there() -> None:
    # 22:30 UTC on 31 March is 01:30 on 1 April in Bucharest (summer time, +03:00); Hanoi is +07:00
    assert helpers.format_date("2025-03-31T22:30:00Z", "%Y-%m-%d %H:%M", "Europe/Bucharest") == (
        "2025-04-01 01:30"
    )
    assert helpers.format_date("2025-01-31T22:30:00Z", "%Y-%m-%d %H:%M", "Europe/Bucharest") == (
        "2025-02-01 00:30"
    )
    assert helpers.format_date("2025-03-05T23:59:59.999Z", "%Y-%m-%d", "Asia/Ho_Chi_Minh") == "2025-03-06"
    assert helpers.format_date("2025-03-05T23:59:59.999Z", "%Y-%m-%d") == "2025-03-05"  # as written
    assert helpers.format_date(None, "%Y", "Europe/Bucharest") is None


@pytest.mark.parametrize("zone", ["Europe/Bucharet", "", "../etc/passwd", 3])
def test_an_unknown_time_zone_is_an_error_naming_it(zone: Any) -> None:
    with pytest.raises(ValueError, match="time zone"):
        helpers.format_date("2025-03-05T08:00:00Z", "%Y-%m-%d", zone)


@pytest.mark.parametrize("bad", ["tomorrow", "", True, [1]])
def test_bad_dates_are_errors(bad: Any) -> None:
    with pytest.raises(ValueError):
        helpers.iso8601(bad)


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        (helpers.to_int, "12", 12),
        (helpers.to_int, 12.0, 12),
        (helpers.to_float, "1.5", 1.5),
        (helpers.to_str, 3, "3"),
        (helpers.to_str, 3.0, "3"),
        (helpers.to_bool, "Y", True),
        (helpers.to_bool, 0, False),
    ],
)
def test_casts(cast: Any, value: Any, expected: Any) -> None:
    assert cast(value) == expected
    assert type(cast(value)) is type(expected)


@pytest.mark.parametrize(
    ("cast", "value"),
    [
        (helpers.to_int, "12.5"),
        (helpers.to_int, ""),
        (helpers.to_int, None),
        (helpers.to_int, True),
        (helpers.to_float, "1,5"),
        (helpers.to_str, None),
        (helpers.to_bool, "maybe"),
    ],
)
def test_casts_refuse_instead_of_guessing(cast: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        cast(value)


def test_lookup_default_and_error() -> None:
    table = {"WC-1": "01"}
    assert helpers.lookup("WC-1", table) == "01"
    assert helpers.lookup("WC-9", table, default=None) is None
    with pytest.raises(ValueError, match="no entry for 'WC-9'"):
        helpers.lookup("WC-9", table)


def test_strings() -> None:
    assert helpers.split("a, b,c") == ["a", "b", "c"]
    assert helpers.split(None) == []
    assert helpers.odata_quote("O'Brien") == "'O''Brien'"


def test_path_raw_marks_text_as_path_structure() -> None:
    raw = helpers.path_raw("/SERIAL('WO-1')")
    assert raw == "/SERIAL('WO-1')" and isinstance(raw, helpers.RawPath)
    assert str(raw) is raw  # printing keeps the mark, so a path template can tell it from data
    assert helpers.path_raw(12) == "12"


@pytest.mark.parametrize(
    ("expression", "data"),
    [
        ("a.b", {"a": {"b": 1}}),
        ("lines[?qty > `1`].sku", {"lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}),
        ("[].sku", [[{"sku": "a"}], [{"sku": "b"}]]),
        ("join(',', @)", ["a", "b"]),
        ("to_string(@)", {"a": [1, "פק"]}),
        ('merge(@, `{"b": 2}`)', {"a": 1}),
        ("missing", {"a": 1}),
    ],
)
def test_jmes_in_a_template_means_what_jmespath_means(expression: str, data: Any) -> None:
    import jmespath

    from engine.expressions import environment

    assert environment().filters["jmes"](data, expression) == jmespath.search(expression, data)
    assert helpers.jmes(data, expression) == jmespath.search(expression, data)
    assert helpers.compiled_jmes(expression) is helpers.compiled_jmes(expression)
