"""The OData v4 query language as Priority speaks it: `$filter`, `$select`, `$expand`, `$orderby`,
`$top`, `$skip`, `$count`, and entity keys such as `('WO1')`, `(A='x',B=1)` and `(12)`.

Field names are checked against a `Schema`, so an unknown property is a 400 as on the real server.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

__all__ = ["ODataError", "Query", "Schema", "apply_query", "parse_filter", "parse_key", "parse_query"]

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
COMPANY_TZ = timezone(timedelta(hours=2))


class ODataError(Exception):
    """A request the OData layer refuses; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def unknown_property(name: str, form: str) -> ODataError:
    return ODataError(f"Could not find a property named '{name}' on type 'Priority.OData.{form}'.")


class Schema(Protocol):
    def fields(self, form: str) -> Sequence[str]: ...

    def subforms(self, form: str) -> Sequence[str]: ...


@dataclass
class Query:
    """Parsed query options of one form (and, through `expand`, of its sub-forms)."""

    filter: Predicate | None = None
    select: list[str] | None = None
    expand: dict[str, Query] = field(default_factory=dict)
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False


# -- $filter ----------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)(?![\w:])
      | (?P<num>-?\d+(?:\.\d+)?)(?![\w:])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[()])
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_LITERALS = {"null": None, "true": True, "false": False}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        pos = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "str":
            tokens.append(("lit", raw[1:-1].replace("''", "'")))
        elif kind == "dt":
            tokens.append(("lit", _datetime(raw)))
        elif kind == "num":
            tokens.append(("lit", float(raw) if "." in raw else int(raw)))
        elif kind == "name" and raw in _LITERALS:
            tokens.append(("lit", _LITERALS[raw]))
        else:
            tokens.append((kind, raw))
    return tokens


def _datetime(raw: str) -> datetime:
    # ASSUMPTION: a date-time literal without an offset is read in the company time zone (+02:00).
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=COMPANY_TZ)
    return value


def _as_datetime(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


class _FilterParser:
    """Recursive descent: or > and > not > comparison > primary."""

    def __init__(self, text: str, fields: Sequence[str], form: str) -> None:
        # ASSUMPTION: a `+` sent unencoded arrives as a space, so `10:39:00 02:00` is two tokens and
        # the filter is refused with 400, as the real server refuses it: clients must send `%2B`.
        self.tokens = _tokenize(text)
        self.pos = 0
        self.fields = set(fields)
        self.form = form

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.pos != len(self.tokens):
            raise ODataError(f"Syntax error: unexpected '{self.tokens[self.pos][1]}' in $filter.")
        return predicate

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token and token[0] == "name" and token[1] == word:
            self.pos += 1
            return True
        return False

    def _or(self) -> Predicate:
        left = self._and()
        while self._keyword("or"):
            right, first = self._and(), left
            left = _either(first, right)
        return left

    def _and(self) -> Predicate:
        left = self._not()
        while self._keyword("and"):
            right, first = self._not(), left
            left = _both(first, right)
        return left

    def _not(self) -> Predicate:
        if self._keyword("not"):
            inner = self._not()
            return lambda r: not inner(r)
        return self._comparison()

    def _comparison(self) -> Predicate:
        token = self._peek()
        if token == ("punct", "("):
            self.pos += 1
            inner = self._or()
            if self._peek() != ("punct", ")"):
                raise ODataError("Syntax error: ')' expected in $filter.")
            self.pos += 1
            return inner
        left = self._operand()
        token = self._peek()
        if not token or token[0] != "name" or token[1] not in _COMPARE:
            raise ODataError("Syntax error: comparison operator expected in $filter.")
        self.pos += 1
        return _compare(_COMPARE[token[1]], token[1], left, self._operand())

    def _operand(self) -> Callable[[Record], Any]:
        token = self._peek()
        if token is None:
            raise ODataError("Syntax error: unexpected end of $filter.")
        self.pos += 1
        kind, value = token
        if kind == "lit":
            return lambda r: value
        if kind == "name":
            if value not in self.fields:
                raise unknown_property(value, self.form)
            return operator.itemgetter(value)
        raise ODataError(f"Syntax error: unexpected '{value}' in $filter.")


def _compare(op: Callable[[Any, Any], bool], name: str, left: Callable, right: Callable) -> Predicate:
    def predicate(record: Record) -> bool:
        a, b = left(record), right(record)
        if a is None or b is None:
            return op(a, b) if name in ("eq", "ne") else False
        if isinstance(a, datetime) or isinstance(b, datetime):
            a, b = _as_datetime(a), _as_datetime(b)
        try:
            return bool(op(a, b))
        except TypeError:
            return name == "ne"

    return predicate


def parse_filter(text: str, fields: Sequence[str], form: str = "") -> Predicate:
    """Compile a `$filter` expression into a predicate over records."""
    return _FilterParser(text, fields, form).parse()


# -- options ----------------------------------------------------------------------------------------
_KNOWN = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$format"}


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _int(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise ODataError(f"Invalid value '{raw}' for {name}: a non-negative integer is expected.")
    return int(raw)


def parse_query(params: Mapping[str, str], form: str, schema: Schema) -> Query:
    """Parse and check the `$` options of a request on `form`."""
    for name in params:
        if name.startswith("$") and name not in _KNOWN:
            raise ODataError(f"The query parameter '{name}' is not supported.")
    fields = schema.fields(form)
    query = Query()
    if params.get("$filter"):
        query.filter = parse_filter(params["$filter"], fields, form)
    if params.get("$select"):
        query.select = _split_top(params["$select"], ",")
        for name in query.select:
            if name != "*" and name not in fields:
                raise unknown_property(name, form)
        if "*" in query.select:
            query.select = None
    for item in _split_top(params.get("$expand", ""), ","):
        name, _, inner = item.partition("(")
        name = name.strip()
        if name not in schema.subforms(form):
            raise unknown_property(name, form)
        nested = {}
        for option in _split_top(inner[:-1] if inner.endswith(")") else inner, ";"):
            key, _, value = option.partition("=")
            nested[key.strip()] = value.strip()
        query.expand[name] = parse_query(nested, name, schema)
    for item in _split_top(params.get("$orderby", ""), ","):
        name, _, direction = item.partition(" ")
        direction = direction.strip().lower() or "asc"
        if name not in fields or direction not in ("asc", "desc"):
            raise ODataError(f"Invalid $orderby '{item}' on type 'Priority.OData.{form}'.")
        query.orderby.append((name, direction == "desc"))
    if "$top" in params:
        query.top = _int("$top", params["$top"])
    if "$skip" in params:
        query.skip = _int("$skip", params["$skip"])
    count = params.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise ODataError(f"Invalid value '{count}' for $count.")
    query.count = count == "true"
    return query


def _sort_key(value: Any) -> tuple[int, Any]:
    # nulls first, then values; mixed types never compared with each other
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def apply_query(
    records: Iterable[Record], query: Query, cap: int | None = None
) -> tuple[list[Record], int | None]:
    """Filter, order, skip and take; returns the page and, if `$count=true`, the matching total.

    `cap` truncates the page silently (Priority's MAXAPILINES).
    """
    rows: Iterable[Record] = records
    if query.filter is not None:
        rows = filter(query.filter, rows)
    total = None
    if query.count or query.orderby:
        rows = list(rows)
        total = len(rows) if query.count else None
        for name, descending in reversed(query.orderby):
            rows.sort(key=lambda r, n=name: _sort_key(r[n]), reverse=descending)  # type: ignore[misc]
    limit = query.top
    if cap is not None:
        limit = cap if limit is None else min(limit, cap)
    end = None if limit is None else query.skip + limit
    if isinstance(rows, list):
        return rows[query.skip : end], total
    return list(itertools.islice(rows, query.skip, end)), total


# -- keys ---------------------------------------------------------------------------------------------
_KEY_VALUE = re.compile(r"\s*(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))\s*")


def _key_value(raw: str) -> Any:
    match = _KEY_VALUE.fullmatch(raw)
    if not match:
        raise ODataError(f"Bad key value '{raw}'.")
    if match.group(1) is not None:
        return match.group(1).replace("''", "'")
    number = match.group(2)
    return float(number) if "." in number else int(number)


def parse_key(text: str, key_fields: Sequence[str]) -> tuple[Any, ...]:
    """`'WO1'`, `12` or `A='x',B=1` as a tuple ordered like `key_fields`."""
    parts = _split_top(text, ",")
    if len(parts) == 1 and "=" not in parts[0].split("'")[0]:
        if len(key_fields) != 1:
            raise ODataError(f"The key has {len(key_fields)} parts: {', '.join(key_fields)}.")
        return (_key_value(parts[0]),)
    values: dict[str, Any] = {}
    for part in parts:
        name, sep, raw = part.partition("=")
        if not sep or name.strip() not in key_fields:
            raise ODataError(f"Bad key segment '{part}': expected {', '.join(key_fields)}.")
        values[name.strip()] = _key_value(raw)
    if set(values) != set(key_fields):
        raise ODataError(f"The key has {len(key_fields)} parts: {', '.join(key_fields)}.")
    return tuple(values[k] for k in key_fields)


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda record: a(record) or b(record)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda record: a(record) and b(record)
