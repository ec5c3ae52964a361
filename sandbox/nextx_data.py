"""The NextX sandbox store: branches, products with stock per branch, customers, purchases, sells and
the (assumed) production orders, with the validation rules the simulator applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.base import seeded

__all__ = ["Invalid", "NextXStore", "seed_store"]


class Invalid(Exception):
    """A request the store refuses: answered 422 with per-field errors."""

    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.message = message
        self.errors = {field_name: [message]}


def _required(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if body.get(name) in (None, "", []):
            raise Invalid(f"The {name} field is required.", name)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"The {name} must be an integer.", name) from None


@dataclass
class NextXStore:
    """All records of the tenant; stock is keyed by (product id, branch id)."""

    branches: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    stock: dict[tuple[int, int], float] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[int, dict[str, Any]] = field(default_factory=dict)
    sells: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    consumptions: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "branches": list(self.branches.values()),
            "products": list(self.products.values()),
            "stock": [
                {"product_id": p, "branch_id": b, "qty": q} for (p, b), q in sorted(self.stock.items())
            ],
            "customers": list(self.customers.values()),
            "purchases": list(self.purchases.values()),
            "sells": list(self.sells.values()),
            "production_orders": list(self.orders.values()),
            "production_reports": self.reports,
            "consumptions": self.consumptions,
        }

    def branch_param(self, raw: Any) -> int:
        if raw in (None, ""):
            raise Invalid("The branch_id field is required.", "branch_id")
        branch = _int(raw, "branch_id")
        if branch not in self.branches:
            raise Invalid("The selected branch_id is invalid.", "branch_id")
        return branch

    def get(self, kind: str, raw_id: Any) -> dict[str, Any]:
        record = getattr(self, kind).get(_int(raw_id, "id"))
        if record is None:
            raise KeyError(kind[:-1].capitalize())
        return record

    # -- products -------------------------------------------------------------------------------
    def product_row(self, product: dict[str, Any], branch: int) -> dict[str, Any]:
        return {**product, "qty_available": self.stock.get((product["id"], branch), 0.0)}

    def product_rows(self, branch: int, search: str | None, types: list[str]) -> list[dict[str, Any]]:
        term = (search or "").lower()
        return [
            self.product_row(p, branch)
            for p in self.products.values()
            if (not term or term in f"{p['product_fullname']} {p['product_code']} {p['sku']}".lower())
            and (not types or p["product_type"] in types)
        ]

    def product_detail(self, variation: Any, branch: int) -> dict[str, Any]:
        if variation in (None, ""):
            raise Invalid("The variation_id field is required.", "variation_id")
        vid = _int(variation, "variation_id")
        product = next((p for p in self.products.values() if p["variations_id"] == vid), None)
        if product is None:
            raise KeyError("Product")
        return self.product_row(product, branch)

    def add_product(self, body: dict[str, Any]) -> dict[str, Any]:
        _required(body, "name", "branch_id")
        branch = self.branch_param(body["branch_id"])
        pid = max(self.products, default=0) + 1
        code = body.get("code") or f"SP{pid:06d}"
        if any(p["product_code"] == code for p in self.products.values()):
            raise Invalid("The code has already been taken.", "code")
        product = _product(
            pid,
            code,
            body.get("sku") or code,
            body["name"],
            body.get("sell_price", 0),
            body.get("purchase_price", 0),
            body.get("type") or "single",
        )
        self.products[pid] = product
        self.stock[(pid, branch)] = float(body.get("qty_begin_stock") or 0)
        return self.product_row(product, branch)

    # -- customers ------------------------------------------------------------------------------
    def add_customer(self, body: dict[str, Any]) -> None:
        _required(body, "name")
        if body.get("type", "customer") not in ("customer", "supplier"):
            raise Invalid("The selected type is invalid.", "type")
        cid = max(self.customers, default=0) + 1
        self.customers[cid] = {
            "id": cid,
            "name": body["name"],
            "code": f"KH{cid:06d}",
            "mobile": body.get("mobile") or "",
            "email": body.get("email") or "",
            "address": body.get("address") or "",
            "tax_number": body.get("tax_number") or "",
            "type": body.get("type", "customer"),
            "branch_id": body.get("branch_id"),
        }

    # -- purchases and sells --------------------------------------------------------------------
    def _lines(self, body: dict[str, Any]) -> list[tuple[int, float]]:
        _required(body, "products")
        lines = []
        for n, line in enumerate(body["products"]):
            pid = _int(line.get("product_id"), f"products.{n}.product_id")
            if pid not in self.products:
                raise Invalid(f"The selected products.{n}.product_id is invalid.", f"products.{n}.product_id")
            qty = line.get("quantity")
            if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0:
                raise Invalid(f"The products.{n}.quantity must be greater than 0.", f"products.{n}.quantity")
            lines.append((pid, float(qty)))
        return lines

    def move(self, branch: int, deltas: list[tuple[int, float]]) -> None:
        for pid, delta in deltas:
            have = self.stock.get((pid, branch), 0.0)
            if have + delta < -1e-9:
                # ASSUMPTION: NextX refuses to sell or consume more than the branch holds.
                code = self.products[pid]["product_code"]
                raise Invalid(f"Insufficient stock for product {code} (available: {have:g}).", "products")
        for pid, delta in deltas:
            self.stock[(pid, branch)] = self.stock.get((pid, branch), 0.0) + delta

    def add_order(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        # ASSUMPTION: branch_id is required on writes too (stock is kept per branch).
        _required(body, "branch_id", "transaction_date")
        branch = self.branch_param(body["branch_id"])
        lines = self._lines(body)
        table = self.purchases if kind == "purchase" else self.sells
        oid = max(table, default=0) + 1
        invoice = body.get("invoice_no") or f"{'PN' if kind == 'purchase' else 'HD'}{oid:06d}"
        if any(o["invoice_no"] == invoice for o in table.values()):
            raise Invalid("The invoice no has already been taken.", "invoice_no")
        self.move(branch, [(pid, qty if kind == "purchase" else -qty) for pid, qty in lines])
        record = {
            **body,
            "id": oid,
            "invoice_no": invoice,
            "branch_id": branch,
            "shipping_status": body.get("shipping_status") or "ordered",
        }
        table[oid] = record
        return record

    # -- production (ASSUMPTION) ----------------------------------------------------------------
    def _order(self, code: Any) -> dict[str, Any]:
        _required({"order_code": code}, "order_code")
        order = next((o for o in self.orders.values() if o["code"] == code), None)
        if order is None:
            raise Invalid("The selected order_code is invalid.", "order_code")
        return order

    def report(self, body: dict[str, Any], stamp: str) -> dict[str, Any]:
        order = self._order(body.get("order_code"))
        good, bad = body.get("quantity", 0), body.get("rejected_quantity", 0)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in (good, bad))
        if not numbers or not good + bad:
            raise Invalid("The quantity must be greater than 0.", "quantity")
        ops = [o["code"] for o in order["operations"]]
        op = body.get("operation_code") or ops[-1]
        if op not in ops:
            raise Invalid("The selected operation_code is invalid.", "operation_code")
        done = sum(
            r["quantity"] + r["rejected_quantity"]
            for r in self.reports
            if r["order_code"] == order["code"] and r["operation_code"] == op and not r["reversed"]
        )
        if done + good + bad > order["quantity"]:
            raise Invalid(f"The quantity may not be greater than {order['quantity'] - done:g}.", "quantity")
        if op == ops[-1]:
            self.move(order["branch_id"], [(order["product_id"], float(good))])
            order["produced_qty"] += good
            order["rejected_qty"] += bad
        order["updated_at"] = stamp
        report = {
            "id": len(self.reports) + 1,
            "order_code": order["code"],
            "operation_code": op,
            "quantity": good,
            "rejected_quantity": bad,
            "serial": body.get("serial"),
            "reversed": False,
        }
        self.reports.append(report)
        return report

    @staticmethod
    def _live(rows: list[dict[str, Any]], raw_id: Any, what: str) -> dict[str, Any]:
        rid = _int(raw_id, "id")
        record = next((r for r in rows if r["id"] == rid), None)
        if record is None:
            raise KeyError(what)
        if record["reversed"]:
            raise Invalid(f"The {what.lower()} {rid} has already been reversed.", "id")
        return record

    def reverse_report(self, raw_id: Any, stamp: str) -> dict[str, Any]:
        """ASSUMPTION: a report is withdrawn by DELETE; the last operation's finished stock goes back."""
        report = self._live(self.reports, raw_id, "Production report")
        order = self._order(report["order_code"])
        if report["operation_code"] == order["operations"][-1]["code"]:
            self.move(order["branch_id"], [(order["product_id"], -float(report["quantity"]))])
            order["produced_qty"] -= report["quantity"]
            order["rejected_qty"] -= report["rejected_quantity"]
        order["updated_at"] = stamp
        report["reversed"] = True
        return report

    def reverse_consumption(self, raw_id: Any, stamp: str) -> dict[str, Any]:
        """ASSUMPTION: a consumption is withdrawn by DELETE; its components go back to stock."""
        record = self._live(self.consumptions, raw_id, "Consumption")
        lines = [(int(p["product_id"]), float(p["quantity"])) for p in record["products"]]
        self.move(record["branch_id"], lines)
        self._order(record["order_code"])["updated_at"] = stamp
        record["reversed"] = True
        return record

    def consume(self, body: dict[str, Any], stamp: str) -> dict[str, Any]:
        order = self._order(body.get("order_code"))
        branch = self.branch_param(body.get("branch_id"))
        self.move(branch, [(pid, -qty) for pid, qty in self._lines(body)])
        order["updated_at"] = stamp
        record = {
            "id": len(self.consumptions) + 1,
            "order_code": order["code"],
            "branch_id": branch,
            "products": body["products"],
            "reversed": False,
        }
        self.consumptions.append(record)
        return record


def _product(pid: int, code: str, sku: str, name: str, sell: float, buy: float, kind: str) -> dict[str, Any]:
    return {
        "id": pid,
        "product_id": pid,
        "variations_id": 100 + pid,
        "product_fullname": name,
        "product_code": code,
        "sku": sku,
        "barcode": f"893{pid:010d}",
        "product_image": "",
        "unit": "Cái",
        "selling_price": sell,
        "purchase_price": buy,
        "brand_name": "",
        "category_name": "Sản xuất",
        "specification": "",
        "product_type": kind,
        "weight": 0,
        "length": "",
        "width": "",
        "height": "",
        "product_variation": {"product_id": pid, "variations_id": 100 + pid, "unit_id": 1, "price": sell},
    }


NAMES = [
    "Bo mạch điều khiển",
    "Vỏ nhôm",
    "Cáp nguồn 2 m",
    "Cảm biến nhiệt độ",
    "Ốc vít M6",
    "Quạt tản nhiệt",
    "Bộ điều khiển CX-1",
    "Mô-đun truyền thông",
    "Bảng điều khiển",
    "Động cơ thông gió",
]


def seed_store(size: int, seed: int) -> NextXStore:
    """Two branches, `size` products (the last four kinds finished goods), customers and orders."""
    rng = seeded(seed, "nextx")
    store = NextXStore()
    store.branches = {
        1: {"id": 1, "name": "Chi nhánh Hà Nội", "code": "HN"},
        2: {"id": 2, "name": "Chi nhánh Hồ Chí Minh", "code": "HCM"},
    }
    for pid in range(1, max(size, 4) + 1):
        name = f"{NAMES[(pid - 1) % len(NAMES)]} {pid:03d}"
        store.products[pid] = _product(
            pid,
            f"SP{pid:06d}",
            f"SKU-{pid:04d}",
            name,
            rng.randint(10, 500) * 1000,
            rng.randint(5, 300) * 1000,
            "single",
        )
        for branch in store.branches:
            store.stock[(pid, branch)] = float(rng.randint(0, 200))
    for cid in range(1, 7):
        store.customers[cid] = {
            "id": cid,
            "name": f"Công ty Khách hàng {cid}",
            "code": f"KH{cid:06d}",
            "mobile": f"09{rng.randint(10**7, 10**8 - 1)}",
            "email": "",
            "address": "Hà Nội",
            "tax_number": "",
            "type": "customer" if cid % 3 else "supplier",
            "branch_id": 1,
        }
    pids = list(store.products)
    for oid in range(1, max(size // 4, 1) + 1):
        product = pids[-(oid % 4) - 1]
        qty = rng.randint(2, 10)
        store.orders[oid] = {
            "id": oid,
            "code": f"LSX{oid:05d}",
            "product_id": product,
            "variation_id": store.products[product]["variations_id"],
            "product_code": store.products[product]["product_code"],
            "quantity": qty,
            "produced_qty": 0,
            "rejected_qty": 0,
            "status": "in_progress",
            "branch_id": 1,
            "customer_id": oid % 6 + 1,
            "start_date": f"2025-03-{oid % 28 + 1:02d}",
            "end_date": f"2025-04-{oid % 28 + 1:02d}",
            "updated_at": f"2025-03-{oid % 28 + 1:02d} 08:00:00",
            "components": [
                {
                    "product_id": c,
                    "product_code": store.products[c]["product_code"],
                    "quantity": qty * rng.randint(1, 3),
                }
                for c in rng.sample(pids[:-4] or pids, 2)
            ],
            "operations": [
                {"code": c, "name": n, "work_center": w, "position": 10 * (i + 1)}
                for i, (c, n, w) in enumerate(
                    [("CAT", "Cắt", "WC-1"), ("LAP", "Lắp ráp", "WC-2"), ("KT", "Kiểm tra", "WC-3")]
                )
            ],
        }
    return store
