"""The Priority binding end to end: Priority work orders polled into Next Plus, then the Next Plus
Integration Builder's events through the engine's webhook routes into the Priority simulator."""

from __future__ import annotations

from typing import Any

import httpx

from engine.helpers import iso8601
from sandbox.emitter import IntegrationBuilder
from sandbox.priority_data import CLOSED, DRAFT
from tests.e2e.conftest import Stack

OVER_BALANCE = 'הכמות המדווחת עולה על יתרת הפק"ע'


def _np_workorders(stack: Stack) -> dict[str, dict[str, Any]]:
    return {w["workorderNumber"]: w for w in stack.simulators["nextplus"].workorders.values()}


def _child(stack: Stack, order: dict[str, Any], subform: str) -> list[dict[str, Any]]:
    return list(stack.simulators["priority"].store.child(order, subform))


def _builder(stack: Stack) -> IntegrationBuilder:
    return IntegrationBuilder(
        source=stack.project.variables["priority"]["source"],
        urls={
            "device": stack.webhook("/priority/device"),
            "item_attach": stack.webhook("/priority/item-attach"),
            "operation": stack.webhook("/priority/operation"),
        },
        timeout=20,
    )


async def _poll_all(stack: Stack) -> dict[str, dict[str, Any]]:
    outcomes = await stack.poll("priority.workorders")
    assert outcomes and all(o.ok for o in outcomes), [o.body for o in outcomes if not o.ok]
    return _np_workorders(stack)


async def test_work_orders_reach_next_plus_with_every_mapped_field(stack: Stack) -> None:
    priority = stack.simulators["priority"]
    mes = await _poll_all(stack)
    for order in priority.store.tables["SERIAL"]:
        number = order["SERIALNAME"]
        if order["SERIALSTATUSDES"] == DRAFT:
            assert number not in mes
            continue
        wo = mes[number]
        part = priority.store.tables["LOGPART"].get((order["PARTNAME"],))
        assert wo["source"] == "PRIORITY"
        assert (wo["sku"], wo["quantity"], wo["name"]) == (order["PARTNAME"], order["QUANT"], number)
        assert wo["productRev"] == order["REVNAME"] and wo["partDesc"] == part["PARTDES"]
        assert wo["releasedAt"] == iso8601(order["RELEASEDATE"])
        assert wo["erpProductionEndDate"] == iso8601(order["CLOSEDATE"])
        assert wo["erpStatus"] == order["SERIALSTATUSDES"] == wo["C_PriorityStatus"]
        assert wo["erpClosed"] is (order["SERIALSTATUSDES"] == CLOSED)
        assert wo["orderNumber"] == (order["ORDNAME"] or None)
        assert wo["externalId"] == str(order["SERIAL"])
        kit = _child(stack, order, "KITITEMS_SUBFORM")
        assert [(k["sku"], k["quantity"], k["act"], k["issuedQuantity"]) for k in wo["kitItems"]] == [
            (k["PARTNAME"], k["QUANT"], k["ACTNAME"], k["TQUANT"]) for k in kit
        ]
        # each kit unit is the part's own, from its LOGPART card
        assert [k["unit"] for k in wo["kitItems"]] == [
            priority.store.tables["LOGPART"].get((k["PARTNAME"],))["UNITNAME"] for k in kit
        ]
        routing = _child(stack, order, "SERACT_SUBFORM")
        assert [(a["actCode"], a["actDesc"], a["position"]) for a in wo["_actions"]] == [
            (r["ACTNAME"], r["ACTDES"], r["POS"]) for r in routing
        ]
    # A change in Priority reaches the same Next Plus record on the next poll (PATCH, not a duplicate).
    first = next(o for o in priority.store.tables["SERIAL"] if o["SERIALSTATUSDES"] != DRAFT)
    priority.update("SERIAL", priority.store.tables["SERIAL"], first, {"QUANT": first["QUANT"] + 5}, None)
    again = await stack.poll("priority.workorders")
    assert any(
        o.body.get("workorderNumber") == first["SERIALNAME"] and o.body["created"] is False for o in again
    )
    mes_after = _np_workorders(stack)
    assert mes_after[first["SERIALNAME"]]["quantity"] == first["QUANT"]
    assert len(mes_after) == len(mes)


async def test_integration_builder_events_change_priority_record_by_record(stack: Stack) -> None:
    priority = stack.simulators["priority"]
    mes = await _poll_all(stack)
    orders = priority.store.tables["SERIAL"]
    number = next(
        o["SERIALNAME"] for o in orders if o["SERIALSTATUSDES"] not in (DRAFT, CLOSED) and o["QUANT"] >= 2
    )
    wo, order = mes[number], orders.get((number,))
    builder = _builder(stack)

    # Device/Serial: add, update, remove.
    added = await builder.set_serial(wo, "SN-E2E-1")
    assert added is not None and added.ok and added.external_id == "SN-E2E-1"
    assert [s["SERNUM"] for s in _child(stack, order, "SERNTRANS_SUBFORM")] == ["SN-E2E-1"]
    card = next(c for c in priority.store.tables["SERNUMBERS"] if c["SERNUM"] == "SN-E2E-1")
    assert (card["PARTNAME"], card["SERIALNAME"]) == (order["PARTNAME"], number)
    changed = await builder.change_serial(wo, "SN-E2E-2")
    assert changed is not None and changed.ok and changed.external_id == "SN-E2E-2"
    assert [s["SERNUM"] for s in _child(stack, order, "SERNTRANS_SUBFORM")] == ["SN-E2E-2"]
    assert not any(c["SERNUM"] == "SN-E2E-1" for c in priority.store.tables["SERNUMBERS"])

    # Item Attach: a kit component by quantity, a serial-managed one off the kit; then detach.
    kit_line = _child(stack, order, "KITITEMS_SUBFORM")[0]
    issued_before = kit_line["TQUANT"]
    item = await builder.attach_item(wo, kit_line["PARTNAME"], 2)
    assert item is not None and item.ok
    issues = _child(stack, order, "TRANSORDER_K_SUBFORM")
    assert [(i["TRANS"], i["PARTNAME"], i["QUANT"], i["KLINE"]) for i in issues] == [
        (int(item.external_id or 0), kit_line["PARTNAME"], 2, kit_line["KLINE"])
    ]
    assert kit_line["TQUANT"] == issued_before + 2
    serial_item = await builder.attach_item(wo, "C-00007", 1, serial="CS-E2E")
    assert serial_item is not None and serial_item.ok
    assert _child(stack, order, "TRANSORDER_K_SUBFORM")[-1]["SERNUM"] == "CS-E2E"
    detached = await builder.detach_item(wo, kit_line["PARTNAME"])
    assert detached is not None and detached.ok
    assert [i["PARTNAME"] for i in _child(stack, order, "TRANSORDER_K_SUBFORM")] == ["C-00007"]
    assert kit_line["TQUANT"] == issued_before

    # Operation: report, refuse an over-balance report with Priority's text, undo.
    act = wo["_actions"][0]["actCode"]
    report = await builder.report_operation(wo, act, 1, 1)
    assert report is not None and report.ok
    line = priority.store.tables["ALINE_ONE"].get((int(report.external_id or 0), 1))
    assert (line["SERIALNAME"], line["ACTNAME"], line["QUANT"], line["SQUANT"]) == (number, act, 1, 1)
    assert [s["SERNUM"] for s in priority.store.child(line, "ALSERNTRANS_SUBFORM")] == ["SN-E2E-2"]
    refused = await builder.report_operation(wo, act, order["QUANT"] * 10, 0)
    assert refused is not None and not refused.ok
    assert refused.status is not None and refused.status >= 400 and refused.message == OVER_BALANCE
    undone = await builder.undo_report(wo, act)
    assert undone is not None and undone.ok
    assert priority.store.tables["ALINE_ONE"].get((int(report.external_id or 0), 1)) is None

    removed = await builder.remove_serial(wo)
    assert removed is not None and removed.ok
    assert _child(stack, order, "SERNTRANS_SUBFORM") == []


async def test_a_scripted_shift_reports_only_priority_messages(stack: Stack) -> None:
    await _poll_all(stack)
    admin = f"{stack.urls['nextplus']}/_admin"
    urls = {
        "device": stack.webhook("/priority/device"),
        "item_attach": stack.webhook("/priority/item-attach"),
        "operation": stack.webhook("/priority/operation"),
    }
    async with httpx.AsyncClient(timeout=120) as client:
        configured = await client.put(
            f"{admin}/integration", json={"source": "PRIORITY", "urls": urls, "timeout": 20}
        )
        assert configured.status_code == 200
        summary = (await client.post(f"{admin}/shift", json={"seed": 3})).json()
    assert summary["sent"] > 0 and summary["succeeded"] > 0
    priority = stack.simulators["priority"]
    for failure in summary["failures"]:
        # every refusal the operator sees is Priority's own text (over balance, closed order)
        assert failure["status"] >= 400 and failure["message"], failure
        assert "Integration failed" not in failure["message"], failure
    reports = [
        d for d in summary["deliveries"] if d["kind"] == "operation" and d["type"] == "add" and d["ok"]
    ]
    undone = [
        d for d in summary["deliveries"] if d["kind"] == "operation" and d["type"] == "remove" and d["ok"]
    ]
    assert len(priority.store.tables["ALINE_ONE"]) == len(reports) - len(undone)


async def test_service_call_becomes_repair_order_and_fix_goes_back(stack: Stack) -> None:
    priority = stack.simulators["priority"]
    outcomes = await stack.poll("priority.service_calls")
    assert all(o.ok for o in outcomes), [o.body for o in outcomes if not o.ok]
    mes = _np_workorders(stack)
    call = next(c for c in priority.store.tables["DOCUMENTS_Q"] if c["CALLSTATUSCODE"] == "חדשה")
    repair = mes[f"RMA-{call['DOCNO']}"]
    card = next(c for c in priority.store.tables["SERNUMBERS"] if c["SERNUM"] == call["SERNUM"])
    assert repair["source"] == "PRIORITY-RMA"  # no Integration Builder events for Next Plus-only orders
    assert (repair["rmaNumber"], repair["sku"], repair["customerDiagnosis"]) == (
        call["DOCNO"],
        card["PARTNAME"],
        call["DETAILS"],
    )
    assert repair["malfunctionCode"] and repair["generatedSerials"] == [
        {"serial": call["SERNUM"], "otherId": ""}
    ]
    reply = httpx.post(
        stack.webhook("/priority/repair-done"),
        json={"rmaNumber": call["DOCNO"], "fixDescription": "הוחלף ספק כוח"},
    )
    assert reply.status_code == 200 and reply.json() == {"externalId": call["DOCNO"]}
    text = _child(stack, call, "DOCTEXT_Q_SUBFORM")
    assert text[0]["TEXT"] == "הוחלף ספק כוח"
    # A call opened long before, closed at the first poll, that moves into an open status later is read
    # on the next poll: the poll asks for the open statuses, not for calls started after a cursor.
    calls = list(priority.store.tables["DOCUMENTS_Q"])
    closed = min((c for c in calls if c["CALLSTATUSCODE"] == "סגורה"), key=lambda c: c["STARTDATE"])
    assert f"RMA-{closed['DOCNO']}" not in mes
    # started before calls the first poll delivered: a STARTDATE cursor would have passed it by
    assert closed["STARTDATE"] < max(c["STARTDATE"] for c in calls if f"RMA-{c['DOCNO']}" in mes)
    table = priority.store.tables["DOCUMENTS_Q"]
    priority.update("DOCUMENTS_Q", table, closed, {"CALLSTATUSCODE": "בטיפול"}, None)
    again = await stack.poll("priority.service_calls")
    assert all(o.ok for o in again), [o.body for o in again if not o.ok]
    reopened = _np_workorders(stack)[f"RMA-{closed['DOCNO']}"]
    assert (reopened["rmaNumber"], reopened["erpStatus"]) == (closed["DOCNO"], "בטיפול")
    missing = httpx.post(
        stack.webhook("/priority/repair-done"), json={"rmaNumber": "SC99", "fixDescription": "x"}
    )
    assert missing.status_code >= 400
    assert (
        missing.json()["message"]
        == "The requested resource was not found: DOCUMENTS_Q(DOCNO='SC99',TYPE='Q')."
    )
