"""The NextUp binding end to end, over real HTTP: NextUp production orders polled into Next Plus, then a
scripted operator shift from the Next Plus Integration Builder through the engine's /nextup/* webhooks,
with the NextUp simulator's records checked one by one."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jmespath

from engine.helpers import iso8601
from tests.e2e.conftest import Stack

POLL = "nextup.workorders"


def _id(external_id: str) -> int:
    return int(external_id.rsplit("/", 1)[1])


def _by_number(stack: Stack) -> dict[str, dict[str, Any]]:
    return {w["workorderNumber"]: w for w in stack.simulators["nextplus"].workorders.values()}


def _expected_workorder(
    order: dict[str, Any], articles: dict[str, Any], variables: dict[str, Any]
) -> dict[str, Any]:
    """What the binding promises in Next Plus for one NextUp production order."""
    return {
        "sku": order["ArticleCode"],
        "quantity": order["Quantity"],
        "workorderNumber": order["Code"],
        "source": variables["source"],
        "externalId": str(order["Id"]),
        "name": articles[order["ArticleCode"]]["Name"],
        "partDesc": articles[order["ArticleCode"]]["Name"],
        "kitItems": [
            {
                "sku": c["ArticleCode"],
                "quantity": c["Quantity"],
                "unit": articles[c["ArticleCode"]]["UnitOfMeasure"],
                "serials": [{"sku": c["ArticleCode"], "serial": s} for s in c["Serials"]],
                "lotNumbers": [{"sku": c["ArticleCode"], "lotNumber": c["Lot"], "quantity": c["Quantity"]}]
                if c["Lot"]
                else [],
            }
            for c in order["Components"]
        ],
        "_actions": [
            {
                "actCode": op["Code"],
                "actDesc": op["Name"],
                "workCenter": op["WorkCenter"],
                "workCenterCode": variables["mes_work_centres"].get(op["WorkCenter"], op["WorkCenter"]),
                "position": op["Position"],
            }
            for op in order["Operations"]
        ],
        "customer": {"accountNumber": order["Customer"]["Code"], "accountName": order["Customer"]["Name"]},
        "project": {"projectNumber": order["Project"]},
        "erpProductionStartDate": iso8601(order["StartDate"]),
        "erpProductionEndDate": iso8601(order["EndDate"]),
        "expectedDate": iso8601(order["EndDate"]),
        "erpStatus": order["Status"],
        "erpClosed": order["Status"] not in variables["open_statuses"],
        "priority": variables["default_priority"],
        **{name: _jmes(order, path) for name, path in variables["custom_fields"].items()},
    }


def _jmes(record: dict[str, Any], path: str) -> Any:
    return jmespath.search(path, record)


async def test_production_orders_become_next_plus_work_orders_with_every_field(stack: Stack) -> None:
    nextup = stack.simulators["nextup"]
    variables = stack.project.variables["nextup"]
    # Enough orders for three pages of 100, some with serial-managed components.
    template = next(iter(nextup.company.production_orders.values()))
    for n in range(224):
        code = f"CP-{900000 + n}"
        order = copy.deepcopy(template)
        order.update(Id=50_000 + n, Code=code, LastModified=f"2025-03-20T09:{n // 60:02d}:{n % 60:02d}")
        order["Components"][1]["Serials"] = [f"S-{n}-A", f"S-{n}-B"]
        nextup.company.production_orders[code] = order
    orders = copy.deepcopy(list(nextup.company.production_orders.values()))
    articles = copy.deepcopy(nextup.company.articles)
    nextup.calls.clear()

    outcomes = await stack.poll(POLL)

    assert [o.error for o in outcomes if not o.ok] == []
    assert len(outcomes) == len(orders) == 230
    assert all(o.body["created"] is True for o in outcomes)
    pages = [c["body"]["Params"] for c in nextup.calls if c["body"]["Method"] == "GetProductionOrders"]
    assert [(p["Page"], p["PageSize"]) for p in pages] == [(1, 100), (2, 100), (3, 100)]
    assert all(p["ModifiedSince"] for p in pages)
    in_mes = _by_number(stack)
    for order in orders:
        record = in_mes[order["Code"]]
        expected = _expected_workorder(order, articles, variables)
        assert {k: record.get(k) for k in expected} == expected, order["Code"]

    # The next poll re-reads only the overlap and updates in place: no duplicate work orders.
    again = await stack.poll(POLL)
    assert all(o.ok and o.body["created"] is False for o in again)
    assert len(again) < len(orders)
    assert (
        len([w for w in stack.simulators["nextplus"].workorders.values() if w["source"] == "NEXTUP"]) == 230
    )


async def test_an_operator_shift_reaches_nextup_record_by_record(stack: Stack) -> None:
    nextplus, nextup = stack.simulators["nextplus"], stack.simulators["nextup"]
    variables = stack.project.variables["nextup"]
    started = datetime.now(ZoneInfo(variables["time_zone"]))
    assert all(o.ok for o in await stack.poll(POLL))
    ours = [w for w in nextplus.workorders.values() if w["source"] == variables["source"]]
    assert len(ours) == 6
    for wo in ours:  # the MES generates the serials it will build
        wo["generatedSerials"] = [
            {"serial": f"SN-{wo['workorderNumber']}-{n}", "otherId": ""} for n in (1, 2)
        ]
    async with httpx.AsyncClient(base_url=stack.urls["nextplus"], timeout=60) as admin:
        reply = await admin.put(
            "/_admin/integration",
            json={
                "source": variables["source"],
                "urls": {
                    "device": stack.webhook("/nextup/device"),
                    "item_attach": stack.webhook("/nextup/item-attach"),
                    "operation": stack.webhook("/nextup/operation"),
                },
            },
        )
        assert reply.status_code == 200
        summary = (await admin.post("/_admin/shift", json={"seed": 7})).json()
    builder = nextplus.integration
    deliveries = list(builder.deliveries)
    assert summary["sent"] == len(deliveries) > 0
    assert {(d.kind, d.type) for d in deliveries if d.ok} >= {
        ("device", "add"),
        ("device", "update"),
        ("item_attach", "add"),
        ("item_attach", "remove"),
        ("operation", "add"),
        ("operation", "remove"),
    }
    # Operator actions outside the script: remove a serial, over-report an operation.
    victim = next(
        w
        for w in ours
        if builder.devices.get(w["workorderNumber"], None) and builder.devices[w["workorderNumber"]].serial
    )
    removed = await builder.remove_serial(victim)
    assert removed is not None and removed.ok, removed
    order = nextup.company.production_orders[ours[0]["workorderNumber"]]
    first_op = order["Operations"][0]["Code"]
    over = await builder.report_operation(ours[0], first_op, order["Quantity"] + 5, 0)
    assert over is not None and not over.ok and over.status == 422
    assert over.message == (
        f"Cantitatea raportata ({order['Quantity'] + 5}) depaseste cantitatea ramasa (0) "
        f'pentru operatia "{first_op}" a comenzii de productie "{order["Code"]}".'
    )
    deliveries = list(builder.deliveries)

    # Replay the replies: what NextUp must now hold. A note is dated with the day in the company's
    # time zone (the shift ran within these two moments), whatever the day in UTC.
    zone = ZoneInfo(variables["time_zone"])
    days = {started.strftime("%Y-%m-%d"), datetime.now(zone).strftime("%Y-%m-%d")}
    documents: dict[int, dict[str, Any]] = {}
    final_good: dict[str, float] = {}
    consumption = variables["consumption"]
    for d in deliveries:
        p = d.payload
        if not d.ok:
            # A refusal is NextUp's own message (Romanian) or the binding's stock check, never the
            # MES's generic text.
            assert d.message and not d.message.startswith("Integration failed"), d
            assert d.status == 422 or (d.status == 409 and d.message.startswith("Not enough ")), d
            continue
        if d.kind == "device":
            # no NextUp record: the unit is named, and its serial travels on the reports
            expected = p.get("externalId") if d.type == "remove" else f"{p['workorderNumber']}/{p['serial']}"
            assert d.external_id == expected, d
        elif d.kind == "item_attach":
            if d.type == "add":
                item = p["item"]
                warehouse = variables["warehouses"][
                    "subassemblies" if item.get("workorderNumber") else "materials"
                ]
                documents[_id(d.external_id)] = {
                    "Type": "AVZ",
                    "Valid": True,
                    "PartnerId": consumption["partner_id"],
                    "Currency": consumption["currency"],
                    "Lines": [
                        {
                            "ArticleCode": item["sku"],
                            "Quantity": item["quantity"],
                            "UnitPrice": consumption["unit_price"],
                            "VATRateId": consumption["vat_rate_id"],
                            "WarehouseId": warehouse,
                            "Serial": item.get("serial"),
                        }
                    ],
                }
            else:
                documents[_id(p["item"]["externalId"])]["Valid"] = False
        elif d.type == "add":
            documents[_id(d.external_id)] = {
                "Type": "RP",
                "Valid": True,
                "ProductionOrderCode": p["workorderNumber"],
                "OperationCode": p["actCode"],
                "Quantity": p["validQty"],
                "RejectedQuantity": p["invalidQty"],
                "WorkCenter": variables["work_centres"][p["workCenterCode"]],
                "Serial": p.get("serial"),
            }
        else:
            documents[_id(p["externalId"])]["Valid"] = False
    for doc in documents.values():
        if doc["Type"] != "RP":
            continue
        po = nextup.company.production_orders[doc["ProductionOrderCode"]]
        if doc["Valid"] and doc["OperationCode"] == po["Operations"][-1]["Code"]:
            final_good[po["Code"]] = final_good.get(po["Code"], 0) + doc["Quantity"]
    assert any(doc["Type"] == "RP" and doc["Serial"] for doc in documents.values())

    company = nextup.company
    actual = {i: d for i, d in company.documents.items() if d["Type"] in ("AVZ", "RP")}
    assert set(actual) == set(documents)
    for doc_id, expected in documents.items():
        assert {k: actual[doc_id][k] for k in expected} == expected, doc_id
        if expected["Type"] == "AVZ":
            assert actual[doc_id]["Date"] in days, (doc_id, actual[doc_id]["Date"], days)
    for wo in ours:
        po = company.production_orders[wo["workorderNumber"]]
        assert po["ReportedQuantity"] == final_good.get(po["Code"], 0), po["Code"]

    # The reports changed the orders in NextUp: the next poll updates the Next Plus work orders.
    updated = await stack.poll(POLL)
    assert updated and all(o.ok for o in updated)
    in_mes = _by_number(stack)
    for wo in ours:
        po = company.production_orders[wo["workorderNumber"]]
        assert in_mes[po["Code"]]["C_NextUpReportedQty"] == po["ReportedQuantity"]
