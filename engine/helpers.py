"""The mapping helpers available in templates: dates, casts, lookups, strings.

Every helper is strict: a value it cannot handle raises `ValueError` with a message naming the value,
so a mapping never sends a silent `0` or an empty string to an ERP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath

_MISSING: Any = object()


def parse_datetime(value: Any) -> datetime:
    """Read a datetime from a datetime, an ISO 8601 / OData string, a date or epoch seconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # A '+' decoded from a query string as a space: "2025-02-18T10:39:00 02:00".
        if len(text) > 19 and text[-6] == " " and text[-3] == ":":
            text = text[:-6] + "+" + text[-5:]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a date: {value!r}")


def iso8601(value: Any) -> str | None:
    """UTC ISO 8601 with milliseconds, as Next Plus expects: `2025-02-18T10:39:00.559Z`. None stays None."""
    if value is None:
        return None
    moment = parse_datetime(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def odata_date(value: Any, offset_hours: float | None = None) -> str | None:
    """The OData date form `2025-02-18T10:39:00+02:00` (no fraction), optionally at a fixed UTC offset."""
    if value is None:
        return None
    moment = parse_datetime(value)
    if offset_hours is not None:
        moment = moment.astimezone(timezone(timedelta(hours=offset_hours)))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text[:-2] + ":" + text[-2:]


def format_date(value: Any, fmt: str = "%Y-%m-%d", tz: str | None = None) -> str | None:
    """Format a date with strftime codes, in the IANA time zone `tz` when given (`Europe/Bucharest`:
    the calendar day and the hour there), else as the value is written (`now()`: UTC); None stays None."""
    if value is None:
        return None
    moment = parse_datetime(value)
    if tz is not None:
        moment = moment.astimezone(_zone(tz))
    return moment.strftime(fmt)


@lru_cache(maxsize=64)
def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"time zone must be an IANA name such as 'Europe/Bucharest', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Bucharest')") from None


Clock = Callable[[], datetime]
"""Where templates read the time from: the system clock unless a run is given another."""


def now() -> str:
    """The current UTC time in ISO 8601."""
    return iso8601(datetime.now(UTC)) or ""


def _system_time() -> datetime:
    return datetime.now(UTC)


class RunInstant:
    """`now()` of one run: the clock's time when the run first reads it, and the same time for the rest
    of the run, so that everything a run makes of the time agrees and its trace can say what it was.

    A run puts it in its template context as `now`, where it shadows the global of that name; `now` is
    a reserved name, so no step result can collide with it.
    """

    __slots__ = ("clock", "moment")

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or _system_time
        self.moment: datetime | None = None
        """The time the run read; None until it reads one."""

    def __call__(self) -> str:
        moment = self.moment
        if moment is None:
            moment = self.moment = self.clock()
        return iso8601(moment) or ""


def lookup(key: Any, table: Mapping[str, Any], default: Any = _MISSING) -> Any:
    """The value for `key` in a lookup table; without a default a missing key is an error."""
    if type(table) is not dict and not isinstance(table, Mapping):
        raise ValueError(f"lookup table must be a mapping, got {type(table).__name__}")
    text_key = key if type(key) is str else json.dumps(key)
    if text_key in table:
        return table[text_key]
    if default is not _MISSING:
        return default
    known = ", ".join(sorted(map(str, table))[:10])
    raise ValueError(f"no entry for {key!r} in the lookup table (known: {known})")


def to_int(value: Any) -> int:
    """Strict integer cast: `"12"` and `12.0` are 12; `"12.5"`, `""`, `null` are errors."""
    if isinstance(value, bool):
        raise ValueError(f"cannot cast {value!r} to an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                number = float("nan")
            if number.is_integer():
                return int(number)
    raise ValueError(f"cannot cast {value!r} to an integer")


def to_float(value: Any) -> float:
    """Strict number cast; a decimal comma is not guessed."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"cannot cast {value!r} to a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"cannot cast {value!r} to a number")


def to_str(value: Any) -> str:
    """String cast: numbers without a trailing `.0`, None is an error (use `default` first)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if value is None:
        raise ValueError("cannot cast null to a string (use `default` first)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def to_bool(value: Any) -> bool:
    """Strict boolean cast from true/false, 1/0, yes/no, Y/N."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "y"):
            return True
        if lowered in ("false", "0", "no", "n", ""):
            return False
    raise ValueError(f"cannot cast {value!r} to a boolean")


def split(value: Any, separator: str = ",", strip: bool = True) -> list[str]:
    """Split a string into a list; None or "" gives an empty list."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise ValueError(f"cannot split {value!r}: not a string")
    parts = value.split(separator)
    return [part.strip() for part in parts] if strip else parts


@lru_cache(maxsize=1024)
def compiled_jmes(expression: str) -> Any:
    """The compiled JMESPath expression; each distinct one is compiled once."""
    return jmespath.compile(expression)


def jmes(value: Any, expression: str) -> Any:
    """Select from a value with JMESPath."""
    return compiled_jmes(expression).search(value)


def fromjson(value: str) -> Any:
    """Parse a JSON string."""
    return json.loads(value)


def odata_quote(value: Any) -> str:
    """An OData string literal: `O'Brien` becomes `'O''Brien'`."""
    return "'" + to_str(value).replace("'", "''") + "'"


class RawPath(str):
    """Text marked by `path_raw`: a path template inserts it as written, as path structure."""

    __slots__ = ()

    def __str__(self) -> str:
        return self


def path_raw(value: Any) -> RawPath:
    """Mark a value as path structure (`{{ base | path_raw }}/items`): a path template keeps it as written.

    Without it, a path template encodes each value as one segment's data. Everywhere else it is the text.
    """
    return RawPath(value if isinstance(value, str) else str(value))


FILTERS: dict[str, Callable[..., Any]] = {
    "iso8601": iso8601,
    "odata_date": odata_date,
    "date": format_date,
    "lookup": lookup,
    "to_int": to_int,
    "to_float": to_float,
    "to_str": to_str,
    "to_bool": to_bool,
    "split": split,
    "jmes": jmes,
    "fromjson": fromjson,
    "odata_quote": odata_quote,
    "path_raw": path_raw,
}

GLOBALS: dict[str, Callable[..., Any]] = {"now": now, "lookup": lookup}
