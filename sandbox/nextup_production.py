"""NextUp production operations the MES binding needs and no NextUp document names. All invented:
NextUp's public material names no production or consumption methods (ERP-FACTS ✘), so every name and
shape here is an ASSUMPTION, accepted by the simulator beyond what seed 002 and ERP-FACTS document. The
binding keeps both names in one place (`vars.methods`), to be renamed once the vendor confirms them.
Consumption is not here: it goes on the documented delivery note (`AddDeliveryNote`, in `nextup`), and
serials travel on document lines, so there is no consumption note and no serial-number register.

    GetProductionOrders {ModifiedSince?, Page? (from 1), PageSize? (default 50, max 500)}
        -> [{Id, Code, ArticleCode, Quantity, ReportedQuantity, RejectedQuantity, Status, Customer
             {Code, Name}, Project, StartDate, EndDate, WarehouseId, Components [{ArticleCode,
             Quantity, Lot, Serials}], Operations [{Code, Name, WorkCenter, Position}], LastModified}]
    AddProductionReport {ProductionOrderCode, ArticleCode, Quantity, RejectedQuantity?, OperationCode?,
        WorkCenter?, Serial?, WarehouseId?} -> {Id, Number "RP-000001"}

A report on the last operation (or without OperationCode) adds the good quantity to the finished
article's stock in WarehouseId (default the order's). InvalidateDocument (in `nextup`) reverses both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox.nextup_data import Company, NextUpError

__all__ = ["OPERATIONS", "number_param", "require"]


def require(params: dict[str, Any], *names: str) -> None:
    """`Parametrul "X" este obligatoriu.` for the first missing one (ERP-FACTS)."""
    for name in names:
        if params.get(name) in (None, ""):
            raise NextUpError(f'Parametrul "{name}" este obligatoriu.')


def number_param(params: dict[str, Any], name: str, *, positive: bool = True) -> float:
    value = params.get(name, 0)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or value < 0 or (positive and value <= 0):
        # ASSUMPTION: wording of the bad-quantity error.
        raise NextUpError(f'Parametrul "{name}" trebuie sa fie un numar pozitiv.')
    return float(value)


def _touch(order: dict[str, Any]) -> None:
    order["LastModified"] = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def _order(co: Company, code: Any) -> dict[str, Any]:
    order = co.production_orders.get(str(code))
    if order is None:
        raise NextUpError(f'Comanda de productie "{code}" nu exista.')
    if order["Status"] != "Lansata":
        raise NextUpError(f'Comanda de productie "{code}" este inchisa.')
    return order


def get_production_orders(co: Company, p: dict[str, Any]) -> Any:
    page, size = p.get("Page", 1), p.get("PageSize", 50)
    if not isinstance(page, int) or page < 1 or not isinstance(size, int) or not 1 <= size <= 500:
        raise NextUpError('Parametrii "Page" si "PageSize" nu sunt valizi.')
    since = p.get("ModifiedSince")
    rows = sorted(co.production_orders.values(), key=lambda o: (o["LastModified"], o["Code"]))
    if since:
        rows = [o for o in rows if o["LastModified"] > str(since)]
    return rows[(page - 1) * size : page * size]


def add_production_report(co: Company, p: dict[str, Any]) -> Any:
    require(p, "ProductionOrderCode", "ArticleCode", "Quantity")
    order = _order(co, p["ProductionOrderCode"])
    good = number_param(p, "Quantity", positive=False)
    rejected = number_param(p, "RejectedQuantity", positive=False)
    if good + rejected <= 0:
        raise NextUpError('Parametrul "Quantity" trebuie sa fie un numar pozitiv.')
    if p["ArticleCode"] != order["ArticleCode"]:
        raise NextUpError(
            f'Articolul "{p["ArticleCode"]}" nu corespunde comenzii de productie "{order["Code"]}".'
        )
    ops = order["Operations"]
    op_code = p.get("OperationCode") or ops[-1]["Code"]
    op = next((o for o in ops if o["Code"] == op_code), None)
    if op is None:
        raise NextUpError(f'Operatia "{op_code}" nu exista pe comanda de productie "{order["Code"]}".')
    reported = sum(
        d["Quantity"] + d["RejectedQuantity"]
        for d in co.documents.values()
        if d["Type"] == "RP"
        and d["Valid"]
        and d["ProductionOrderCode"] == order["Code"]
        and d["OperationCode"] == op_code
    )
    left = order["Quantity"] - reported
    if good + rejected > left + 1e-9:
        raise NextUpError(
            f"Cantitatea raportata ({good + rejected:g}) depaseste cantitatea ramasa ({left:g}) "
            f'pentru operatia "{op_code}" a comenzii de productie "{order["Code"]}".'
        )
    final = op_code == ops[-1]["Code"]
    wid = p.get("WarehouseId", order["WarehouseId"])
    co.warehouse(wid)
    moves = [(order["ArticleCode"], wid, good)] if final and good else []
    co.move(moves)
    if final:
        order["ReportedQuantity"] += good
        order["RejectedQuantity"] += rejected
    _touch(order)
    doc = {
        "Id": co.new_id(),
        "Number": co.number("RP"),
        "Type": "RP",
        "Valid": True,
        "Moves": moves,
        "ProductionOrderCode": order["Code"],
        "OperationCode": op_code,
        "Final": final,
        "Quantity": good,
        "RejectedQuantity": rejected,
        "WorkCenter": p.get("WorkCenter") or op["WorkCenter"],
        "Serial": p.get("Serial"),
    }
    co.documents[doc["Id"]] = doc
    return {"Id": doc["Id"], "Number": doc["Number"]}


def reverse_production(co: Company, doc: dict[str, Any]) -> None:
    """The production side of InvalidateDocument: reported quantities go back."""
    if doc["Type"] == "RP" and doc["Final"]:
        order = co.production_orders[doc["ProductionOrderCode"]]
        order["ReportedQuantity"] -= doc["Quantity"]
        order["RejectedQuantity"] -= doc["RejectedQuantity"]
        _touch(order)


OPERATIONS = {
    "GetProductionOrders": get_production_orders,
    "AddProductionReport": add_production_report,
}
