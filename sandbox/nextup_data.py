"""The NextUp sandbox company: seeded articles, partners, warehouses, stock and production orders.

`Company` is plain data the operations in `nextup` and `nextup_production` change; `seed_company`
builds one deterministically from (size, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.base import seeded

__all__ = ["Company", "NextUpError", "seed_company"]


class NextUpError(Exception):
    """A business error: answered HTTP 200 `{"Result": false, "Error": message}`."""


@dataclass
class Company:
    """One company (`Database`): its records, stock by (article code, warehouse id) and documents."""

    database: str
    articles: dict[str, dict[str, Any]] = field(default_factory=dict)
    partners: dict[int, dict[str, Any]] = field(default_factory=dict)
    warehouses: dict[int, dict[str, Any]] = field(default_factory=dict)
    stock: dict[tuple[str, int], float] = field(default_factory=dict)
    documents: dict[int, dict[str, Any]] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    production_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    next_id: int = 1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def number(self, prefix: str) -> str:
        """Next document number of a series, e.g. COM-000556."""
        self.series[prefix] = self.series.get(prefix, 0) + 1
        return f"{prefix}-{self.series[prefix]:06d}"

    def article(self, code: Any) -> dict[str, Any]:
        found = self.articles.get(str(code))
        if found is None:
            # ASSUMPTION: wording of the unknown-article error.
            raise NextUpError(f'Articolul cu codul "{code}" nu exista.')
        return found

    def warehouse(self, wid: Any) -> dict[str, Any]:
        found = self.warehouses.get(wid) if isinstance(wid, int) else None
        if found is None:
            # ASSUMPTION: wording of the unknown-warehouse error.
            raise NextUpError(f"Depozitul cu Id {wid} nu exista.")
        return found

    def move(self, changes: list[tuple[str, int, float]]) -> None:
        """Apply stock deltas atomically; refuses the whole set when one would go below zero."""
        totals: dict[tuple[str, int], float] = {}
        for code, wid, delta in changes:
            totals[(code, wid)] = totals.get((code, wid), 0.0) + delta
        for (code, wid), delta in totals.items():
            have = self.stock.get((code, wid), 0.0)
            if have + delta < -1e-9:
                # ASSUMPTION: the text after "Stoc insuficient pentru" (ERP-FACTS gives only the start).
                raise NextUpError(
                    f'Stoc insuficient pentru articolul "{code}" in depozitul {wid} '
                    f"(disponibil: {_num(have)}, necesar: {_num(-delta)})."
                )
        for key, delta in totals.items():
            self.stock[key] = self.stock.get(key, 0.0) + delta


def _num(value: float) -> str:
    return f"{value:g}"


ARTICLES = [
    ("MP-001", "Șurub M6 inox", "buc"),
    ("MP-002", "Piuliță M6", "buc"),
    ("MP-003", "Placă electronică principală", "buc"),
    ("MP-004", "Carcasă aluminiu", "buc"),
    ("MP-005", "Cablu alimentare 2 m", "buc"),
    ("MP-006", "Garnitură etanșare", "buc"),
    ("MP-007", "Senzor temperatură", "buc"),
    ("MP-008", "Vopsea epoxidică gri", "kg"),
    ("PF-001", "Controler climatizare CX-1", "buc"),
    ("PF-002", "Modul comunicație țesătorie", "buc"),
    ("PF-003", "Panou frontal încălzire", "buc"),
    ("PF-004", "Ansamblu motor ventilație", "buc"),
]
PARTNERS = [
    ("Alfa Construcții SRL", "RO14399840", "Brașov"),
    ("Electro Mureș SA", "RO1234567", "Târgu Mureș"),
    ("Țesătoria Bănățeană SRL", "RO30112233", "Timișoara"),
    ("Fabrica de Mobilă Iași SA", "RO2113344", "Iași"),
    ("Întreprinderea Oțelul SRL", "RO40555666", "Galați"),
    ("Ştiinţa Aplicată SRL", "RO18777888", "Cluj-Napoca"),
]
WAREHOUSES = [(1, "Depozit materii prime"), (2, "Depozit produse finite"), (3, "Depozit producție")]
ROUTING = [("DEB", "Debitare", "CL-01"), ("ASM", "Asamblare", "CL-02"), ("TST", "Testare finală", "CL-03")]
DATABASE = "99999999"
INTERNAL_PARTNER = 1


def seed_company(size: int, seed: int, database: str = DATABASE) -> Company:
    """The sandbox company with `size` production orders."""
    rng = seeded(seed, "nextup")
    co = Company(database=database)
    for i, (code, name, unit) in enumerate(ARTICLES):
        aid = co.new_id()
        co.articles[code] = {
            "Id": aid,
            "Code": code,
            "Name": name,
            "BarCode": f"594{rng.randint(10**9, 10**10 - 1)}",
            "CategoryId": 1 if code.startswith("MP") else 2,
            "UnitOfMeasure": unit,
            "VATRateId": 1,
            "Price": round(rng.uniform(2, 60) if code.startswith("MP") else rng.uniform(300, 900), 2),
            "Active": True,
        }
        if code.startswith("MP"):
            co.stock[(code, 1)] = float(rng.randint(20, 200))
            co.stock[(code, 3)] = float(rng.randint(0, 30)) if i % 2 else 0.0
    for wid, name in WAREHOUSES:
        co.warehouses[wid] = {"Id": wid, "Name": name}
    # The company's own production partner, whom consumption delivery notes go to (sandbox data: a
    # real company creates one and sets its Id in the binding's vars.consumption.partner_id).
    co.partners[INTERNAL_PARTNER] = {
        "Id": INTERNAL_PARTNER,
        "Code": "P0000",
        "Name": "Consum intern producție",
        "FiscalCode": "",
        "City": "",
        "Country": "RO",
        "IsClient": False,
        "IsSupplier": False,
    }
    for n, (name, fiscal, city) in enumerate(PARTNERS):
        pid = co.new_id()
        co.partners[pid] = {
            "Id": pid,
            "Code": f"P{n + 1:04d}",
            "Name": name,
            "FiscalCode": fiscal,
            "City": city,
            "Country": "RO",
            "IsClient": True,
            "IsSupplier": n % 3 == 0,
        }
    # ASSUMPTION: series start where a company that has traded for a while would be.
    co.series = {"COM": 555, "FCT": 1203, "AVZ": 877, "TRF": 64, "RP": 0, "CP": 120}
    co.rates = {"RON": 1.0, "EUR": 4.9764, "USD": 4.5815, "GBP": 5.8312}
    finished = [a for a in co.articles if a.startswith("PF")]
    materials = [a for a in co.articles if a.startswith("MP")]
    clients = [p for p in co.partners.values() if p["Id"] != INTERNAL_PARTNER]
    for i in range(size):
        code = co.number("CP")
        qty = rng.randint(2, 10)
        comps = rng.sample(materials, 3)
        client = clients[i % len(clients)]
        co.production_orders[code] = {
            "Id": co.new_id(),
            "Code": code,
            "ArticleCode": finished[i % len(finished)],
            "Quantity": qty,
            "ReportedQuantity": 0,
            "RejectedQuantity": 0,
            "Status": "Lansata",
            "Customer": {"Code": client["Code"], "Name": client["Name"]},
            "Project": f"PRJ-{2025}-{i % 3 + 1:03d}",
            "StartDate": f"2025-03-{i % 28 + 1:02d}",
            "EndDate": f"2025-04-{i % 28 + 1:02d}",
            "WarehouseId": 2,
            "Components": [
                {
                    "ArticleCode": c,
                    "Quantity": qty * rng.randint(1, 4),
                    "Lot": f"L{rng.randint(1000, 9999)}" if n == 0 else None,
                    "Serials": [],
                }
                for n, c in enumerate(comps)
            ],
            "Operations": [
                {"Code": oc, "Name": on, "WorkCenter": wc, "Position": 10 * (n + 1)}
                for n, (oc, on, wc) in enumerate(ROUTING)
            ],
            "LastModified": f"2025-03-{i % 28 + 1:02d}T08:{i % 60:02d}:00",
        }
    return co
