"""Inbound safety for webhook requests: size, time, content type, strict JSON, and who the caller is.

Every check answers the caller's mistake with a 4xx and a message that names the problem and where it
is (a field path such as `items[2].qty`, or a byte offset); secrets are compared in constant time.

Strict JSON is RFC 8259 JSON that every system downstream reads the same way: UTF-8 without a byte
order mark; no `NaN`, `Infinity` or number too large for a double (`1e400`); no lone surrogate
(`"\\ud800"`) and no NUL character (`"\\u0000"`, where C strings, and so many ERPs, end the text); no
duplicate key in an object; and within the limits of `JsonLimits`.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from engine.errors import RequestRejected
from engine.pipeline.sources.caller_auth import CallerAuthModel

if TYPE_CHECKING:
    from engine.config.settings import Settings

__all__ = ["JsonLimits", "authenticate", "check_content_type", "parse_json", "read_body"]

_CLOSE = {"Connection": "close"}
"""Sent with a refusal given before the whole body was read, so the rest is never waited for."""


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body: more than `limit` bytes is a 413, whatever Content-Length claims, and a body
    not received in full within `timeout` seconds is a 408. Both close the connection."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestRejected(400, "invalid Content-Length header", _CLOSE) from None
        if size > limit:
            raise RequestRejected(413, f"request body over {limit} bytes", _CLOSE)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestRejected(413, f"request body over {limit} bytes", _CLOSE)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestRejected(408, f"request body not received within {timeout:g} s", _CLOSE) from None
    return b"".join(chunks)


def authenticate(
    auth: CallerAuthModel | None, request: Request, body: bytes, environ: Mapping[str, str]
) -> None:
    """Refuse the request (401) unless it carries what `auth` asks for."""
    if auth is not None:
        auth.verify(request.headers, request.query_params, body, environ)


def check_content_type(value: str | None) -> None:
    """Refuse (415) a Content-Type other than `application/json` or `…/…+json`, charset UTF-8 only."""
    if value is None or not value.strip():
        raise RequestRejected(415, "missing Content-Type; expected application/json")
    media, _, parameters = value.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestRejected(415, f"expected Content-Type application/json, got {media}")
    for parameter in parameters.split(";"):
        name, _, given = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = given.strip().strip('"').lower()
            if charset != "utf-8":
                raise RequestRejected(415, f"unsupported charset {charset} in Content-Type; expected utf-8")


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """How large a webhook's JSON may be, beyond the body size (defaults: the settings')."""

    depth: int
    """Deepest nesting of objects and arrays (the top-level object is depth 1)."""
    integer_digits: int
    """Most digits of an integer."""
    string_chars: int
    """Most characters of a string (keys included)."""

    @classmethod
    def of(cls, settings: Settings) -> JsonLimits:
        """The limits `settings` set (`max_json_depth`, `max_integer_digits`, `max_string_chars`)."""
        return cls(settings.max_json_depth, settings.max_integer_digits, settings.max_string_chars)


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(body: bytes) -> str:
    """The body as text: UTF-8 without a byte order mark, and no NUL (UTF-16 or UTF-32) (400)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            raise RequestRejected(
                400, f"request body starts with a {encoding} byte order mark; send UTF-8 without one"
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(
            400, f"request body is not UTF-8: {exc.reason} at byte offset {exc.start}"
        ) from None
    nul = body.find(b"\x00")
    if nul >= 0:
        raise RequestRejected(
            400, f"request body is not UTF-8 JSON: NUL byte at byte offset {nul} (UTF-16 or UTF-32?)"
        )
    return text


class _Refused:
    """What a decoder hook returns in place of a value strict JSON refuses; the walk reports where."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


class _Decoder:
    """The `json.loads` hooks of one parse; `refused` is set once a hook returned a `_Refused`."""

    def __init__(self, limits: JsonLimits) -> None:
        self.limits = limits
        self.refused = False

    def pairs(self, pairs: list[tuple[str, Any]]) -> Any:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                break
            seen.add(key)
        self.refused = True
        return _Refused(f"duplicate key {_quote(key)}")

    def integer(self, text: str) -> Any:
        if len(text) <= self.limits.integer_digits:
            return int(text)
        digits = len(text.lstrip("-"))
        if digits <= self.limits.integer_digits:
            return int(text)
        self.refused = True
        return _Refused(f"integer of {digits} digits (limit {self.limits.integer_digits})")

    def number(self, text: str) -> Any:
        value = float(text)
        if math.isinf(value):
            self.refused = True
            return _Refused(f"number {text} is out of range (not finite)")
        return value

    def constant(self, text: str) -> Any:
        self.refused = True
        return _Refused(f"non-finite number {text}")


def parse_json(body: bytes, limits: JsonLimits) -> dict[str, Any]:
    """The JSON event: strict JSON within `limits` (400), and an object (422).

    The body is decoded and parsed once, with hooks for keys and numbers. The parsed value is walked
    whole only when a scan of the text at C speed finds it may hide a problem (a hook's marker, a
    `\\ud` escape, a string that may be over the limit); else only its containers, and only when there
    are more of them than the depth limit.
    """
    if not body.strip():
        raise RequestRejected(400, "empty request body; expected a JSON object")
    text = _text(body)
    decoder = _Decoder(limits)
    try:
        event = json.loads(
            text,
            object_pairs_hook=decoder.pairs,
            parse_int=decoder.integer,
            parse_float=decoder.number,
            parse_constant=decoder.constant,
        )
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise RequestRejected(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (byte offset {offset})"
        ) from None
    except RecursionError:
        raise _too_deep(text, limits.depth) from None
    long = len(text) > limits.string_chars and (
        '\\"' in text or _long_run(limits.string_chars).search(text) is not None
    )
    escaped = "\\ud" in text or "\\uD" in text or "\\u0000" in text
    if decoder.refused or long or escaped:
        found = _find(event, 1, limits, long, escaped)
        if found is not None:
            where, problem = found
            if problem is _DEEP:
                raise _too_deep(text, limits.depth)
            raise RequestRejected(400, f"{problem} at {_where(where)}")
    elif text.count("[") + text.count("{") > limits.depth and _deeper(event, 1, limits.depth):
        raise _too_deep(text, limits.depth)
    if not isinstance(event, dict):
        raise RequestRejected(422, f"expected a JSON object, got {_kind(event)}")
    return event


@functools.lru_cache(maxsize=8)
def _long_run(string_chars: int) -> re.Pattern[str]:
    """A quote and then more than `string_chars` characters that are not quotes: every string over the
    limit matches, when the text holds no escaped quote (and so may other text; then the walk decides)."""
    return re.compile(f'"[^"]{{{string_chars + 1}}}')


_DEEP = "too deep"


def _find(
    value: Any, depth: int, limits: JsonLimits, long: bool, escaped: bool
) -> tuple[list[str | int], str] | None:
    """The first thing strict JSON refuses in `value`, in document order: (its path, the problem).

    `long`: a string may be over the limit; `escaped`: a string may hold a lone surrogate or a NUL.
    Strings are checked in the loop, containers recursed into, so a large event costs one pass at C-ish
    speed.
    """
    kind = type(value)
    if kind is not dict and kind is not list:
        problem = _problem(value, limits, "string")
        return None if problem is None else ([], problem)
    if depth > limits.depth:
        return [], _DEEP
    if kind is dict:
        if (long and max(map(len, value), default=0) > limits.string_chars) or (
            escaped and not all(map(_plain, value))
        ):
            for key in value:
                problem = _problem(key, limits, "key")
                if problem is not None:
                    return [], problem
        items = value.values()
    else:
        items = value
    for index, item in enumerate(items):
        sub = type(item)
        if sub is str:
            if not ((long and len(item) > limits.string_chars) or (escaped and not _plain(item))):
                continue
        elif sub is not dict and sub is not list and sub is not _Refused:
            continue
        found = _find(item, depth + 1, limits, long, escaped)
        if found is not None:
            found[0].insert(0, list(value)[index] if kind is dict else index)
            return found
    return None


_NESTED = frozenset({dict, list})


def _deeper(value: Any, depth: int, limit: int) -> bool:
    """Whether the container `value`, at `depth`, nests deeper than `limit` (containers only)."""
    if depth > limit:
        return True
    items = value.values() if type(value) is dict else value
    if _NESTED.isdisjoint(map(type, items)):
        return False
    for item in items:
        if type(item) in _NESTED and _deeper(item, depth + 1, limit):
            return True
    return False


def _problem(value: Any, limits: JsonLimits, what: str) -> str | None:
    """What strict JSON refuses in a scalar (a string or a hook's `_Refused`), if anything."""
    if type(value) is _Refused:
        return value.problem
    if type(value) is not str:
        return None
    if len(value) > limits.string_chars:
        return f"{what} of {len(value)} characters (limit {limits.string_chars})"
    if not value.isascii():
        surrogate = _SURROGATE.search(value)
        if surrogate is not None:
            return f"lone surrogate \\u{ord(surrogate.group()):04x} in a {what}"
    if "\x00" in value:
        return f"NUL character \\u0000 in a {what}"
    return None


def _plain(text: str) -> bool:
    """ASCII without NUL: a string that can hold neither a lone surrogate nor a NUL."""
    return text.isascii() and "\x00" not in text


def _too_deep(text: str, limit: int) -> RequestRejected:
    """The refusal of JSON nested deeper than `limit`, with the byte offset where it goes deeper."""
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                offset = len(text[:index].encode("utf-8"))
                return RequestRejected(400, f"JSON nested deeper than {limit} levels at byte offset {offset}")
        elif char in "]}":
            depth -= 1
    return RequestRejected(400, f"JSON nested deeper than {limit} levels")


def _where(path: list[str | int]) -> str:
    """`items[2].qty`, `["a b"]`, or `the top level`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier() and len(part) <= _QUOTED:
            text += f".{part}" if text else part
        else:
            text += f"[{_quote(part)}]"
    return text or "the top level"


_QUOTED = 64
"""Longest key quoted whole in a message; a longer one is cut, marked with `…` after the quote."""


def _quote(text: str) -> str:
    if len(text) > _QUOTED:
        return json.dumps(text[:_QUOTED], ensure_ascii=False) + "…"
    return json.dumps(text, ensure_ascii=False)


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
