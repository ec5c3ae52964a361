"""LoopBack 3 conventions the Next Plus simulator speaks: the error envelope, `ValidationError`, filters.

Next Plus is very likely LoopBack 3 (ERP-FACTS: "~"); everything here follows LoopBack 3 defaults,
unverified against Next Plus itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "FilterError",
    "ValidationFailure",
    "apply_filter",
    "error_response",
    "match_where",
    "parse_filter",
]

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def error_response(status: int, message: str, code: str, name: str = "Error", **extra: Any) -> JSONResponse:
    """`{"error": {"statusCode", "name", "message", "code", ...}}` as LoopBack 3 answers."""
    body: dict[str, Any] = {"statusCode": status, "name": name, "message": message, "code": code, **extra}
    return JSONResponse({"error": body}, status_code=status)


class ValidationFailure(Exception):
    """Collects per-field messages and renders LoopBack's 422 `ValidationError`."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model
        self.messages: dict[str, list[str]] = {}
        self.codes: dict[str, list[str]] = {}
        self.values: dict[str, Any] = {}

    def add(self, field: str, message: str, code: str, value: Any = None) -> None:
        self.messages.setdefault(field, []).append(message)
        self.codes.setdefault(field, []).append(code)
        self.values.setdefault(field, value)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def response(self) -> JSONResponse:
        details = "; ".join(
            f"`{f}` {m} (value: {_js(self.values.get(f))})" for f, ms in self.messages.items() for m in ms
        )
        # ASSUMPTION: LoopBack 3's ValidationError carries no `code`; strong-error-handler setups
        # often add one. We send "VALIDATION_FAILED" so clients always find the four envelope keys.
        return error_response(
            422,
            f"The `{self.model}` instance is not valid. Details: {details}.",
            "VALIDATION_FAILED",
            name="ValidationError",
            details={"context": self.model, "codes": self.codes, "messages": self.messages},
        )


def _js(value: Any) -> str:
    return "undefined" if value is None else json.dumps(value, ensure_ascii=False)


class FilterError(ValueError):
    """A `filter` query parameter LoopBack would refuse (answered 400)."""


def parse_filter(raw: str | None) -> dict[str, Any]:
    """The `filter` query parameter as a dict (empty when absent)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise FilterError(f"The filter argument is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FilterError("The filter argument must be an object")
    return value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "neq": lambda v, a: v != a,
    "gt": lambda v, a: v is not None and v > a,
    "gte": lambda v, a: v is not None and v >= a,
    "lt": lambda v, a: v is not None and v < a,
    "lte": lambda v, a: v is not None and v <= a,
    "inq": lambda v, a: v in a,
    "nin": lambda v, a: v not in a,
    "between": lambda v, a: v is not None and a[0] <= v <= a[1],
    "like": lambda v, a: isinstance(v, str) and re.search(str(a).replace("%", ".*"), v) is not None,
}


def _field(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def match_where(record: dict[str, Any], where: dict[str, Any]) -> bool:
    """True when the record satisfies a LoopBack `where` (equality, operators, and/or)."""
    for key, cond in where.items():
        if key == "and":
            if not all(match_where(record, c) for c in cond):
                return False
        elif key == "or":
            if not any(match_where(record, c) for c in cond):
                return False
        else:
            value = _field(record, key)
            if isinstance(cond, dict) and cond and set(cond) <= set(_OPS):
                try:
                    if not all(_OPS[op](value, arg) for op, arg in cond.items()):
                        return False
                except TypeError:
                    return False
            elif value != cond:
                return False
    return True


def _order_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def apply_filter(records: list[dict[str, Any]], flt: dict[str, Any]) -> list[dict[str, Any]]:
    """Where, order ("field ASC|DESC" or a list of them), skip/offset and limit."""
    where = flt.get("where") or {}
    if not isinstance(where, dict):
        raise FilterError("The where clause must be an object")
    rows = [r for r in records if match_where(r, where)]
    order = flt.get("order")
    if order:
        for clause in reversed([order] if isinstance(order, str) else list(order)):
            name, _, direction = str(clause).strip().partition(" ")
            rows.sort(key=lambda r: _order_key(_field(r, name)), reverse=direction.strip().upper() == "DESC")
    try:
        skip = int(flt.get("skip", flt.get("offset", 0)) or 0)
        limit = flt.get("limit")
        limit = int(limit) if limit not in (None, "") else None
    except (TypeError, ValueError):
        raise FilterError("limit and skip must be numbers") from None
    rows = rows[skip:]
    return rows if limit is None or limit <= 0 else rows[:limit]
