"""The size limits on what a template builds, checked before anything large is built.

| limit | value | counts |
|---|---|---|
| `MAX_LENGTH` | 100,000 | characters of a string (or bytes), items of a list, tuple or mapping |
| `MAX_INT_BITS` | 65,536 | bits of an integer |
| `MAX_BUILT` | 1,000,000 | what one evaluation builds, loops and calls in all; what a result repeats |
| `MAX_RANGE` | 100,000 | items of a `range` (Jinja's own sandbox limit) |

Every operator, filter, method and format call that can build a value is covered. Where the size of the
result follows from the arguments (`'x' * n`, `center(n)`, `'%0*d'`, `'{:>n}'`, `join`, `replace`,
`indent`, ...) it is computed and checked first; any other result is checked once built, which costs at
most a small multiple of the inputs (`SLACK`). A breach raises `TemplateLimitError` naming the limit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import Undefined
from jinja2.sandbox import MAX_RANGE, SandboxedFormatter
from jinja2.utils import Namespace

from engine.errors import TemplateLimitError

__all__ = ["BINOPS", "MAX_BUILT", "MAX_INT_BITS", "MAX_LENGTH", "MAX_RANGE", "budget", "check", "start"]

MAX_LENGTH = 100_000
MAX_INT_BITS = 65_536
MAX_BUILT = 1_000_000
SLACK = 4
"""An upper bound up to SLACK x MAX_LENGTH is built and then checked exactly; a larger one is refused."""

_SEQUENCES = (str, bytes, list, tuple)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


# --- the checks -----------------------------------------------------------------------------------


def limit_error(what: str, size: int | None, limit: int, unit: str) -> TemplateLimitError:
    amount = f"{size:,} {unit}" if size is not None else f"more than {limit:,} {unit}"
    return TemplateLimitError(f"the template would build {what} of {amount}; the limit is {limit:,}")


def _kind(value: Any) -> tuple[str, str]:
    if isinstance(value, str | bytes):
        return "a string", "characters"
    return ("a mapping" if isinstance(value, Mapping) else "a list"), "items"


def exact(size: int, like: Any = "") -> None:
    """Refuse, before building it, a result known to be `size` long when that is over the limit."""
    if size > MAX_LENGTH:
        what, unit = _kind(like)
        raise limit_error(what, size, MAX_LENGTH, unit)


def bound(size: int, like: Any = "") -> None:
    """Refuse a result that could be up to `size` long when that is far over the limit (see SLACK)."""
    if size > SLACK * MAX_LENGTH:
        what, unit = _kind(like)
        raise limit_error(what, None, MAX_LENGTH, unit)


def check(value: Any) -> Any:
    """The value, once built, within the limits; its size counts towards the evaluation's total."""
    kind = type(value)
    if kind is str or kind is list or kind is tuple or kind is dict or isinstance(value, _SIZED):
        size = len(value)
        if size > MAX_LENGTH:
            what, unit = _kind(value)
            raise limit_error(what, size, MAX_LENGTH, unit)
        left = budget[0] = budget[0] - size  # charge(size), inline: every built value passes here
        if left < 0:
            charge(0)
    elif kind is int and value.bit_length() > MAX_INT_BITS:
        raise limit_error("a number", value.bit_length(), MAX_INT_BITS, "bits")
    return value


budget = [MAX_BUILT]
"""What the current evaluation may still build. Evaluations are synchronous and run on one thread (the
service's event loop), so one counter serves; a config loading on another thread only has Jinja fold a
few constants, which counts a few characters."""


def start() -> None:
    """Begin one evaluation: what it may build in total starts again at MAX_BUILT."""
    budget[0] = MAX_BUILT


def charge(size: int) -> None:
    """Count `size` characters, items, loop iterations or calls towards the evaluation's total."""
    left = budget[0] = budget[0] - size
    if left < 0:
        budget[0] = MAX_BUILT  # this evaluation ends here
        raise TemplateLimitError(
            f"the template would build more than {MAX_BUILT:,} characters, items, loop iterations and "
            f"calls in one evaluation; the limit is {MAX_BUILT:,}"
        )


# --- how large a value is written out ------------------------------------------------------------


def _string_cost(text: str | bytes, json: bool) -> int:
    """An upper bound of the length of `repr(text)`, or of `text` in JSON as `tojson` writes it."""
    if isinstance(text, bytes):
        return 4 * len(text) + 3
    if not json:
        return len(text) + 2 if text.isprintable() else 4 * len(text) + 2
    if not (text.isascii() and text.isprintable()):
        return 6 * len(text) + 2  # \uXXXX for each character (astral ones are two)
    escaped = text.count('"') + text.count("\\")
    html = text.count("<") + text.count(">") + text.count("&") + text.count("'")  # \u003c and the like
    return len(text) + 2 + escaped + 5 * html


def measure(value: Any, budget: int, *, json: bool = False, strict: bool = False) -> tuple[int, int, int]:
    """(characters, items, depth) of `value` written out by repr (or as JSON), stopping once over `budget`.

    The characters are an upper bound within a small factor. A part the value holds twice is counted
    twice, as writing it out would; the walk stops as soon as the count passes `budget`, so it costs at
    most `budget` steps whatever the value shares. With `strict`, an undefined value inside it fails.
    """
    size = items = depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and size <= budget:
        item, level = stack.pop()
        kind = type(item)
        if kind is str or isinstance(item, str | bytes):
            size += _string_cost(item, json)
        elif kind is int:
            size += item.bit_length() * 30103 // 100_000 + 2
        elif kind is bool or kind is float or item is None:
            size += 24
        elif isinstance(item, Undefined):
            if strict:
                item._fail_with_undefined_error()
            size += 9
        elif isinstance(item, Namespace):
            stack.append((object.__getattribute__(item, "_Namespace__attrs"), level))
        elif isinstance(item, list | tuple | set | frozenset | Mapping) or _is_view(item):
            depth = max(depth, level)
            items += len(item)
            size += 2 + 4 * len(item)
            pairs = item.items() if isinstance(item, Mapping) else ((part,) for part in item)
            parts = [(part, level + 1) for pair in pairs for part in pair]
            parts.reverse()  # the stack then yields them in written order
            stack.extend(parts)
        else:
            size += len(repr(item))
    return size, items, depth


_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))


def _is_view(value: Any) -> bool:
    return isinstance(value, _VIEWS)


SCALARS = frozenset({int, float, bool, type(None)})


def text_size(value: Any, *, json: bool = False) -> int:
    """An upper bound of `len(str(value))` (or of its JSON), stopping early once far over the limit."""
    kind = type(value)
    if kind is str and not json:
        return len(value)
    if kind is int:
        return int(value.bit_length() * 30103 // 100_000 + 2)
    if kind in SCALARS:
        return 24
    return measure(value, SLACK * MAX_LENGTH, json=json)[0]


def to_text(value: Any) -> str:
    """`str(value)`, as Jinja prints an expression; refused before it is built when far over the limit."""
    if type(value) is str:
        return value
    if not isinstance(value, str | int | float | Undefined) and value is not None:
        bound(text_size(value))
    text = str(value)
    exact(len(text))
    return text


def check_result(value: Any) -> Any:
    """The value a lone expression built, as it leaves the template: nothing undefined inside it, and
    at most MAX_BUILT of it written out repeating a part that is shared (`[s] * 1000` holds `s` a
    thousand times). A value as large as the data it was built from passes, however large.
    """
    kind = type(value)
    if kind is str or kind in SCALARS:
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, list | tuple | dict) and repeated(value) > MAX_BUILT:
        raise TemplateLimitError(
            f"the template would yield a value repeating more than {MAX_BUILT:,} characters and items of "
            f"itself when written out; the limit is {MAX_BUILT:,}"
        )
    return value


def repeated(value: Any) -> int:
    """How much of `value`, written out, repeats a part already written (a list or a long string held twice).

    Each distinct part is walked once, so a value sharing parts exponentially costs only its distinct
    size. An undefined value inside fails as it would on its own.
    """
    sizes: dict[int, int] = {}  # written size of each container or long string walked
    keep: list[Any] = []  # holds what `sizes` refers to by id
    total = 0
    results: list[int] = []
    stack: list[tuple[Any, int]] = [(value, -1)]
    while stack and total <= MAX_BUILT:
        item, count = stack.pop()
        if count >= 0:  # every part of `item` is measured: its size is theirs, plus its brackets
            size = 2 + 4 * count + sum(results[len(results) - count :])
            del results[len(results) - count :]
            sizes[id(item)] = size
            results.append(size)
            continue
        known = sizes.get(id(item))
        if known is not None:
            total += known
            results.append(known)
            continue
        if isinstance(item, str | bytes):
            results.append(len(item) + 2)
            if len(item) > 64:
                sizes[id(item)] = len(item) + 2
                keep.append(item)
        elif isinstance(item, Undefined):
            item._fail_with_undefined_error()
        elif isinstance(item, list | tuple | Mapping):
            sizes[id(item)] = 0  # a part holding itself (a namespace) repeats nothing more
            keep.append(item)
            parts = [p for pair in item.items() for p in pair] if isinstance(item, Mapping) else list(item)
            stack.append((item, len(parts)))
            stack.extend((part, -1) for part in reversed(parts))
        else:
            results.append(24)
    return total


# --- operators ------------------------------------------------------------------------------------


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and type(left) is type(right):
        exact(len(left) + len(right), left)
    return check(left + right)


def _sub(left: Any, right: Any) -> Any:
    return check(left - right)


def _mul(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, _SEQUENCES) and isinstance(count, int):
            exact(len(sequence) * max(count, 0), sequence)
            return check(left * right)
    if isinstance(left, int) and isinstance(right, int) and left and right:
        bits = left.bit_length() + right.bit_length() - 1
        if bits > MAX_INT_BITS:
            raise limit_error("a number", bits, MAX_INT_BITS, "bits")
    return check(left * right)


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = (left.bit_length() - 1) * right + 1
        if bits > MAX_INT_BITS:
            raise limit_error("a number", bits, MAX_INT_BITS, "bits")
    return check(left**right)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes):
        bound(printf_size(left, right), left)
    return check(left % right)


BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": _mod,
    "**": _pow,
}
"""Every binary arithmetic operator of a template: Python's, within the limits."""


def concat(values: Iterable[Any]) -> str:
    """`a ~ b ~ c`: the values as text, joined."""
    parts = [to_text(value) for value in values]
    exact(sum(map(len, parts)))
    return check("".join(parts))


def join_text(pieces: Iterable[str]) -> str:
    """A template's text joined from its pieces, refused as soon as it passes the limit."""
    if type(pieces) is tuple or type(pieces) is list:
        total = sum(map(len, pieces))
        if total > MAX_LENGTH:
            raise limit_error("a text", total, MAX_LENGTH, "characters")
        charge(total)
        return "".join(pieces)
    parts = []
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_LENGTH:
            raise limit_error("a text", None, MAX_LENGTH, "characters")
        parts.append(piece)
    charge(total)
    return "".join(parts)


# --- printf-style and str.format formatting -------------------------------------------------------

_FIELD_SLACK = 330
"""What a numeric field may add to its precision: the digits of the largest float, a sign, a prefix."""


def _digits(text: str, i: int) -> tuple[int, int]:
    """The decimal number at `text[i:]` (0 if none) and where it ends; a huge one is just over the limit."""
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    if j - i > 9:
        return MAX_LENGTH + 1, j
    return (int(text[i:j]) if j > i else 0), j


def printf_size(template: str | bytes, args: Any) -> int:
    """An upper bound of `len(template % args)`, from the conversions as CPython reads them.

    At a conversion Python would reject (a missing key or argument, an unknown conversion), the count
    stops: formatting then raises Python's own error.
    """
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    positional = args if isinstance(args, tuple) else (args,)
    index = size = i = 0
    end = len(text)
    while True:
        start = text.find("%", i)
        if start < 0:
            return size + end - i
        size += start - i
        i = start + 1
        if i >= end:
            return size
        if text[i] == "%":
            size, i = size + 1, i + 1
            continue
        value: Any = _NOTHING
        if text[i] == "(":
            depth, j = 1, i + 1
            while j < end and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            if depth or not isinstance(args, Mapping):
                return size
            key = text[i + 1 : j - 1]
            try:
                value = args[key.encode("latin-1") if isinstance(template, bytes) else key]
            except Exception:  # noqa: BLE001 - Python raises its own error when it formats
                return size
            i = j
        while i < end and text[i] in "-+ #0":
            i += 1
        numbers = []
        for part in ("width", "precision"):
            if part == "precision":
                if i >= end or text[i] != ".":
                    numbers.append(-1)
                    break
                i += 1
            if i < end and text[i] == "*":
                if index >= len(positional) or not isinstance(positional[index], int):
                    return size
                numbers.append(abs(positional[index]))
                index, i = index + 1, i + 1
            else:
                number, i = _digits(text, i)
                numbers.append(number)
        width, precision = numbers
        if i < end and text[i] in "hlL":
            i += 1
        if i >= end:
            return size
        conversion = text[i]
        i += 1
        if value is _NOTHING:
            if index >= len(positional):
                return size
            value = positional[index]
            index += 1
        exact(max(width, precision))
        if conversion == "s":
            field = text_size(value)
        elif conversion in "ra":
            field = measure(value, SLACK * MAX_LENGTH)[0] * (3 if conversion == "a" else 1)
        elif conversion in "cb":
            field = len(value) if isinstance(value, bytes) else 1
        elif conversion in "diuoxXeEfFgG":
            digits = value.bit_length() * 30103 // 100_000 + 1 if isinstance(value, int) else 0
            field = max(digits, precision) + _FIELD_SLACK
        else:
            return size
        if conversion in "sra" and precision >= 0:
            field = min(field, precision)
        size += max(width, field)


_NOTHING: Any = object()


def _spec_sizes(spec: str) -> tuple[int, int]:
    """(width, precision) of a format spec: `[[fill]align][sign][z][#][0][width][,_][.precision][type]`."""
    i = 2 if len(spec) > 1 and spec[1] in "<>=^" else 1 if spec[:1] in ("<", ">", "=", "^") else 0
    for optional in ("+- ", "z", "#", "0"):
        if spec[i : i + 1] and spec[i] in optional:
            i += 1
    width, i = _digits(spec, i)
    if spec[i : i + 1] in (",", "_"):
        i += 1
    precision = _digits(spec, i + 1)[0] if spec[i : i + 1] == "." else 0
    return width, precision


class Formatter(SandboxedFormatter):
    """Jinja's sandboxed `str.format`, each field and the whole result bounded before it is built."""

    _size = 0

    def vformat(self, format_string: Any, args: Any, kwargs: Any) -> str:
        self._size = len(format_string)
        return str(check(super().vformat(format_string, args, kwargs)))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in ("r", "a"):
            bound(measure(value, SLACK * MAX_LENGTH)[0] * (3 if conversion == "a" else 1))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        width, precision = _spec_sizes(format_spec)
        exact(max(width, precision))
        numeric = 0 if isinstance(value, str) else precision + _FIELD_SLACK
        self._size += max(width, numeric, text_size(value))
        bound(self._size)
        return super().format_field(value, format_spec)
