"""NextX binding end to end, over real HTTP against simulators that answer as seed 003 prints: sells
polled into Next Plus work orders, then an operator shift on them sent by the Integration Builder
through the nextx webhooks, with NextX's sells, returns, purchases and stock checked record by record."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from engine.helpers import iso8601
from sandbox.emitter import IntegrationBuilder
from sandbox.nextx_data import CONSUMPTION_CUSTOMER, PRODUCTION_SUPPLIER
from sandbox.shift import Action, play_shift
from tests.e2e.conftest import Stack

SOURCE = "NEXTX"
BRANCH = 1


def _nextplus_orders(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        w["workorderNumber"]: w
        for w in stack.simulators["nextplus"].workorders.values()
        if w.get("source") == SOURCE
    }


def _builder(stack: Stack) -> IntegrationBuilder:
    return IntegrationBuilder(
        source=SOURCE,
        urls={
            "device": stack.webhook("/nextx/device"),
            "item_attach": stack.webhook("/nextx/item-attach"),
            "operation": stack.webhook("/nextx/operation"),
        },
        seed=3,
    )


def _exactly(per_unit: float, units: float) -> float | int:
    """What a person computes: 0.1 x 3 = 0.3; 2 x 6 = 12."""
    product = Decimal(str(per_unit)) * Decimal(str(units))
    return int(product) if product == product.to_integral_value() else float(product)


def _expected(stack: Stack) -> dict[str, tuple[dict[str, Any], int, dict[str, Any]]]:
    """Every work order the sells promise: number -> (sell, line number, line)."""
    store = stack.simulators["nextx"].store
    wanted = {}
    for sell in store.sells.values():
        if sell["customer_id"] == CONSUMPTION_CUSTOMER or sell["status"] != "final":
            continue
        for n, line in enumerate(sell["products"], start=1):
            if store.products[line["product_id"]]["product_type"] == "combo":
                wanted[f"{sell['invoice_no']}-{n}"] = (sell, n, line)
    return wanted


async def test_polled_sells_appear_in_next_plus_with_every_mapped_field(stack: Stack) -> None:
    store = stack.simulators["nextx"].store
    routing = stack.project.variables["nextx"]["routing"]
    # A fractional part: 0.1 per unit of a line of 3 units is 0.3 in the kit, not 0.30000000000000004.
    sell, line = next(
        (s, p)
        for s in store.sells.values()
        if s["status"] == "final" and s["customer_id"] != CONSUMPTION_CUSTOMER
        for p in s["products"]
        if store.products[p["product_id"]]["product_type"] == "combo"
    )
    line["quantity"] = 3
    store.products[line["product_id"]]["composition"][0]["quantity"] = 0.1
    outcomes = await stack.poll("nextx.workorders")
    assert outcomes and all(o.ok for o in outcomes), [o.body for o in outcomes if not o.ok]
    wanted = _expected(stack)
    created = _nextplus_orders(stack)
    assert set(created) == set(wanted) and len(wanted) > len(store.sells)  # one sell has two such lines
    assert any(len(sell["products"]) > 1 for sell, _, _ in wanted.values())  # and plain lines are skipped
    for number, (sell, n, line) in wanted.items():
        wo = created[number]
        product = store.products[line["product_id"]]
        customer = store.customers[sell["customer_id"]]
        assert (wo["sku"], wo["quantity"], wo["source"]) == (
            product["product_code"],
            line["quantity"],
            SOURCE,
        )
        assert wo["name"] == f"{number} {product['product_fullname']}"
        assert wo["partDesc"] == product["product_fullname"]
        assert wo["externalId"] == f"{sell['id']}/{n}"
        assert (wo["orderNumber"], wo["orderLine"]) == (sell["invoice_no"], str(n))
        assert wo["customer"] == {"accountNumber": customer["code"], "accountName": customer["name"]}
        assert wo["kitItems"] == [
            {
                "sku": store.products[part["product_id"]]["product_code"],
                "quantity": _exactly(part["quantity"], line["quantity"]),
                "unit": store.products[part["product_id"]]["unit"],
            }
            for part in product["composition"]
        ]
        assert wo["_actions"] == routing
        assert wo["releasedAt"] == iso8601(sell["transaction_date"])
        assert (wo["erpStatus"], wo["erpClosed"]) == ("ordered", False)
        assert (wo["C_NEXTX_SELL_ID"], wo["C_NEXTX_INVOICE_NO"]) == (sell["id"], sell["invoice_no"])
        assert wo["C_NEXTX_VARIATION_ID"] == product["variations_id"]

    # A delivered sell is read again (its row changed) and PATCHes the same Next Plus record, closed.
    sell, n, _ = wanted[min(wanted)]
    sell["shipping_status"] = "delivered"
    ids_before = {number: w["id"] for number, w in _nextplus_orders(stack).items()}
    again = await stack.poll("nextx.workorders")
    assert all(o.ok for o in again), [o.body for o in again if not o.ok]
    actions = {w["workorderNumber"]: w["action"] for o in again for w in o.body["workorders"]}
    assert set(actions.values()) == {"updated"} and f"{sell['invoice_no']}-{n}" in actions
    after = _nextplus_orders(stack)
    assert {number: w["id"] for number, w in after.items()} == ids_before
    assert (
        after[f"{sell['invoice_no']}-{n}"]["erpStatus"],
        after[f"{sell['invoice_no']}-{n}"]["erpClosed"],
    ) == (
        "delivered",
        True,
    )


async def test_operator_shift_is_booked_in_nextx_record_by_record(stack: Stack) -> None:
    store = stack.simulators["nextx"].store
    zone = ZoneInfo(stack.project.variables["nextx"]["time_zone"])
    started = datetime.now(zone)
    assert all(o.ok for o in await stack.poll("nextx.workorders"))
    orders = _nextplus_orders(stack)
    combos = [p for p in store.products.values() if p["product_type"] == "combo"]
    # the work order whose kit holds another combo (a sub-assembly), and that sub-assembly's own
    main_wo = next(w for w in orders.values() if w["sku"] == combos[-1]["product_code"])
    sub_wo = next(w for w in orders.values() if w["sku"] == combos[0]["product_code"])
    for pid in store.products:  # enough stock for the shift's consumptions
        store.stock[(pid, BRANCH)] = 100.0
    stock_before = dict(store.stock)
    comp_a, comp_b = [k["sku"] for k in main_wo["kitItems"] if k["sku"] != sub_wo["sku"]][:2]
    last_op = main_wo["_actions"][-1]["actCode"]
    qty = main_wo["quantity"]

    actions = [
        Action("set_serial", main_wo["workorderNumber"], {"serial": "SN-HD1-01"}),
        # serial-managed, quantity-only, and a sub-assembly with its own work order
        Action(
            "attach_item", main_wo["workorderNumber"], {"sku": comp_a, "quantity": 1, "serial": "CMP-Ư-1"}
        ),
        Action("attach_item", main_wo["workorderNumber"], {"sku": comp_b, "quantity": 3}),
        Action(
            "attach_item",
            main_wo["workorderNumber"],
            {"sku": sub_wo["sku"], "quantity": 1, "workorderNumber": sub_wo["workorderNumber"]},
        ),
        *[
            Action(
                "report_operation",
                main_wo["workorderNumber"],
                {"actCode": op["actCode"], "validQty": qty - 1, "invalidQty": 1},
            )
            for op in main_wo["_actions"]
        ],
        Action("undo_report", main_wo["workorderNumber"], {"actCode": last_op}),
        Action(
            "report_operation",
            main_wo["workorderNumber"],
            {"actCode": last_op, "validQty": qty, "invalidQty": 0},
        ),
        # more good units than sold: refused, and the operator sees why
        Action(
            "report_operation",
            main_wo["workorderNumber"],
            {"actCode": last_op, "validQty": qty + 1, "invalidQty": 0},
        ),
        Action("detach_item", main_wo["workorderNumber"], {"sku": comp_b}),
        Action("change_serial", main_wo["workorderNumber"], {"serial": "SN-HD1-01-R"}),
        Action("remove_serial", main_wo["workorderNumber"]),
        Action("attach_item", sub_wo["workorderNumber"], {"sku": "NO-SUCH-PART", "quantity": 1}),
    ]
    summary = await play_shift(_builder(stack), [main_wo, sub_wo], actions)
    assert summary.sent == len(actions) and not summary.refused
    assert [f["message"] for f in summary.failures] == [
        f"{qty + 1} good units of {main_wo['sku']} reported on {last_op} of {main_wo['workorderNumber']}, "
        f"but its NextX sell line orders {qty}: nothing was received",
        f"Component NO-SUCH-PART is not a NextX product (branch {BRANCH})",
    ]
    assert all(f["status"] == 422 for f in summary.failures)
    d = summary.deliveries
    by_code = {p["product_code"]: p for p in store.products.values()}

    # Device/Serial: no NextX record; the unit is named workorder/serial.
    assert (d[0].ok, d[0].external_id) == (True, f"{main_wo['workorderNumber']}/SN-HD1-01")
    assert d[-3].external_id == f"{main_wo['workorderNumber']}/SN-HD1-01-R" and d[-2].ok

    # Item Attach: one consumption sell each, to the internal customer, numbered by its externalId.
    attach = d[1:4]
    assert all(x.ok and str(x.external_id).startswith("MESC-") for x in attach)
    sells = {s["invoice_no"]: s for s in store.sells.values()}
    consumed = [sells[str(x.external_id)] for x in attach]
    assert all(s["customer_id"] == CONSUMPTION_CUSTOMER and s["branch_id"] == BRANCH for s in consumed)
    assert [
        (p["product_id"], p["quantity"], p["sell_line_note"]) for s in consumed for p in s["products"]
    ] == [
        (by_code[comp_a]["id"], 1, "CMP-Ư-1"),
        (by_code[comp_b]["id"], 3, ""),
        (by_code[sub_wo["sku"]]["id"], 1, ""),
    ]
    assert all(s["staff_note"] == main_wo["workorderNumber"] for s in consumed)
    # dated, and numbered, with the day in the company's time zone, whatever the day in UTC
    days = {started.strftime("%Y-%m-%d"), datetime.now(zone).strftime("%Y-%m-%d")}
    assert all(s["transaction_date"] in days for s in consumed), (
        [s["transaction_date"] for s in consumed],
        days,
    )
    assert all(
        f"20{s['invoice_no'][5:7]}-{s['invoice_no'][7:9]}-{s['invoice_no'][9:11]}" == s["transaction_date"]
        for s in consumed
    )
    # the detach returned exactly the second sell, once
    detach = next(x for x in d if x.kind == "item_attach" and x.type == "remove")
    assert detach.ok and detach.external_id == "MESR-" + str(attach[1].external_id)[len("MESC-") :]
    assert [(r["sell_id"], r["invoice_no"]) for r in store.returns.values()] == [
        (consumed[1]["id"], detach.external_id)
    ]
    assert store.stock[(by_code[comp_a]["id"], BRANCH)] == 99
    assert store.stock[(by_code[comp_b]["id"], BRANCH)] == 100
    # the sub-assembly's own stock was consumed; the polled sells are no work orders of the binding's
    assert store.stock[(by_code[sub_wo["sku"]]["id"], BRANCH)] == 99

    # Operation: only the last step books: a purchase from the production supplier per good report;
    # the undone one cancelled, the stock the net of the live ones.
    reports = [x for x in d if x.kind == "operation" and x.type == "add" and x.ok]
    steps = len(main_wo["_actions"])
    assert [str(x.external_id) for x in reports[: steps - 1]] == [
        f"{main_wo['workorderNumber']}/{op['actCode']}" for op in main_wo["_actions"][:-1]
    ]
    finished = [reports[steps - 1], reports[-1]]
    assert len(reports) == steps + 1
    purchases = {p["invoice_no"]: p for p in store.purchases.values()}
    assert set(purchases) == {str(x.external_id) for x in finished}
    bought = [purchases[str(x.external_id)] for x in finished]
    assert all(p["customer_id"] == PRODUCTION_SUPPLIER for p in bought)
    assert [(p["products"][0]["quantity"], p["products"][0]["sell_line_note"]) for p in bought] == [
        (qty - 1, "SN-HD1-01"),
        (qty, "SN-HD1-01"),
    ]
    assert [p["shipping_status"] for p in bought] == ["cancelled", "delivered"]
    undo = next(x for x in d if x.kind == "operation" and x.type == "remove")
    assert undo.ok and undo.external_id == finished[0].external_id
    main_product = (by_code[main_wo["sku"]]["id"], BRANCH)
    assert store.stock[main_product] == stock_before[main_product] + qty


async def test_remove_without_external_id_and_erp_errors_over_http(stack: Stack) -> None:
    assert all(o.ok for o in await stack.poll("nextx.workorders"))
    number = min(_nextplus_orders(stack))
    nextx = stack.simulators["nextx"]
    before = nextx.store.snapshot()
    base = {
        "sku": "SP000010",
        "workorderNumber": number,
        "actCode": "KT",
        "workCenterCode": "WC-3",
        "position": 30,
        "validQty": 1,
        "invalidQty": 0,
        "workorderExternalId": None,
        "operationExternalId": None,
    }
    async with httpx.AsyncClient() as client:
        op = await client.post(
            stack.webhook("/nextx/operation"), json={**base, "type": "remove", "externalId": None}
        )
        assert op.status_code == 409 and "has no NextX externalId" in op.json()["message"]
        gone = await client.post(
            stack.webhook("/nextx/operation"),
            json={**base, "type": "remove", "externalId": "MESP-250101000000000-X"},
        )
        assert gone.status_code == 404
        assert gone.json() == {
            "message": "NextX has no purchase MESP-250101000000000-X: it was deleted or renumbered in NextX"
        }
        device = await client.post(
            stack.webhook("/nextx/device"),
            json={
                "type": "remove",
                "workorderNumber": number,
                "sku": "SP000010",
                "serial": "SN-9",
                "externalId": None,
                "workorderExternalId": None,
            },
        )
        assert device.status_code == 200 and device.json() == {"externalId": f"{number}/SN-9"}
    assert nextx.store.snapshot() == before


async def test_a_detach_sent_again_answers_its_return_whatever_the_return_list_search_matches(
    stack: Stack, monkeypatch: Any
) -> None:
    """The return list's strSearch is documented for products (seed 003 line 3790); a NextX that matches
    it against something else (its return numbers only, say) must not hide the return already made, or
    a detach the MES sends again (its reply lost) returns the component twice."""
    store = stack.simulators["nextx"].store
    assert all(o.ok for o in await stack.poll("nextx.workorders"))
    number = min(_nextplus_orders(stack))
    component = store.products[3]
    store.stock[(3, BRANCH)] = 50.0
    # This NextX's sell-return search sees only the return's own number (a return record names its
    # sell_id; a sell does not).
    original = store._filtered

    def numbers_only(rows: list[dict[str, Any]], query: Any, text: Any) -> list[dict[str, Any]]:
        returns = bool(rows) and "sell_id" in rows[0]
        return original(rows, query, (lambda r: r["invoice_no"].lower()) if returns else text)

    monkeypatch.setattr(store, "_filtered", numbers_only)
    item = {"sku": component["product_code"], "quantity": 2}
    event = {"workorderNumber": number, "sku": "SP000010", "serial": "SN-1", "workorderExternalId": None}
    async with httpx.AsyncClient() as client:
        url = stack.webhook("/nextx/item-attach")
        attach = await client.post(url, json={**event, "type": "add", "item": item})
        assert attach.status_code == 200, attach.text
        sold = attach.json()["externalId"]
        detach = {**event, "type": "remove", "item": {**item, "externalId": sold}}
        first = await client.post(url, json=detach)
        again = await client.post(url, json=detach)
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.json() == first.json(), again.text
    assert [r["invoice_no"] for r in store.returns.values()] == [first.json()["externalId"]]
    assert store.stock[(3, BRANCH)] == 50.0
