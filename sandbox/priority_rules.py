"""Priority's business rules: what a write must satisfy, and what it changes elsewhere.

A refused write raises `InterfaceError`, answered as
`{"FORM": {"@TYPE": "<FORM>", "InterfaceErrors": {"text": "<Hebrew message>"}}}`.
ASSUMPTION: that body goes with status 400 (ERP-FACTS: the status is not documented).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from sandbox.odata import COMPANY_TZ
from sandbox.priority_data import CLOSED, RELEASED, Record, Store, stamp

__all__ = ["InterfaceError", "Rules", "messages"]


class InterfaceError(Exception):
    """A write the form refuses, with the form's own (Hebrew) message."""

    def __init__(self, form: str, text: str) -> None:
        super().__init__(text)
        self.form = form
        self.text = text


class messages:  # noqa: N801 - a namespace of message templates
    """The Hebrew texts of the refusals (ASSUMPTION: wording; Priority's are localised like these)."""

    NO_ORDER = 'פק"ע {} לא קיימת'
    NO_PART = "מוצר {} לא קיים"
    OVER_BALANCE = 'הכמות המדווחת עולה על יתרת הפק"ע'
    CLOSED_ORDER = 'פק"ע {} סגורה'
    REQUIRED = "חסר ערך בשדה {}"
    NO_ACT = "פעולה {} לא קיימת"
    NO_WAREHOUSE = "מחסן {} לא קיים"
    NO_STATUS = "סטטוס {} לא קיים"
    NO_SERIAL = "מכשיר {} לא קיים"
    BAD_TIME = "ערך לא חוקי בשדה {}: יש להזין שעה בתבנית HH:MM"
    BAD_NUMBER = "ערך לא חוקי בשדה {}"
    TOO_LONG = "הערך בשדה {} ארוך מדי"


_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_NUMERIC = ("QUANT", "SQUANT", "MQUANT", "TQUANT")


class Rules:
    """Checks and side effects of writes on one company's store."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock
        # (work order, operation) -> good quantity reported
        self.reported: dict[tuple[str, str], float] = defaultdict(float)

    # -- helpers ------------------------------------------------------------------------------
    def now(self) -> str:
        return stamp(datetime.fromtimestamp(self.clock(), COMPANY_TZ))

    def touch(self, order: Record) -> None:
        """Move the work order's UDATE forward.

        ASSUMPTION: UDATE has second resolution and strictly increases on every write, so a client
        polling `UDATE gt <last seen>` sees each change.
        """
        counters = self.store.counters
        counters["UDATE"] = max(int(self.clock()), counters.get("UDATE", 0) + 1)
        order["UDATE"] = stamp(datetime.fromtimestamp(counters["UDATE"], COMPANY_TZ))

    def _table(self, form: str) -> Any:
        return self.store.tables[form]

    def _require(self, form: str, record: Record, *names: str) -> None:
        for name in names:
            if record.get(name) in (None, ""):
                raise InterfaceError(form, messages.REQUIRED.format(name))

    def _part(self, form: str, name: Any) -> Record:
        part = self._table("PART").get((name,))
        if part is None:
            raise InterfaceError(form, messages.NO_PART.format(name))
        return part

    def _order(self, form: str, name: Any) -> Record:
        order = self._table("SERIAL").get((name,))
        if order is None:
            raise InterfaceError(form, messages.NO_ORDER.format(name))
        return order

    def _numbers(self, form: str, record: Record) -> None:
        for name in _NUMERIC:
            value = record.get(name)
            if (
                name in record
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0)
            ):
                raise InterfaceError(form, messages.BAD_NUMBER.format(name))

    def _optional_refs(self, form: str, record: Record) -> None:
        if record.get("ACTNAME") and self._table("ACT").get((record["ACTNAME"],)) is None:
            raise InterfaceError(form, messages.NO_ACT.format(record["ACTNAME"]))
        warehouse = record.get("WARHSNAME")
        if warehouse and not any(w["WARHSNAME"] == warehouse for w in self._table("WAREHOUSES")):
            raise InterfaceError(form, messages.NO_WAREHOUSE.format(warehouse))

    # -- inserts ------------------------------------------------------------------------------
    def check_insert(self, form: str, record: Record, parent: Record | None) -> None:
        """Validate a new record and fill its internal and default fields."""
        self._numbers(form, record)
        check = getattr(self, f"_insert_{form.removesuffix('_SUBFORM').lower()}", None)
        if check is not None:
            check(form, record, parent)

    def _insert_serial(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "SERIALNAME", "PARTNAME", "QUANT")
        if len(str(r["SERIALNAME"])) > 22:
            raise InterfaceError(form, messages.TOO_LONG.format("SERIALNAME"))
        self._part(form, r["PARTNAME"])
        r["SERIAL"] = self.store.next_number("SERIAL")
        r["SERIALSTATUSDES"] = r.get("SERIALSTATUSDES") or RELEASED
        r["RELEASEDATE"] = r.get("RELEASEDATE") or self.now()
        self.touch(r)

    def _insert_kititems(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "PARTNAME")
        self._part(form, r["PARTNAME"])
        self._optional_refs(form, r)
        r["KLINE"] = r.get("KLINE") or self._next_in(parent, form, "KLINE", 1)
        r["QUANT"] = r.get("QUANT") or 0
        r["TQUANT"] = r.get("TQUANT") or 0
        r["TBALANCE"] = r["QUANT"] - r["TQUANT"]
        r["KITFLAG"] = r.get("KITFLAG") if r.get("KITFLAG") is not None else "Y"

    def _insert_seract(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "ACTNAME")
        self._optional_refs(form, r)
        r["POS"] = r.get("POS") or self._next_in(parent, form, "POS", 10)
        r["ACTDES"] = r.get("ACTDES") or self._table("ACT").get((r["ACTNAME"],))["ACTDES"]
        r["QUANT"] = r.get("QUANT") if r.get("QUANT") is not None else (parent or {}).get("QUANT")

    def _insert_transorder_k(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "PARTNAME", "QUANT")
        self._part(form, r["PARTNAME"])
        self._optional_refs(form, r)
        r["TRANS"] = self.store.next_number("TRANS")
        r["CURDATE"] = r.get("CURDATE") or self.now()

    def _insert_serntrans(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "SERNUM")
        r["PARTNAME"] = r.get("PARTNAME") or (parent or {}).get("PARTNAME")
        self._part(form, r["PARTNAME"])

    def _insert_sernumbers(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "SERNUM", "PARTNAME")
        r["PART"] = self._part(form, r["PARTNAME"])["PART"]
        if r.get("SERIALNAME"):
            self._order(form, r["SERIALNAME"])
        r["STATUSNAME"] = r.get("STATUSNAME") or "פעיל"

    def _insert_aform(self, form: str, r: Record, parent: Record | None) -> None:
        r["FORM"] = self.store.next_number("FORM")
        # ASSUMPTION: report documents are numbered PR + 8 digits when FORMNAME is not given.
        r["FORMNAME"] = r.get("FORMNAME") or f"PR{r['FORM']:08d}"
        r["CURDATE"] = r.get("CURDATE") or self.now()

    def _insert_aline_one(self, form: str, r: Record, parent: Record | None) -> None:
        self.check_line(form, r, previous=0.0)
        # ASSUMPTION: a POST to ALINE_ONE opens its own AFORM document; FORM and KLINE are assigned by
        # the server (any value sent is ignored) and the reply carries both: key ALINE_ONE(FORM=n,KLINE=1).
        header: Record = {"FORMNAME": None, "FORM": None, "CURDATE": None}
        self._insert_aform("AFORM", header, None)
        r["FORM"], r["KLINE"] = header["FORM"], 1
        r["CURDATE"] = r.get("CURDATE") or header["CURDATE"]
        self.store.tables["AFORM"].add(header)
        self.store.new_children("AFORM", header)
        self.store.child(header, "ALINE_SUBFORM").add(r)

    def _insert_aline(self, form: str, r: Record, parent: Record | None) -> None:
        self.check_line(form, r, previous=0.0)
        assert parent is not None
        r["FORM"] = parent["FORM"]
        r["KLINE"] = self._next_in(parent, form, "KLINE", 1)
        r["CURDATE"] = r.get("CURDATE") or self.now()
        self.store.tables["ALINE_ONE"].add(r)

    def _insert_documents_q(self, form: str, r: Record, parent: Record | None) -> None:
        self._require(form, r, "CALLSTATUSCODE")
        if self._table("CALLSTATUSES").get((r["CALLSTATUSCODE"],)) is None:
            raise InterfaceError(form, messages.NO_STATUS.format(r["CALLSTATUSCODE"]))
        if r.get("SERNUM"):
            card = next((c for c in self._table("SERNUMBERS") if c["SERNUM"] == r["SERNUM"]), None)
            if card is None:
                raise InterfaceError(form, messages.NO_SERIAL.format(r["SERNUM"]))
            r["CUSTNAME"] = r.get("CUSTNAME") or card["CUSTNAME"]
        # ASSUMPTION: DOCNO is numbered SC25 + 6 digits when not given; TYPE defaults to "Q".
        r["DOCNO"] = r.get("DOCNO") or f"SC25{self.store.next_number('DOCNO'):06d}"
        r["TYPE"] = r.get("TYPE") or "Q"
        r["STARTDATE"] = r.get("STARTDATE") or self.now()

    def _next_in(self, parent: Record | None, form: str, name: str, step: int) -> int:
        if parent is None:
            return step
        values = [row[name] or 0 for row in self.store.child(parent, form)]
        return max(values, default=0) + step

    # -- production reports ---------------------------------------------------------------------
    def check_line(self, form: str, r: Record, previous: float) -> None:
        """A production report line; `previous` is the quantity it already counted (on update)."""
        self._require(form, r, "SERIALNAME", "PARTNAME")
        order = self._order(form, r["SERIALNAME"])
        self._part(form, r["PARTNAME"])
        if order["SERIALSTATUSDES"] == CLOSED or order.get("CLOSEDATE"):
            raise InterfaceError(form, messages.CLOSED_ORDER.format(order["SERIALNAME"]))
        self._optional_refs(form, r)
        for name in ("STIME", "ETIME"):
            if r.get(name) and not _HHMM.fullmatch(str(r[name])):
                raise InterfaceError(form, messages.BAD_TIME.format(name))
        for name in ("QUANT", "SQUANT", "MQUANT"):
            r[name] = r.get(name) or 0
        # ASSUMPTION: each operation (ACTNAME) has its own balance, QUANT(SERIAL) minus the good units
        # (QUANT) already reported on that operation, as in routed production; rejects do not count.
        balance = order["QUANT"] - (self.reported[_report_key(r)] - previous)
        if r["QUANT"] > balance:
            raise InterfaceError(form, messages.OVER_BALANCE)

    def after_insert(self, form: str, record: Record, parent: Record | None) -> None:
        if form in ("ALINE_ONE", "ALINE_SUBFORM"):
            self.reported[_report_key(record)] += record["QUANT"]
            self.touch(self._table("SERIAL").get((record["SERIALNAME"],)))
        elif form == "TRANSORDER_K_SUBFORM" and parent is not None and record.get("KLINE"):
            kit = self.store.child(parent, "KITITEMS_SUBFORM").get((record["KLINE"],))
            if kit is not None:
                kit["TQUANT"] = (kit["TQUANT"] or 0) + record["QUANT"]
                kit["TBALANCE"] = kit["QUANT"] - kit["TQUANT"]
        if parent is not None and "SERIALNAME" in parent and "SERIAL" in parent:
            self.touch(parent)

    # -- updates and deletes ------------------------------------------------------------------
    def check_update(self, form: str, old: Record, new: Record, parent: Record | None) -> None:
        """Validate a PATCH (the merged record `new`) and apply derived fields."""
        self._numbers(form, new)
        if form == "SERIAL":
            if new["PARTNAME"] != old["PARTNAME"]:
                self._part(form, new["PARTNAME"])
            if new["SERIALSTATUSDES"] == CLOSED and not new.get("CLOSEDATE"):
                new["CLOSEDATE"] = self.now()
            self.touch(new)
        elif form in ("ALINE_ONE", "ALINE_SUBFORM"):
            previous = old["QUANT"] if _report_key(new) == _report_key(old) else 0.0
            self.check_line(form, new, previous)
        elif form == "SERNUMBERS" and new["PARTNAME"] != old["PARTNAME"]:
            new["PART"] = self._part(form, new["PARTNAME"])["PART"]
        elif form == "KITITEMS_SUBFORM":
            new["TBALANCE"] = (new["QUANT"] or 0) - (new["TQUANT"] or 0)
        elif form == "DOCUMENTS_Q" and self._table("CALLSTATUSES").get((new["CALLSTATUSCODE"],)) is None:
            raise InterfaceError(form, messages.NO_STATUS.format(new["CALLSTATUSCODE"]))

    def after_update(self, form: str, old: Record, new: Record, parent: Record | None) -> None:
        if form in ("ALINE_ONE", "ALINE_SUBFORM"):
            self.reported[_report_key(old)] -= old["QUANT"]
            self.reported[_report_key(new)] += new["QUANT"]
            for name in {old["SERIALNAME"], new["SERIALNAME"]}:
                self.touch(self._table("SERIAL").get((name,)))
        if parent is not None and "SERIAL" in parent and "SERIALNAME" in parent:
            self.touch(parent)

    def after_delete(self, form: str, record: Record, parent: Record | None) -> None:
        """Undo what the record counted: a deleted report restores the work-order balance."""
        store = self.store
        if form in ("ALINE_ONE", "ALINE_SUBFORM"):
            self.reported[_report_key(record)] -= record["QUANT"]
            order = self._table("SERIAL").get((record["SERIALNAME"],))
            if order is not None:
                self.touch(order)
            store.tables["ALINE_ONE"].remove((record["FORM"], record["KLINE"]))
            header = next((h for h in store.tables["AFORM"] if h["FORM"] == record["FORM"]), None)
            if header is not None:
                store.child(header, "ALINE_SUBFORM").remove((record["KLINE"],))
        elif form == "AFORM":
            for line in list(store.child(record, "ALINE_SUBFORM")):
                self.after_delete("ALINE_SUBFORM", line, record)
        elif form == "TRANSORDER_K_SUBFORM" and parent is not None and record.get("KLINE"):
            # A deleted issue gives back to the kit line what its insert added to TQUANT.
            kit = store.child(parent, "KITITEMS_SUBFORM").get((record["KLINE"],))
            if kit is not None:
                kit["TQUANT"] = (kit["TQUANT"] or 0) - record["QUANT"]
                kit["TBALANCE"] = kit["QUANT"] - kit["TQUANT"]
        if parent is not None and "SERIAL" in parent and "SERIALNAME" in parent:
            self.touch(parent)


def _report_key(record: Record) -> tuple[str, str]:
    """Which balance a production report line counts against: its work order and operation."""
    return (record["SERIALNAME"], record.get("ACTNAME") or "")
