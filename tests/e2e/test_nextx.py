"""NextX binding end to end: production orders polled into Next Plus, then an operator shift on them
sent by the Integration Builder through the nextx webhooks, with NextX's state checked record by record."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.emitter import IntegrationBuilder
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


async def test_polled_orders_appear_in_next_plus_with_every_mapped_field(stack: Stack) -> None:
    nextx = stack.simulators["nextx"].store
    outcomes = await stack.poll("nextx.workorders")
    assert outcomes and all(o.ok for o in outcomes), [o.body for o in outcomes if not o.ok]
    assert [o.body["action"] for o in outcomes] == ["created"] * len(nextx.orders)

    created = _nextplus_orders(stack)
    assert set(created) == {o["code"] for o in nextx.orders.values()}
    for order in nextx.orders.values():
        wo = created[order["code"]]
        product = nextx.products[order["product_id"]]
        customer = nextx.customers[order["customer_id"]]
        assert wo["sku"] == order["product_code"]
        assert wo["quantity"] == order["quantity"]
        assert wo["source"] == SOURCE
        assert wo["name"] == f"{order['code']} {product['product_fullname']}"
        assert wo["partDesc"] == product["product_fullname"]
        assert wo["externalId"] == str(order["id"])
        assert wo["customer"] == {"accountNumber": customer["code"], "accountName": customer["name"]}
        assert wo["kitItems"] == [
            {"sku": c["product_code"], "quantity": c["quantity"]} for c in order["components"]
        ]
        assert [(a["actCode"], a["actDesc"], a["workCenterCode"], a["position"]) for a in wo["_actions"]] == [
            (op["code"], op["name"], op["work_center"], op["position"]) for op in order["operations"]
        ]
        assert wo["_actions"][0]["workCenter"] == "Tổ cắt"
        assert wo["erpProductionStartDate"] == f"{order['start_date']}T00:00:00.000Z"
        assert wo["erpProductionEndDate"] == f"{order['end_date']}T00:00:00.000Z"
        assert wo["expectedDate"] == wo["erpProductionEndDate"]
        assert wo["erpStatus"] == order["status"] and wo["erpClosed"] is False
        assert wo["C_NEXTX_ORDER_ID"] == order["id"]
        assert wo["C_PRODUCED_QTY"] == order["produced_qty"]

    # A change in NextX is read again from the cursor and PATCHes the same Next Plus record.
    first = min(nextx.orders.values(), key=lambda o: o["id"])
    first["status"], first["updated_at"] = "done", "2031-01-01 00:00:00"
    ids_before = {n: w["id"] for n, w in _nextplus_orders(stack).items()}
    again = await stack.poll("nextx.workorders")
    # The overlap (60 s) re-reads the previous edge too; the service's poller drops it by `version`.
    assert all(o.ok and o.body["action"] == "updated" for o in again)
    assert first["code"] in {o.body["workorderNumber"] for o in again}
    after = _nextplus_orders(stack)
    assert {n: w["id"] for n, w in after.items()} == ids_before
    assert after[first["code"]]["erpStatus"] == "done" and after[first["code"]]["erpClosed"] is True

    # Nothing new: only the edge record is read again, and only patched again.
    assert [(o.body["workorderNumber"], o.body["action"]) for o in await stack.poll("nextx.workorders")] == [
        (first["code"], "updated")
    ]


async def test_operator_shift_is_booked_in_nextx_record_by_record(stack: Stack) -> None:
    sim = stack.simulators["nextx"]
    store = sim.store
    assert all(o.ok for o in await stack.poll("nextx.workorders"))
    orders = _nextplus_orders(stack)
    main_wo, sub_wo = orders["LSX00001"], orders["LSX00002"]
    main = next(o for o in store.orders.values() if o["code"] == "LSX00001")
    for pid in store.products:  # enough stock for the shift's consumptions
        store.stock[(pid, BRANCH)] = 100.0
    stock_before = dict(store.stock)
    comp_a, comp_b = main["components"][0], main["components"][1]
    last_op = main["operations"][-1]["code"]
    qty = main["quantity"]

    actions = [
        Action("set_serial", "LSX00001", {"serial": "SN-LSX1-01"}),
        # serial-managed, quantity-only, and a sub-assembly with its own work order
        Action(
            "attach_item", "LSX00001", {"sku": comp_a["product_code"], "quantity": 1, "serial": "CMP-Ư-1"}
        ),
        Action("attach_item", "LSX00001", {"sku": comp_b["product_code"], "quantity": 3}),
        Action(
            "attach_item", "LSX00001", {"sku": sub_wo["sku"], "quantity": 1, "workorderNumber": "LSX00002"}
        ),
        *[
            Action(
                "report_operation", "LSX00001", {"actCode": op["code"], "validQty": qty - 1, "invalidQty": 1}
            )
            for op in main["operations"]
        ],
        Action("undo_report", "LSX00001", {"actCode": last_op}),
        Action("report_operation", "LSX00001", {"actCode": last_op, "validQty": qty, "invalidQty": 0}),
        # over-reporting: NextX refuses and the operator sees its own message
        Action("report_operation", "LSX00001", {"actCode": last_op, "validQty": 1, "invalidQty": 0}),
        Action("detach_item", "LSX00001", {"sku": comp_b["product_code"]}),
        Action("change_serial", "LSX00001", {"serial": "SN-LSX1-01-R"}),
        Action("remove_serial", "LSX00001"),
        Action("attach_item", "LSX00002", {"sku": "NO-SUCH-PART", "quantity": 1}),
    ]
    builder = _builder(stack)
    summary = await play_shift(builder, [main_wo, sub_wo], actions)
    assert summary.sent == len(actions) and not summary.refused
    assert [f["message"] for f in summary.failures] == [
        "The quantity may not be greater than 0.",
        f"Component NO-SUCH-PART is not a NextX product (branch {BRANCH})",
    ]
    assert all(f["status"] >= 400 for f in summary.failures)
    d = summary.deliveries

    # Device/Serial: no NextX record; the unit is named workorder/serial.
    assert (d[0].ok, d[0].external_id) == (True, "LSX00001/SN-LSX1-01")
    assert d[-3].external_id == "LSX00001/SN-LSX1-01-R" and d[-2].ok

    # Item Attach: one consumption each, the detached one withdrawn, stock moved by the net.
    attach = d[1:4]
    assert all(x.ok for x in attach)
    records = [store.consumptions[int(str(x.external_id)) - 1] for x in attach]
    sub_product = next(p for p in store.products.values() if p["product_code"] == sub_wo["sku"])
    assert [(r["order_code"], r["branch_id"], r["products"]) for r in records] == [
        ("LSX00001", BRANCH, [{"product_id": comp_a["product_id"], "quantity": 1, "serial": "CMP-Ư-1"}]),
        ("LSX00001", BRANCH, [{"product_id": comp_b["product_id"], "quantity": 3, "serial": None}]),
        ("LSX00001", BRANCH, [{"product_id": sub_product["id"], "quantity": 1, "serial": None}]),
    ]
    detach = next(x for x in d if x.kind == "item_attach" and x.type == "remove")
    assert detach.ok and detach.external_id == attach[1].external_id
    assert [r["reversed"] for r in records] == [False, True, False]
    assert store.stock[(comp_a["product_id"], BRANCH)] == stock_before[(comp_a["product_id"], BRANCH)] - 1
    assert store.stock[(comp_b["product_id"], BRANCH)] == stock_before[(comp_b["product_id"], BRANCH)]
    assert store.stock[(sub_product["id"], BRANCH)] == stock_before[(sub_product["id"], BRANCH)] - 1

    # Operation: one report per add; the undone one withdrawn; produced quantities from the live ones.
    reports = [x for x in d if x.kind == "operation" and x.type == "add" and x.ok]
    booked = [store.reports[int(str(x.external_id)) - 1] for x in reports]
    assert [(r["operation_code"], r["quantity"], r["rejected_quantity"], r["serial"]) for r in booked] == [
        *[(op["code"], qty - 1, 1, "SN-LSX1-01") for op in main["operations"]],
        (last_op, qty, 0, "SN-LSX1-01"),
    ]
    undo = next(x for x in d if x.kind == "operation" and x.type == "remove")
    assert undo.ok and undo.external_id == reports[len(main["operations"]) - 1].external_id
    assert [r["reversed"] for r in booked] == [False] * (len(booked) - 2) + [True, False]
    assert (main["produced_qty"], main["rejected_qty"]) == (qty, 0)
    finished = (main["product_id"], BRANCH)
    assert store.stock[finished] == stock_before[finished] + qty - (
        1 if sub_product["id"] == main["product_id"] else 0
    )


async def test_remove_without_external_id_and_erp_errors_over_http(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        op = await client.post(
            stack.webhook("/nextx/operation"),
            json={
                "type": "remove",
                "sku": "SP000010",
                "workorderNumber": "LSX00001",
                "externalId": None,
                "actCode": "KT",
                "workCenterCode": "WC-3",
                "position": 30,
                "validQty": 1,
                "invalidQty": 0,
                "workorderExternalId": None,
                "operationExternalId": None,
            },
        )
        assert op.status_code == 409 and "has no NextX externalId" in op.json()["message"]
        gone = await client.post(
            stack.webhook("/nextx/operation"),
            json={
                "type": "remove",
                "sku": "SP000010",
                "workorderNumber": "LSX00001",
                "externalId": "999",
                "actCode": "KT",
                "workCenterCode": "WC-3",
                "position": 30,
                "validQty": 1,
                "invalidQty": 0,
            },
        )
        assert gone.status_code >= 400 and gone.json() == {"message": "Production report not found"}
        device = await client.post(
            stack.webhook("/nextx/device"),
            json={
                "type": "remove",
                "workorderNumber": "LSX00001",
                "sku": "SP000010",
                "serial": "SN-9",
                "externalId": None,
                "workorderExternalId": None,
            },
        )
        assert device.status_code == 200 and device.json() == {"externalId": "LSX00001/SN-9"}
    assert stack.simulators["nextx"].store.reports == []
