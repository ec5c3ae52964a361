"""The record store behind the JSON-RPC simulator: models, domains, `order`, and the ORM methods an
external client calls through `execute_kw`, with Odoo's semantics and error names.

Values are kept as `read` returns them: a many2one is `[id, display_name]` or `false`, a one2many a
list of ids, a datetime the text `YYYY-MM-DD HH:MM:SS` (UTC), an empty value `false`.

Methods (positional and keyword arguments as the ORM takes them):

    search(domain, offset=0, limit=None, order=None)              -> [ids]
    search_count(domain)                                          -> n
    search_read(domain=None, fields=None, offset=0, limit=None, order=None) -> [records]
    read(ids, fields=None)                                        -> [records]
    create(vals | [vals])                                         -> id | [ids]
    write(ids, vals)                                              -> true
    unlink(ids)                                                   -> true

Domains are lists of `[field, operator, value]` terms (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`,
`not in`, `like`, `ilike`, `not ilike`) joined by an implicit `&`, with the prefix operators `&`,
`|` and `!`; a field may be a many2one path (`production_id.name`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIELDS", "Database", "OdooError", "now_text"]

# Field kinds by model: "char", "float", "integer", "datetime", "selection", "text",
# "m2o:<model>", "o2m:<model>:<inverse field>". `id`, `display_name`, `create_date` and `write_date`
# exist on every model.
FIELDS: dict[str, dict[str, str]] = {
    "product.product": {"name": "char", "default_code": "char", "type": "selection"},
    "mrp.workcenter": {"name": "char", "code": "char"},
    "mrp.production": {
        "name": "char",
        "product_id": "m2o:product.product",
        "product_qty": "float",
        "state": "selection",
        "date_start": "datetime",
        "date_finished": "datetime",
        "date_deadline": "datetime",
        "origin": "char",
        "workorder_ids": "o2m:mrp.workorder:production_id",
    },
    "mrp.workorder": {
        "name": "char",
        "production_id": "m2o:mrp.production",
        "workcenter_id": "m2o:mrp.workcenter",
        "state": "selection",
        "qty_production": "float",
        "qty_produced": "float",
        "duration_expected": "float",
    },
    "mrp.workcenter.productivity.loss": {"name": "char", "loss_type": "selection"},
    "mrp.workcenter.productivity": {
        "workorder_id": "m2o:mrp.workorder",
        "production_id": "m2o:mrp.production",
        "workcenter_id": "m2o:mrp.workcenter",
        "loss_id": "m2o:mrp.workcenter.productivity.loss",
        "date_start": "datetime",
        "date_end": "datetime",
        "description": "text",
        "duration": "float",
    },
}
COMMON = ("id", "display_name", "create_date", "write_date")
REQUIRED = {
    "mrp.workcenter.productivity": ("workcenter_id", "loss_id", "date_start"),
    "mrp.production": ("product_id",),
}
LABELS = {
    "mrp.workcenter.productivity": "Productivity Tracking",
    "mrp.production": "Production",
    "mrp.workorder": "Work Order",
}


def now_text() -> str:
    """The current UTC time as Odoo writes a datetime."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class OdooError(Exception):
    """An exception the server reports in the JSON-RPC `error` member, by its Python name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def missing(model: str, ids: list[int], uid: int) -> OdooError:
    shown = ", ".join(map(str, ids)) + ("," if len(ids) == 1 else "")
    return OdooError(
        "odoo.exceptions.MissingError",
        f"Record does not exist or has been deleted.\n(Record: {model}({shown}), User: {uid})",
    )


@dataclass
class Database:
    """The records of one database, by model and id."""

    records: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {model: {} for model in FIELDS}
    )
    next_id: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 1))
    ignore_offset: bool = False
    """A server that ignores `offset` (the same page for every offset), to prove a paginator stops."""

    # -- storage ------------------------------------------------------------------------------
    def add(self, model: str, values: dict[str, Any], when: str | None = None) -> dict[str, Any]:
        """Store a record from ids (many2one as an id); returns it in `read` form."""
        rid = self.next_id[model]
        self.next_id[model] += 1
        stamp = when or now_text()
        record: dict[str, Any] = {"id": rid, "create_date": stamp, "write_date": stamp}
        for name, kind in FIELDS[model].items():
            record[name] = [] if kind.startswith("o2m:") else False
        self.records[model][rid] = record
        self._assign(model, record, values)
        return record

    def _assign(self, model: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        for name, value in values.items():
            kind = FIELDS[model].get(name)
            if kind is None:
                raise OdooError("builtins.ValueError", f"Invalid field {name!r} on model {model!r}")
            if kind.startswith("m2o:"):
                target = kind[4:]
                if value in (False, None):
                    record[name] = False
                    continue
                if not isinstance(value, int) or value not in self.records[target]:
                    raise missing(target, [value], 1)
                record[name] = [value, self.records[target][value]["display_name"]]
            elif kind.startswith("o2m:"):
                raise OdooError("builtins.ValueError", f"Field {name!r} of {model!r} is not writable here")
            else:
                record[name] = value
        record["display_name"] = self._display(model, record)
        for child_field, kind in FIELDS[model].items():
            if kind.startswith("o2m:"):
                _, child, inverse = kind.split(":")
                record[child_field] = sorted(
                    cid
                    for cid, c in self.records[child].items()
                    if (c.get(inverse) or [None])[0] == record["id"]
                )

    def _display(self, model: str, record: dict[str, Any]) -> str:
        if model == "product.product" and record.get("default_code"):
            return f"[{record['default_code']}] {record['name']}"
        if model == "mrp.workorder" and record.get("production_id"):
            return f"{record['production_id'][1]} - {record['name']}"
        return str(record.get("name") or f"{model},{record['id']}")

    def _link(self, model: str, record: dict[str, Any]) -> None:
        """Keep the parents' one2many lists in step with a child's many2one."""
        for parent, fields in FIELDS.items():
            for name, kind in fields.items():
                if kind.startswith(f"o2m:{model}:"):
                    inverse = kind.split(":")[2]
                    for parent_record in self.records[parent].values():
                        parent_record[name] = sorted(
                            cid
                            for cid, c in self.records[model].items()
                            if (c.get(inverse) or [None])[0] == parent_record["id"]
                        )

    # -- domains and order ----------------------------------------------------------------------
    def _value(self, model: str, record: dict[str, Any], path: str) -> Any:
        head, _, rest = path.partition(".")
        if head not in record:
            raise OdooError("builtins.ValueError", f"Invalid field {head!r} in leaf ({path!r})")
        value = record[head]
        if not rest:
            return value
        kind = FIELDS[model].get(head, "")
        if not kind.startswith("m2o:") or not value:
            return False
        target = kind[4:]
        return self._value(target, self.records[target][value[0]], rest)

    def _term(self, model: str, record: dict[str, Any], term: Any) -> bool:
        if not isinstance(term, list | tuple) or len(term) != 3 or not isinstance(term[0], str):
            raise OdooError("builtins.ValueError", f"Invalid leaf {term!r}")
        path, op, expected = term
        value = self._value(model, record, path)
        if isinstance(value, list) and value and isinstance(value[0], int) and len(value) == 2:
            value = value[0] if not isinstance(expected, str) else value[1]  # many2one: id, or its name
        if op == "=":
            return bool(value == expected)
        if op == "!=":
            return bool(value != expected)
        if op in ("in", "not in"):
            if not isinstance(expected, list | tuple):
                raise OdooError("builtins.ValueError", f"Invalid leaf {term!r}")
            return (value in expected) == (op == "in")
        if op in ("like", "ilike", "not ilike"):
            text, part = str(value or ""), str(expected)
            found = part.lower() in text.lower() if op != "like" else part in text
            return found != (op == "not ilike")
        if op in ("<", "<=", ">", ">="):
            if value is False or value is None:
                return False
            try:
                return bool(
                    {
                        "<": value < expected,
                        "<=": value <= expected,
                        ">": value > expected,
                        ">=": value >= expected,
                    }[op]
                )
            except TypeError:
                raise OdooError("builtins.TypeError", f"cannot compare {value!r} and {expected!r}") from None
        raise OdooError("builtins.ValueError", f"Invalid leaf {term!r}")

    def matches(self, model: str, record: dict[str, Any], domain: Any) -> bool:
        if domain in (None, False):
            return True
        if not isinstance(domain, list):
            raise OdooError("builtins.ValueError", f"Invalid domain {domain!r}")
        stack: list[bool] = []
        for item in reversed(domain):
            if item == "!":
                stack.append(not stack.pop())
            elif item in ("&", "|"):
                first, second = stack.pop(), stack.pop()
                stack.append(first and second if item == "&" else first or second)
            else:
                stack.append(self._term(model, record, item))
        return all(stack)

    def _ordered(self, model: str, rows: list[dict[str, Any]], order: str | None) -> list[dict[str, Any]]:
        terms = [t.split() for t in (order or "id").split(",") if t.strip()]
        for term in reversed(terms):
            name = term[0]
            if name not in FIELDS[model] and name not in COMMON:
                raise OdooError("builtins.ValueError", f"Invalid field {name!r} on model {model!r}")
            descending = len(term) > 1 and term[1].lower() == "desc"

            def key(r: dict[str, Any], name: str = name) -> Any:
                value = r[name]
                return (value is False, value[0] if isinstance(value, list) and value else value)

            rows.sort(key=key, reverse=descending)
        return rows

    # -- ORM methods ----------------------------------------------------------------------------
    def _model(self, model: Any) -> dict[int, dict[str, Any]]:
        if model not in FIELDS:
            raise OdooError("builtins.KeyError", repr(model))
        return self.records[model]

    def _fields(self, model: str, wanted: Any) -> list[str]:
        names = list(wanted or [])
        for name in names:
            if name not in FIELDS[model] and name not in COMMON:
                raise OdooError("builtins.ValueError", f"Invalid field {name!r} on model {model!r}")
        return names or [*COMMON, *FIELDS[model]]

    def _project(self, record: dict[str, Any], names: list[str]) -> dict[str, Any]:
        return {"id": record["id"], **{n: record[n] for n in names if n != "id"}}

    def search(
        self,
        model: str,
        domain: Any = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
    ) -> list[int]:
        rows = [r for r in self._model(model).values() if self.matches(model, r, domain)]
        rows = self._ordered(model, rows, order)
        start = 0 if self.ignore_offset else int(offset or 0)
        rows = rows[start : None if limit in (None, False) else start + int(limit)]
        return [r["id"] for r in rows]

    def search_count(self, model: str, domain: Any = None) -> int:
        return sum(self.matches(model, r, domain) for r in self._model(model).values())

    def search_read(
        self,
        model: str,
        domain: Any = None,
        fields: Any = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
    ) -> list[dict[str, Any]]:
        names = self._fields(model, fields)
        ids = self.search(model, domain, offset, limit, order)
        return [self._project(self.records[model][i], names) for i in ids]

    def read(self, model: str, ids: Any, fields: Any = None, *, uid: int = 1) -> list[dict[str, Any]]:
        table = self._model(model)
        ids = [ids] if isinstance(ids, int) else list(ids)
        absent = [i for i in ids if i not in table]
        if absent:
            raise missing(model, absent, uid)
        names = self._fields(model, fields)
        return [self._project(table[i], names) for i in ids]

    def create(self, model: str, vals: Any, *, uid: int = 1) -> Any:
        self._model(model)
        many = isinstance(vals, list)
        created = []
        for values in vals if many else [vals]:
            if not isinstance(values, dict):
                raise OdooError("builtins.TypeError", f"create() expects a dict of values, got {values!r}")
            if model == "mrp.workcenter.productivity":
                values = self._productivity(values, uid)
            for name in REQUIRED.get(model, ()):
                if values.get(name) in (None, False, ""):
                    raise OdooError(
                        "odoo.exceptions.ValidationError",
                        "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n"
                        f"Model: {LABELS.get(model, model)} ({model})\nField: {name}",
                    )
            record = self.add(model, values)
            self._link(model, record)
            created.append(record["id"])
        return created if many else created[0]

    def _productivity(self, values: dict[str, Any], uid: int) -> dict[str, Any]:
        """A time log: the work centre and production follow the work order; the duration is computed."""
        values = {"date_start": now_text(), **values}
        workorder = values.get("workorder_id")
        if workorder:
            found = self.read(
                "mrp.workorder", [workorder], ["workcenter_id", "production_id", "state"], uid=uid
            )[0]
            if found["state"] in ("done", "cancel"):
                raise OdooError(
                    "odoo.exceptions.UserError",
                    "You cannot log time on a work order that is done or cancelled.",
                )
            values.setdefault("workcenter_id", found["workcenter_id"][0])
            values["production_id"] = found["production_id"][0]
        start, end = values.get("date_start"), values.get("date_end")
        if start and end:
            seconds = (_moment(end) - _moment(start)).total_seconds()
            values["duration"] = round(seconds / 60, 2)
        return values

    def write(self, model: str, ids: Any, vals: Any, *, uid: int = 1) -> bool:
        table = self._model(model)
        ids = [ids] if isinstance(ids, int) else list(ids)
        absent = [i for i in ids if i not in table]
        if absent:
            raise missing(model, absent, uid)
        for rid in ids:
            self._assign(model, table[rid], dict(vals))
            table[rid]["write_date"] = now_text()
            self._link(model, table[rid])
        return True

    def unlink(self, model: str, ids: Any, *, uid: int = 1) -> bool:
        table = self._model(model)
        ids = [ids] if isinstance(ids, int) else list(ids)
        absent = [i for i in ids if i not in table]
        if absent:
            raise missing(model, absent, uid)
        for rid in ids:
            del table[rid]
        self._link(model, {})
        return True

    def call(self, model: Any, method: Any, args: list[Any], kwargs: dict[str, Any], uid: int) -> Any:
        """`execute_kw`'s dispatch: an unknown method, or arguments the method does not take, are the
        Python errors Odoo reports."""
        self._model(model)
        handler: Callable[..., Any] | None = (
            getattr(self, method, None) if method in ("search", "search_count", "search_read") else None
        )
        if method in ("read", "create", "write", "unlink"):
            handler = getattr(self, method)
            kwargs = {**kwargs, "uid": uid}
        if handler is None:
            raise OdooError(
                "builtins.AttributeError", f"The method '{method}' does not exist on the model '{model}'"
            )
        try:
            inspect.signature(handler).bind(model, *args, **kwargs)
        except TypeError as exc:
            raise OdooError("builtins.TypeError", f"{method}() {exc}") from None
        return handler(model, *args, **kwargs)


def _moment(text: Any) -> datetime:
    try:
        return datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise OdooError(
            "builtins.ValueError",
            f"time data {text!r} does not match format '%Y-%m-%d %H:%M:%S'",
        ) from None
