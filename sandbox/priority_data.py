"""Priority forms (field lists and keys), the record store, and its seeded demo data.

Forms, keys and fields follow ERP-FACTS' table and seed 004. Field names not in that material are
marked `ASSUMPTION`. Records keep insertion order (the internal auto-number order), which is also the
order a query without `$orderby` answers in (ASSUMPTION).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.base import seeded
from sandbox.odata import COMPANY_TZ

Record = dict[str, Any]
Key = tuple[Any, ...]
SUBS = "\x00subforms"  # hidden key of a record holding its sub-form tables; never rendered

CLOSED = "סגורה"  # work-order status "closed"
RELEASED = "מאושרת"  # ASSUMPTION: status of a released work order
DRAFT = "בהכנה"  # ASSUMPTION: status of a work order in preparation
EPOCH = datetime(2025, 1, 1, 8, 0, tzinfo=COMPANY_TZ)


@dataclass(frozen=True)
class FormSpec:
    """One Priority form: its key, its fields and its sub-forms."""

    name: str
    title: str
    key: tuple[str, ...]
    fields: tuple[str, ...]
    subforms: tuple[str, ...] = ()
    writable: bool = False
    text: bool = False  # a text sub-form: one entity with TEXT, not a collection


_ALINE = (
    "FORM",
    "KLINE",
    "SERIALNAME",
    "PARTNAME",
    "ACTNAME",
    "WORKCNAME",
    "USERID",
    "QUANT",
    "SQUANT",
    "MQUANT",
    "DEFECTCODE",
    "WARHSNAME",
    "STIME",
    "ETIME",
    "CURDATE",
)
_PART = ("PARTNAME", "PARTDES", "PART", "TYPE", "FAMILYNAME", "UNITNAME", "SERNFLAG", "BARCODE")

FORMS: dict[str, FormSpec] = {
    spec.name: spec
    for spec in (
        FormSpec(
            "SERIAL",
            'פק"עות',
            ("SERIALNAME",),
            (
                "SERIALNAME",
                "PARTNAME",
                "QUANT",
                "SERIALSTATUSDES",
                "REVNAME",
                "RELEASEDATE",
                "CLOSEDATE",
                "ORDNAME",
                "SERIAL",
                "UDATE",
            ),  # ASSUMPTION: UDATE, the last-change stamp for polling
            ("KITITEMS_SUBFORM", "SERACT_SUBFORM", "TRANSORDER_K_SUBFORM", "SERNTRANS_SUBFORM"),
            True,
        ),
        FormSpec(
            "KITITEMS_SUBFORM",
            "ערכות",
            ("KLINE",),
            ("KLINE", "PARTNAME", "ACTNAME", "QUANT", "TQUANT", "TBALANCE", "KITFLAG"),
            (),
            True,
        ),
        # ASSUMPTION: SERACT lines keyed by POS (the routing position), fields below.
        FormSpec(
            "SERACT_SUBFORM",
            'פעולות לפק"ע',
            ("POS",),
            ("POS", "ACTNAME", "ACTDES", "QUANT", "WORKCNAME"),
            (),
            True,
        ),
        # ASSUMPTION: issues to kits keyed by the transaction number TRANS; SERNUM is the serial
        # number of a serial-managed component issued.
        FormSpec(
            "TRANSORDER_K_SUBFORM",
            "ניפוק לערכות",
            ("TRANS",),
            ("TRANS", "KLINE", "PARTNAME", "QUANT", "WARHSNAME", "LOCNAME", "CURDATE", "SERNUM"),
            (),
            True,
        ),
        # ASSUMPTION: serial numbers of the work order keyed by SERNUM.
        FormSpec("SERNTRANS_SUBFORM", 'מכשירים לפק"ע', ("SERNUM",), ("SERNUM", "PARTNAME"), (), True),
        FormSpec(
            "SERNUMBERS",
            "כרטיס מכשיר",
            ("SERNUM", "PART"),
            ("SERNUM", "PART", "PARTNAME", "CUSTNAME", "STATUSNAME", "SERIALNAME"),
            (),
            True,
        ),
        FormSpec(
            "AFORM", "דווח יצור", ("FORMNAME",), ("FORMNAME", "FORM", "CURDATE"), ("ALINE_SUBFORM",), True
        ),
        FormSpec(
            "ALINE_SUBFORM",
            "פירוט דווח יצור",
            ("KLINE",),
            _ALINE,
            ("ALSERNTRANS_SUBFORM", "TRANSORDER_S_SUBFORM"),
            True,
        ),
        FormSpec(
            "ALINE_ONE",
            "פירוט דווח יצור",
            ("FORM", "KLINE"),
            _ALINE,
            ("ALSERNTRANS_SUBFORM", "TRANSORDER_S_SUBFORM"),
            True,
        ),
        FormSpec("ALSERNTRANS_SUBFORM", "מכשירים שדווחו", ("SERNUM",), ("SERNUM", "PARTNAME"), (), True),
        FormSpec(
            "TRANSORDER_S_SUBFORM",
            "ניפוק לדיווח",
            ("TRANS",),
            ("TRANS", "PARTNAME", "QUANT", "WARHSNAME", "LOCNAME"),
            (),
            True,
        ),
        FormSpec(
            "DOCUMENTS_Q",
            "קריאות שרות",
            ("DOCNO", "TYPE"),
            ("DOCNO", "TYPE", "CUSTNAME", "STARTDATE", "CALLSTATUSCODE", "SERNUM", "DETAILS"),
            ("DOCTEXT_Q_SUBFORM",),
            True,
        ),
        # ASSUMPTION: the fix-description text sub-form of DOCUMENTS_Q is named DOCTEXT_Q_SUBFORM.
        FormSpec("DOCTEXT_Q_SUBFORM", "תיאור תיקון", (), ("TEXT",), (), True, text=True),
        FormSpec("PART", "מוצרים", ("PARTNAME",), _PART),
        FormSpec("LOGPART", "כרטיס פריט", ("PARTNAME",), _PART),
        FormSpec("ACT", "פעולות", ("ACTNAME",), ("ACTNAME", "ACTDES", "ACT")),
        FormSpec(
            "WAREHOUSES", "מחסנים", ("WARHSNAME", "LOCNAME"), ("WARHSNAME", "LOCNAME", "WARHSDES", "WARHS")
        ),
        # ASSUMPTION: MALFUNCTIONS fields MALFCODE / MALFDES.
        FormSpec("MALFUNCTIONS", "קודי תקלה", ("MALFCODE",), ("MALFCODE", "MALFDES")),
        FormSpec("CALLSTATUSES", "סטטוסים לקריאות שירות", ("CALLSTATUSCODE",), ("CALLSTATUSCODE", "STATDES")),
    )
}
SUBFORMS = frozenset(name for spec in FORMS.values() for name in spec.subforms)
TOP_FORMS = frozenset(FORMS) - SUBFORMS


class Table:
    """The records of one form (or of one parent's sub-form), by key, in insertion order."""

    def __init__(self, spec: FormSpec, rows: Sequence[Record] = ()) -> None:
        self.spec = spec
        self.rows: dict[Key, Record] = {}
        for row in rows:
            self.rows[self.key_of(row)] = row

    def key_of(self, record: Record) -> Key:
        return tuple(record.get(k) for k in self.spec.key)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: Key) -> Record | None:
        return self.rows.get(key)

    def add(self, record: Record) -> None:
        self.rows[self.key_of(record)] = record

    def remove(self, key: Key) -> Record | None:
        return self.rows.pop(key, None)

    def blank(self) -> Record:
        return dict.fromkeys(self.spec.fields)


ChildLoader = Callable[[Record], list[Record]]


class Store:
    """All forms of one company; sub-form records are built on first access from `loaders`."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {name: Table(FORMS[name]) for name in TOP_FORMS}
        self.loaders: dict[str, ChildLoader] = {}
        self.counters: dict[str, int] = {}

    def fields(self, form: str) -> Sequence[str]:
        return FORMS[form].fields

    def subforms(self, form: str) -> Sequence[str]:
        return FORMS[form].subforms

    def child(self, parent: Record, subform: str) -> Table:
        """The sub-form table of one parent record (kept on the record under a hidden key)."""
        subs = parent.setdefault(SUBS, {})
        table = subs.get(subform)
        if table is None:
            loader = self.loaders.get(subform)
            table = subs[subform] = Table(FORMS[subform], loader(parent) if loader else ())
        return table

    def has_child(self, parent: Record, subform: str) -> bool:
        return subform in parent.get(SUBS, {})

    def new_children(self, form: str, parent: Record) -> None:
        """Give a newly written record empty sub-forms, so no seeded lines are invented for it."""
        subs = parent.setdefault(SUBS, {})
        for name in FORMS[form].subforms:
            subs.setdefault(name, Table(FORMS[name]))

    def next_number(self, name: str, start: int = 1) -> int:
        value = self.counters.get(name, start - 1) + 1
        self.counters[name] = value
        return value


def stamp(moment: datetime) -> str:
    """Priority's date-time format: `YYYY-MM-DDTHH:MM:SS+HH:MM` in the company time zone."""
    return moment.astimezone(COMPANY_TZ).replace(microsecond=0).isoformat()


_HEBREW = ("לוח בקרה", "מארז אלומיניום", "כבל חשמל", "ספק כוח", "מסך מגע", "בורג נירוסטה", "חיישן טמפרטורה")
_ENGLISH = (
    "Control board",
    "Aluminium housing",
    "Power cable",
    "Power supply",
    "Touch screen",
    "Steel screw",
    "Temperature sensor",
)
ACTS = (("ASSY", "הרכבה"), ("TEST", "בדיקה"), ("PACK", "אריזה"), ("SMT", "הלחמה"), ("QC", "בקרת איכות"))
ROUTING = ("ASSY", "TEST", "PACK")
WAREHOUSES = (
    ("MAIN", "0", "מחסן ראשי"),
    ("MAIN", "A1", "מחסן ראשי - מדף A1"),
    ("WIP", "0", "רצפת ייצור"),
    ("FG", "0", "מוצרים גמורים"),
    ("MRB", "0", "מחסן פסולים"),
)
MALFUNCTIONS = (
    ("M01", "לא נדלק"),
    ("M02", "מסך שבור"),
    ("M03", "רעש חריג"),
    ("M04", "התחממות"),
    ("M05", "תקלת תקשורת"),
)
CALLSTATUSES = (("חדשה", "קריאה חדשה"), ("בטיפול", "בטיפול טכנאי"), ("סגורה", "קריאה סגורה"))
CUSTOMERS = tuple(f"C{1000 + i}" for i in range(1, 41))


def populate(store: Store, size: int, seed: int) -> None:
    """Fill `store` with `size` work orders and proportional parts, cards and service calls."""
    rng = seeded(seed, "priority")
    t = store.tables
    n_fg = max(10, min(400, size // 50))
    n_comp = max(30, min(1600, size // 10))
    parts: list[Record] = []
    for i in range(n_fg + n_comp):
        fg = i < n_fg
        name = f"FG-{i + 1:04d}" if fg else f"C-{i - n_fg + 1:05d}"
        words = _HEBREW if i % 3 == 0 else _ENGLISH
        parts.append(
            {
                "PARTNAME": name,
                "PARTDES": f"{words[i % len(words)]} {i + 1}",
                "PART": i + 1,
                "TYPE": "P" if fg else "R",
                "FAMILYNAME": "FG" if fg else "COMP",
                "UNITNAME": "יח'",
                "SERNFLAG": "Y" if fg or i % 7 == 0 else "",
                "BARCODE": f"729{i + 1:010d}",
            }
        )
    store.counters["PART"] = len(parts)
    for form in ("PART", "LOGPART"):
        t[form] = Table(FORMS[form], parts)  # the same records: LOGPART is the catalogue view of PART
    t["ACT"] = Table(
        FORMS["ACT"], [{"ACTNAME": a, "ACTDES": d, "ACT": i + 1} for i, (a, d) in enumerate(ACTS)]
    )
    t["WAREHOUSES"] = Table(
        FORMS["WAREHOUSES"],
        [
            {"WARHSNAME": w, "LOCNAME": loc, "WARHSDES": d, "WARHS": i + 1}
            for i, (w, loc, d) in enumerate(WAREHOUSES)
        ],
    )
    t["MALFUNCTIONS"] = Table(FORMS["MALFUNCTIONS"], [{"MALFCODE": c, "MALFDES": d} for c, d in MALFUNCTIONS])
    t["CALLSTATUSES"] = Table(
        FORMS["CALLSTATUSES"], [{"CALLSTATUSCODE": c, "STATDES": d} for c, d in CALLSTATUSES]
    )

    fgs = [p["PARTNAME"] for p in parts[:n_fg]]
    orders = []
    random, choice, randint = rng.random, rng.choice, rng.randint
    minute = timedelta(minutes=1)
    for i in range(size):
        released = EPOCH + minute * (i * 3)
        roll = random()
        status = CLOSED if roll < 0.1 else DRAFT if roll < 0.2 else RELEASED
        orders.append(
            {
                "SERIALNAME": f"WO-{i + 1:06d}",
                "PARTNAME": choice(fgs),
                "QUANT": randint(1, 50),
                "SERIALSTATUSDES": status,
                "REVNAME": choice(("A", "B")),
                "RELEASEDATE": stamp(released),
                "CLOSEDATE": stamp(released + minute * 600) if status == CLOSED else None,
                "ORDNAME": f"SO25{i // 3 + 1:06d}" if roll < 0.7 else "",
                "SERIAL": i + 1,
                "UDATE": stamp(released + minute),
            }
        )
    t["SERIAL"] = Table(FORMS["SERIAL"], orders)
    store.counters["SERIAL"] = size
    store.counters["UDATE"] = int((EPOCH + minute * (size * 3 + 1)).timestamp())

    cards = []
    for i in range(max(20, size // 10)):
        part = parts[i % n_fg]
        cards.append(
            {
                "SERNUM": f"SN{i + 1:07d}",
                "PART": part["PART"],
                "PARTNAME": part["PARTNAME"],
                "CUSTNAME": choice(CUSTOMERS),
                "STATUSNAME": "פעיל",
                "SERIALNAME": f"WO-{i % max(size, 1) + 1:06d}" if size else None,
            }
        )
    t["SERNUMBERS"] = Table(FORMS["SERNUMBERS"], cards)
    calls = []
    for i in range(max(10, size // 20)):
        calls.append(
            {
                "DOCNO": f"SC25{i + 1:06d}",
                "TYPE": "Q",
                "CUSTNAME": choice(CUSTOMERS),
                "STARTDATE": stamp(EPOCH + minute * (i * 17)),
                "CALLSTATUSCODE": CALLSTATUSES[i % len(CALLSTATUSES)][0],
                "SERNUM": cards[i % len(cards)]["SERNUM"],
                "DETAILS": MALFUNCTIONS[i % 5][1],
            }
        )
    t["DOCUMENTS_Q"] = Table(FORMS["DOCUMENTS_Q"], calls)
    store.counters["DOCNO"] = len(calls)
    store.counters["FORM"] = 0
    store.counters["TRANS"] = 0

    components = [p["PARTNAME"] for p in parts[n_fg:]]
    store.loaders.update(
        KITITEMS_SUBFORM=lambda wo: _kit(seed, wo, components),
        SERACT_SUBFORM=lambda wo: [
            {
                "POS": 10 * (n + 1),
                "ACTNAME": a,
                "ACTDES": dict(ACTS)[a],
                "QUANT": wo["QUANT"],
                "WORKCNAME": "WC1",
            }
            for n, a in enumerate(ROUTING)
        ],
        DOCTEXT_Q_SUBFORM=lambda call: [{"TEXT": None}],
    )


def _kit(seed: int, wo: Record, components: list[str]) -> list[Record]:
    """Kit lines of a seeded work order, derived from the seed and the work-order name alone."""
    rng = seeded(seed, "kit", wo["SERIALNAME"])
    issued = wo["SERIALSTATUSDES"] != DRAFT
    lines = []
    for n in range(rng.randint(2, 4)):
        quant = wo["QUANT"] * rng.randint(1, 4)
        tquant = quant if issued else 0
        lines.append(
            {
                "KLINE": n + 1,
                "PARTNAME": rng.choice(components),
                "ACTNAME": ROUTING[n % 2],
                "QUANT": quant,
                "TQUANT": tquant,
                "TBALANCE": quant - tquant,
                "KITFLAG": "Y",
            }
        )
    return lines
