"""JSON on the wire, by orjson where it means what the standard library means, and by the library else.

`dumps` writes the bodies mesbridge sends to a system and the replies it gives, strictly:

    dumps(value) == json.dumps(value, ensure_ascii=False, allow_nan=False,
                               separators=(",", ":")).encode("utf-8")

in the JSON it writes and in the errors it raises: ValueError for NaN or an infinity, TypeError for a
value that is not JSON, UnicodeEncodeError for a lone surrogate. orjson writes it, several times
faster; whatever orjson would write differently goes to the standard library instead:

- what orjson refuses: an integer over 64 bits, a key that is not a `str`, a lone surrogate, nesting
  over 255 levels;
- what orjson writes and the standard library does not, or not alike: a `datetime`, a dataclass, a
  subclass of `str`, `int`, `dict` or `list`, a `set` or `bytes` (refused by both, in their own words);
- a `null` anywhere in orjson's output, since orjson writes NaN and the infinities as `null` where
  the standard library refuses them.

`loads` reads a system's reply as leniently as `json.loads` does (`NaN`, `1e400`, a lone surrogate
escape, any integer): orjson reads it unless it refuses the text, or the text holds a run of 19
digits or more, where orjson would read an integer beyond 64 bits as a float.

Floats are written as `repr` writes them by both. An `Enum` or a `uuid.UUID`, which orjson writes as
its value and the standard library refuses, is the one difference left: no pipeline makes one (events
and replies are JSON, vars YAML, templates Jinja's values, and no helper returns one).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _standard(value: Any) -> Any:
    """orjson's `default`: every type it does not write as the standard library does goes back to it."""
    raise TypeError


def dumps(value: Any) -> bytes:
    """`value` as compact, strict UTF-8 JSON (see the module's docstring)."""
    try:
        data = orjson.dumps(value, default=_standard, option=_PASSTHROUGH)
    except orjson.JSONEncodeError:
        pass
    else:
        if b"null" not in data:
            return data
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
"""19 digits in a row: an integer orjson may read as a float (over 64 bits), or a long string of digits."""


def loads(content: bytes, text: str) -> Any:
    """`json.loads(text)`, `text` being `content` decoded (with errors replaced): the same value, or
    the same ValueError (see the module's docstring)."""
    if _LONG_DIGITS.search(content) is None:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
