"""The NextX sandbox store: branches, products (some with a composition) and their stock per branch,
customers and suppliers, sells, sell returns and purchases, with the validation rules the simulator
applies and the record shapes seed 003 documents for each reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.base import seeded

__all__ = ["CONSUMPTION_CUSTOMER", "PRODUCTION_SUPPLIER", "Invalid", "NextXStore", "seed_store"]

CONSUMPTION_CUSTOMER = 7
"""The sandbox's internal customer that components consumed in production are sold to."""
PRODUCTION_SUPPLIER = 8
"""The sandbox's internal supplier that finished goods are bought from."""
CANCELLED = "cancelled"


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
    if isinstance(value, bool):
        raise Invalid(f"The {name} must be an integer.", name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"The {name} must be an integer.", name) from None


def _date(value: Any, name: str) -> str:
    text = str(value or "")
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.replace("-", "").isdigit():
        raise Invalid(f"The {name} does not match the format Y-m-d.", name)
    return text


def _money(value: float) -> str:
    """Amounts in lists and details are strings (seed 003)."""
    return f"{value:.4f}"


@dataclass
class NextXStore:
    """All records of the tenant; stock is keyed by (product id, branch id)."""

    branches: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    stock: dict[tuple[int, int], float] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[int, dict[str, Any]] = field(default_factory=dict)
    sells: dict[int, dict[str, Any]] = field(default_factory=dict)
    returns: dict[int, dict[str, Any]] = field(default_factory=dict)

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
            "sell_returns": list(self.returns.values()),
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
        """A row of the product list (seed 003 lines 1264-1291)."""
        row = {k: v for k, v in product.items() if k not in ("sku", "purchase_price", "composition")}
        return {**row, "qty_available": self.stock.get((product["id"], branch), 0.0)}

    def product_rows(self, branch: int, search: str | None, types: list[str]) -> list[dict[str, Any]]:
        term = (search or "").lower()
        return [
            self.product_row(p, branch)
            for p in self.products.values()
            if (not term or term in f"{p['product_fullname']} {p['product_code']} {p['sku']}".lower())
            and (not types or p["product_type"] in types)
        ]

    def product_detail(self, variation: Any, branch: int) -> dict[str, Any]:
        """The product detail (seed 003 lines 1585-1621); its composition is `computations`."""
        if variation in (None, ""):
            raise Invalid("The variation_id field is required.", "variation_id")
        vid = _int(variation, "variation_id")
        product = next((p for p in self.products.values() if p["variations_id"] == vid), None)
        if product is None:
            raise KeyError("Product")
        return {
            "id": product["id"],
            "product_id": product["product_id"],
            "variations.id": product["variations_id"],
            "product_name": product["product_fullname"],
            "product_actual_name": product["product_fullname"],
            "product_code": product["product_code"],
            "product_sku": product["sku"],
            "product_image": product["product_image"],
            "qty_available": self.stock.get((product["id"], branch), 0.0),
            "default_purchase_price": product["purchase_price"],
            "default_sell_price": product["selling_price"],
            "product_type": product["product_type"],
            "specification": product["specification"],
            "height": product["height"],
            "width": product["width"],
            "length": product["length"],
            "weight": str(product["weight"]),
            # ASSUMPTION: the seed prints `computations` as one object closed by `]`; it is the list of
            # the composition, each part with the `quantity` per unit that composition_variation
            # (seed 003 lines 1352-1358) is created with.
            "computations": [
                {
                    "product_id": c["product_id"],
                    "variations.id": c["variations_id"],
                    "unit_id": c["unit_id"],
                    "price": c["price"],
                    "quantity": c["quantity"],
                }
                for c in product["composition"]
            ],
            "unit_id": str(product["product_variation"]["unit_id"]),
            "unit": product["unit"],
            "units": [
                {
                    "id": product["product_variation"]["unit_id"],
                    "name": product["unit"],
                    "is_base_unit": 1,
                    "multiplier": 1,
                    "price": product["selling_price"],
                }
            ],
        }

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
    def add_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        _required(body, "name")
        if body.get("type", "customer") not in ("customer", "supplier"):
            raise Invalid("The selected type is invalid.", "type")
        cid = max(self.customers, default=0) + 1
        self.customers[cid] = _customer(
            cid, body["name"], body.get("type", "customer"), body.get("mobile") or "", body.get("branch_id")
        )
        return self.customers[cid]

    def customer_detail(self, raw_id: Any) -> dict[str, Any]:
        """The customer detail (seed 003 lines 2631-2665)."""
        c = self.get("customers", raw_id)
        return {
            "id": c["id"],
            "employers": {"id": 1, "code": "NV0001", "first_name": "Minh", "last_name": "Trần", "avatar": ""},
            "avatar": "",
            "contact_id": c["id"],
            "name": c["name"],
            "code": c["code"],
            "first_name": "",
            "last_name": "",
            "mobile": c["mobile"],
            "address": c["address"],
            "description": "",
            "fax_number": "",
            "type": c["type"],
            "customer_group_id": None,
            "birthday": None,
            "gender": 0,
            "opening_balance": 0,
            "credit_limit": 0,
            "pay_term_number": None,
            "pay_term": "",
            "branch_id": c["branch_id"],
            "resources": [],
        }

    # -- stock ------------------------------------------------------------------------------------
    def _lines(self, body: dict[str, Any]) -> list[tuple[int, float]]:
        _required(body, "products")
        if not isinstance(body["products"], list):
            raise Invalid("The products must be an array.", "products")
        lines = []
        for n, line in enumerate(body["products"]):
            if not isinstance(line, dict):
                raise Invalid(f"The products.{n} must be an object.", f"products.{n}")
            pid = _int(line.get("product_id"), f"products.{n}.product_id")
            if pid not in self.products:
                raise Invalid(f"The selected products.{n}.product_id is invalid.", f"products.{n}.product_id")
            qty = line.get("quantity")
            if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0:
                raise Invalid(f"The products.{n}.quantity must be greater than 0.", f"products.{n}.quantity")
            lines.append((pid, float(qty)))
        return lines

    def move(self, branch: int, deltas: list[tuple[int, float]]) -> None:
        totals: dict[int, float] = {}
        for pid, delta in deltas:
            totals[pid] = totals.get(pid, 0.0) + delta
        for pid, delta in totals.items():
            have = self.stock.get((pid, branch), 0.0)
            if have + delta < -1e-9:
                # ASSUMPTION: NextX refuses to sell more than the branch holds.
                code = self.products[pid]["product_code"]
                raise Invalid(f"Insufficient stock for product {code} (available: {have:g}).", "products")
        for pid, delta in totals.items():
            self.stock[(pid, branch)] = self.stock.get((pid, branch), 0.0) + delta

    def _customer_param(self, body: dict[str, Any], kind: str) -> int | None:
        raw = body.get("customer_id")
        if raw in (None, ""):
            return None
        cid = _int(raw, "customer_id")
        if cid not in self.customers:
            # ASSUMPTION: the customer of a document must exist.
            raise Invalid("The selected customer_id is invalid.", "customer_id")
        if kind == "purchase" and self.customers[cid]["type"] != "supplier":
            raise Invalid("The selected customer_id is not a supplier.", "customer_id")
        return cid

    def _invoice(self, table: dict[int, dict[str, Any]], body: dict[str, Any], prefix: str, oid: int) -> str:
        invoice = str(body.get("invoice_no") or "") or f"{prefix}{oid:06d}"
        if any(o["invoice_no"] == invoice for o in table.values()):
            raise Invalid("The invoice no has already been taken.", "invoice_no")
        return invoice

    # -- sells --------------------------------------------------------------------------------------
    def add_sell(self, body: dict[str, Any]) -> None:
        # ASSUMPTION: branch_id and transaction_date are required on writes (stock is per branch).
        _required(body, "branch_id", "transaction_date")
        branch = self.branch_param(body["branch_id"])
        date = _date(body["transaction_date"], "transaction_date")
        customer = self._customer_param(body, "sell")
        lines = self._lines(body)
        oid = max(self.sells, default=0) + 1
        invoice = self._invoice(self.sells, body, "HD", oid)
        self.move(branch, [(pid, -qty) for pid, qty in lines])
        self.sells[oid] = {
            **body,
            "id": oid,
            "invoice_no": invoice,
            "branch_id": branch,
            "customer_id": customer,
            "transaction_date": date,
            "status": body.get("status") or "final",
            "shipping_status": body.get("shipping_status") or "ordered",
            "products": [dict(line) for line in body["products"]],
        }

    def sell_row(self, sell: dict[str, Any]) -> dict[str, Any]:
        """A row of the sell list (seed 003 lines 3411-3436)."""
        customer = self.customers.get(sell["customer_id"] or 0) or {}
        total = sum(float(p.get("unit_price") or 0) * float(p["quantity"]) for p in sell["products"])
        return {
            "id": sell["id"],
            "transaction_date": sell["transaction_date"],
            "invoice_no": sell["invoice_no"],
            "customer_id": sell["customer_id"],
            "customer_code": customer.get("code", ""),
            "customer_name": customer.get("name", ""),
            "customer_mobile": customer.get("mobile", ""),
            "customer_address": customer.get("address", ""),
            "customer_description": "",
            "payment_status": "due",
            "final_total": _money(total),
            "tax_amount": _money(0),
            "total_before_tax": _money(total),
            "total_discount": _money(0),
            "total_surcharge": _money(0),
            "shipping_status": sell["shipping_status"],
            "additional_notes": sell.get("additional_notes") or "",
            "staff_note": sell.get("staff_note") or "",
            "added_by": "API",
            "total_paid": 0,
            "branch_name": self.branches[sell["branch_id"]]["name"],
            "status": sell["status"],
            "purchase_invoice_no": "",
        }

    def sell_rows(self, branch: int, query: Any) -> list[dict[str, Any]]:
        rows = [s for s in self.sells.values() if s["branch_id"] == branch]
        return [self.sell_row(s) for s in self._filtered(rows, query, self._lines_text)]

    def _lines_text(self, record: dict[str, Any]) -> str:
        """What strSearch matches in a sell or a sell return: its products' names, codes and SKUs
        (seed 003 lines 3405, 3790: "Search keyword for product name, code, or SKU"), not its number."""
        names = [
            f"{product['product_fullname']} {product['product_code']} {product['sku']}"
            for line in record["products"]
            if (product := self.products.get(int(line["product_id"]))) is not None
        ]
        return " ".join(names).lower()

    def _filtered(self, rows: list[dict[str, Any]], query: Any, text: Any) -> list[dict[str, Any]]:
        """customer_id, from_date, to_date (transaction date, Y-m-d, inclusive) and strSearch, as the
        seed's list parameters; strSearch matches `text(record)`, never the invoice number."""
        customer = query.get("customer_id")
        since, until = query.get("from_date"), query.get("to_date")
        term = (query.get("strSearch") or "").strip().lower()
        out = []
        for record in sorted(rows, key=lambda r: r["id"]):
            if customer not in (None, "") and str(record.get("customer_id")) != str(customer):
                continue
            if since and record["transaction_date"] < _date(since, "from_date"):
                continue
            if until and record["transaction_date"] > _date(until, "to_date"):
                continue
            if term and term not in text(record):
                continue
            out.append(record)
        return out

    def sell_detail(self, raw_id: Any) -> dict[str, Any]:
        """The sell detail (seed 003 lines 3673-3727)."""
        sell = self.get("sells", raw_id)
        row = self.sell_row(sell)
        return {
            "id": sell["id"],
            "transaction_date": sell["transaction_date"],
            "invoice_no": sell["invoice_no"],
            "discount_type": "fixed",
            "discount_amount": _money(0),
            "total_before_tax": row["total_before_tax"],
            "tax_amount": row["tax_amount"],
            "final_total": row["final_total"],
            "staff_note": row["staff_note"],
            "additional_notes": row["additional_notes"],
            "store_id": sell.get("store_id"),
            "price_book_id": sell.get("price_book_id"),
            "branch_id": sell["branch_id"],
            "shipping_charges": _money(0),
            "shipping_status": sell["shipping_status"],
            "customer_id": sell["customer_id"],
            "payment": sell.get("payment") or [],
            "products": [_sell_line(line) for line in sell["products"]],
            "tax": None,
        }

    # -- sell returns -------------------------------------------------------------------------------
    def add_return(self, body: dict[str, Any]) -> dict[str, Any]:
        """ASSUMPTION: `transaction_id` names the sell returned (the seed's reply echoes it, line 3982);
        every returned product was on that sell, at most the quantity sold less earlier returns; the
        stock goes back to the sell's branch."""
        _required(body, "transaction_id", "transaction_date")
        sell = self.sells.get(_int(body["transaction_id"], "transaction_id"))
        if sell is None:
            raise Invalid("The selected transaction_id is invalid.", "transaction_id")
        date = _date(body["transaction_date"], "transaction_date")
        lines = self._lines(body)
        for pid, qty in lines:
            sold = sum(float(p["quantity"]) for p in sell["products"] if int(p["product_id"]) == pid)
            returned = sum(
                float(p["quantity"])
                for r in self.returns.values()
                if r["sell_id"] == sell["id"]
                for p in r["products"]
                if int(p["product_id"]) == pid
            )
            if qty > sold - returned + 1e-9:
                code = self.products[pid]["product_code"]
                left = sold - returned
                message = f"The quantity of {code} to return may not be greater than {left:g}."
                raise Invalid(message, "products")
        oid = max(self.returns, default=0) + 1
        invoice = self._invoice(self.returns, body, "TH", oid)
        self.move(sell["branch_id"], lines)
        self.returns[oid] = {
            **body,
            "id": oid,
            "invoice_no": invoice,
            "sell_id": sell["id"],
            "customer_id": sell["customer_id"],
            "transaction_date": date,
            "branch_id": sell["branch_id"],
            "products": [dict(line) for line in body["products"]],
        }
        return self.returns[oid]

    def return_rows(self, query: Any) -> list[dict[str, Any]]:
        """Rows of the sell-return list (seed 003 lines 3802-3821)."""
        rows = self._filtered(list(self.returns.values()), query, self._lines_text)
        out = []
        for r in rows:
            customer = self.customers.get(r["customer_id"] or 0) or {}
            out.append(
                {
                    "id": r["id"],
                    "transaction_date": r["transaction_date"],
                    "invoice_no": r["invoice_no"],
                    "customer_id": r["customer_id"],
                    "customer_code": customer.get("code", ""),
                    "customer_name": customer.get("name", ""),
                    "customer_mobile": customer.get("mobile", ""),
                    "payment_status": "due",
                    "final_total": _money(0),
                    "amount_paid": _money(0),
                    "additional_notes": r.get("additional_notes") or "",
                    "staff_note": r.get("staff_note") or "",
                    "added_by": "API",
                    "branch_name": self.branches[r["branch_id"]]["name"],
                    "sell_invoice_no": self.sells[r["sell_id"]]["invoice_no"],
                    "sell_id": r["sell_id"],
                }
            )
        return out

    # -- purchases ----------------------------------------------------------------------------------
    def add_purchase(self, body: dict[str, Any]) -> None:
        """ASSUMPTION: a purchase adds its products to the branch's stock when it is created (the seed
        says nothing of stock), unless it is created cancelled."""
        _required(body, "branch_id", "transaction_date")
        branch = self.branch_param(body["branch_id"])
        date = _date(body["transaction_date"], "transaction_date")
        supplier = self._customer_param(body, "purchase")
        lines = self._lines(body)
        oid = max(self.purchases, default=0) + 1
        invoice = self._invoice(self.purchases, body, "PN", oid)
        status = body.get("shipping_status") or "ordered"
        if status != CANCELLED:
            self.move(branch, lines)
        self.purchases[oid] = {
            **body,
            "id": oid,
            "invoice_no": invoice,
            "branch_id": branch,
            "customer_id": supplier,
            "transaction_date": date,
            "shipping_status": status,
            "products": [dict(line) for line in body["products"]],
        }

    def purchase_by_code(self, code: str) -> dict[str, Any]:
        """The purchase detail (seed 003 lines 3204-3273)."""
        found = next((p for p in self.purchases.values() if p["invoice_no"] == code), None)
        if found is None:
            raise KeyError("Purchase order")
        supplier = self.customers.get(found["customer_id"] or 0) or {}
        branch = self.branches[found["branch_id"]]
        return {
            "id": found["id"],
            "transaction_date": found["transaction_date"],
            "invoice_no": found["invoice_no"],
            "discount_type": "fixed",
            "discount_amount": _money(0),
            "total_before_tax": _money(0),
            "tax_amount": _money(0),
            "final_total": _money(0),
            "shipping_status": found["shipping_status"],
            "approved_status": "1" if found.get("approved_status") else "0",
            "additional_notes": found.get("additional_notes") or "",
            "customer": {
                "id": supplier.get("id"),
                "name": supplier.get("name", ""),
                "code": supplier.get("code", ""),
                "mobile": supplier.get("mobile", ""),
                "gender": "",
                "birthday": None,
                "address": supplier.get("address", ""),
                "account_address": "",
                "account_no": "",
            },
            "created_by": {"id": 1, "name": "API", "firstname": "API", "lastname": ""},
            "branch": {**branch, "tel": "", "fax": "", "avatar": "", "address": "", "description": ""},
            "products": [self._purchase_line(n, line) for n, line in enumerate(found["products"])],
        }

    def _purchase_line(self, n: int, line: dict[str, Any]) -> dict[str, Any]:
        product = self.products[int(line["product_id"])]
        return {
            "id": n + 1,
            "product_id": product["id"],
            "variation_id": product["variations_id"],
            "product_name": product["product_fullname"],
            "product_code": product["product_code"],
            "sub_sku": product["sku"],
            "product_image": "",
            "product_purchase_price": product["purchase_price"],
            "product_sell_price": product["selling_price"],
            "unit_id": line.get("unit_id"),
            "unit": product["unit"],
            "quantity": line["quantity"],
            "sell_line_note": line.get("sell_line_note") or "",
            "line_discount_type": "fixed",
            "line_discount_amount": _money(0),
            "units": [],
            "item_tax": 0,
            "unit_price": line.get("unit_price") or 0,
        }

    def update_shipping(self, raw_id: Any, body: dict[str, Any]) -> dict[str, Any]:
        """ASSUMPTION: setting `cancelled` takes the purchase's products back out of stock, once; a
        cancelled purchase stays cancelled (the seed documents the call, not what a status does)."""
        purchase = self.get("purchases", raw_id)
        _required(body, "shipping_status")
        status = str(body["shipping_status"])
        if purchase["shipping_status"] == CANCELLED and status != CANCELLED:
            raise Invalid(f"The purchase {purchase['invoice_no']} is cancelled.", "shipping_status")
        if status == CANCELLED and purchase["shipping_status"] != CANCELLED:
            lines = [(int(p["product_id"]), -float(p["quantity"])) for p in purchase["products"]]
            self.move(purchase["branch_id"], lines)
        purchase["shipping_status"] = status
        return {"comment": body.get("comment") or "", "shipping_status": status}


def _sell_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "id_sort": line.get("id_sort", 0),
        "product_id": line["product_id"],
        "variation_id": line.get("variation_id"),
        "unit_price": line.get("unit_price", 0),
        "unit_id": line.get("unit_id"),
        "f_convert": line.get("f_convert", 1),
        "f_convert1": line.get("f_convert1", 1),
        "f_convert2": line.get("f_convert2", 1),
        "f_convert3": line.get("f_convert3", 1),
        "tax_id": line.get("tax_id"),
        "item_tax": line.get("item_tax", 0),
        "quantity": line["quantity"],
        "sell_line_note": line.get("sell_line_note") or "",
        "line_discount_type": line.get("line_discount_type") or "fixed",
        "line_discount_amount": line.get("line_discount_amount", 0),
    }


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
        "composition": [],
    }


def _customer(cid: int, name: str, kind: str, mobile: str, branch: int | None) -> dict[str, Any]:
    return {
        "id": cid,
        "name": name,
        "code": f"{'NCC' if kind == 'supplier' else 'KH'}{cid:06d}",
        "mobile": mobile,
        "email": "",
        "address": "Hà Nội",
        "tax_number": "",
        "type": kind,
        "branch_id": branch,
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
FINISHED = 4
"""The last four products are combos (finished goods with a composition); the others components."""


def seed_store(size: int, seed: int) -> NextXStore:
    """Two branches; max(size, 6) products, the last four combos made of the others (the last one also
    of the first combo, a sub-assembly); customers, the two internal partners and max(size // 2, 4)
    sells, each with a combo line (the second sell two) and every other one a plain line."""
    rng = seeded(seed, "nextx")
    store = NextXStore()
    store.branches = {
        1: {"id": 1, "name": "Chi nhánh Hà Nội", "code": "HN"},
        2: {"id": 2, "name": "Chi nhánh Hồ Chí Minh", "code": "HCM"},
    }
    count = max(size, FINISHED + 2)
    for pid in range(1, count + 1):
        finished = pid > count - FINISHED
        store.products[pid] = _product(
            pid,
            f"SP{pid:06d}",
            f"SKU-{pid:04d}",
            f"{NAMES[(pid - 1) % len(NAMES)]} {pid:03d}",
            rng.randint(10, 500) * 1000,
            rng.randint(5, 300) * 1000,
            "combo" if finished else "single",
        )
        for branch in store.branches:
            store.stock[(pid, branch)] = float(rng.randint(100, 200) if finished else rng.randint(500, 900))
    pids = list(store.products)
    components, combos = pids[:-FINISHED], pids[-FINISHED:]
    for pid in combos:
        parts = rng.sample(components, min(2, len(components)))
        if pid == combos[-1]:
            parts.append(combos[0])  # a sub-assembly with its own work order
        store.products[pid]["composition"] = [
            {
                "product_id": part,
                "variations_id": store.products[part]["variations_id"],
                "unit_id": 1,
                "price": store.products[part]["purchase_price"],
                "quantity": rng.randint(1, 3),
            }
            for part in parts
        ]
    for cid in range(1, 7):
        kind = "customer" if cid % 3 else "supplier"
        store.customers[cid] = _customer(
            cid, f"Công ty Khách hàng {cid}", kind, f"09{rng.randint(10**7, 10**8 - 1)}", 1
        )
    store.customers[CONSUMPTION_CUSTOMER] = _customer(
        CONSUMPTION_CUSTOMER, "Sản xuất - tiêu hao nội bộ", "customer", "", 1
    )
    store.customers[PRODUCTION_SUPPLIER] = _customer(
        PRODUCTION_SUPPLIER, "Sản xuất - nhập thành phẩm", "supplier", "", 1
    )
    clients = [c for c in range(1, 7) if store.customers[c]["type"] == "customer"]
    for n in range(max(size // 2, FINISHED)):
        oid = n + 1
        wanted = [combos[n % FINISHED]] + ([combos[(n + 1) % FINISHED]] if n == 1 else [])
        lines = [(pid, rng.randint(2, 10)) for pid in wanted]
        if n % 2 == 0:
            lines.append((components[n % len(components)], rng.randint(1, 5)))
        store.sells[oid] = {
            "id": oid,
            "invoice_no": f"HD{oid:06d}",
            "transaction_date": f"2025-03-{n % 28 + 1:02d}",
            "branch_id": 1,
            "customer_id": clients[n % len(clients)],
            "status": "final",
            "shipping_status": "ordered",
            "additional_notes": "",
            "staff_note": "",
            "products": [
                {
                    "id_sort": k,
                    "product_id": pid,
                    "variation_id": store.products[pid]["variations_id"],
                    "unit_price": store.products[pid]["selling_price"],
                    "unit_id": 1,
                    "quantity": quantity,
                }
                for k, (pid, quantity) in enumerate(lines)
            ],
        }
    return store
