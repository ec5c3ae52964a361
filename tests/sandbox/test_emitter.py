"""Integration Builder emitter and scripted shifts against a receiving ERP endpoint over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.emitter import GENERIC_FAILURE, IntegrationBuilder
from sandbox.nextplus import seed_workorders
from sandbox.serve import serve_in_thread
from sandbox.shift import ACTION_KINDS, Action, play_shift, script_shift

DEVICE_KEYS = {
    "type",
    "workorderNumber",
    "sku",
    "serial",
    "workorderId",
    "stockId",
    "sessionId",
    "workorderExternalId",
}
ID_KEYS = ("workorderId", "stockId", "sessionId")


class Receiver:
    """A tiny ERP side: records every POST and answers by simple rules."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.counter = 0

    async def handle(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        self.received.append((kind, body))
        self.counter += 1
        serial = body.get("serial") or ""
        item = body.get("item") or {}
        if serial == "BAD" or item.get("sku") == "REFUSE":
            return JSONResponse({"message": "Seria nu exista in ERP"}, status_code=400)
        if item.get("sku") == "NOMSG":
            return Response("boom", status_code=500)
        if item.get("sku", "").startswith("RM"):
            return Response(status_code=204)
        return JSONResponse({"externalId": f"{kind}-{self.counter}"}, status_code=201)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook/{kind}", self.handle, methods=["POST"])])


@pytest.fixture
def erp() -> Iterator[tuple[Receiver, dict[str, str]]]:
    receiver = Receiver()
    with serve_in_thread(receiver.app()) as url:
        yield receiver, {k: f"{url}/hook/{k}" for k in ("device", "item_attach", "operation")}


def workorder(**extra: Any) -> dict[str, Any]:
    base = seed_workorders(1, 0)[0]
    return {**base, "id": str(uuid.uuid4()), "source": "ERP", "externalId": "ERP-WO-9", **extra}


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


async def test_device_events_carry_external_id_back(erp) -> None:
    receiver, urls = erp
    builder = IntegrationBuilder(source="ERP", urls=urls)
    wo = workorder()
    added = await builder.set_serial(wo, "SN-1")
    assert added is not None and added.ok and added.status == 201 and added.external_id == "device-1"
    await builder.change_serial(wo, "SN-2")
    await builder.remove_serial(wo)
    (_, add), (_, update), (_, remove) = receiver.received
    assert set(add) == DEVICE_KEYS and add["type"] == "add" and add["serial"] == "SN-1"
    assert all(is_uuid(add[k]) for k in ID_KEYS) and add["workorderId"] == wo["id"]
    assert add["workorderExternalId"] == "ERP-WO-9"
    assert set(update) == DEVICE_KEYS | {"oldSerial", "externalId"}
    assert (update["oldSerial"], update["serial"], update["externalId"]) == ("SN-1", "SN-2", "device-1")
    assert set(remove) == DEVICE_KEYS | {"externalId"} and remove["externalId"] == "device-2"


async def test_item_attach_shapes(erp) -> None:
    receiver, urls = erp
    builder = IntegrationBuilder(source="ERP", urls=urls)
    wo = workorder(externalId="")
    await builder.set_serial(wo, "SN-1")
    await builder.attach_item(wo, "SC-1", 1, serial="C-SN-1", workorder_number="WO-SUB")
    await builder.attach_item(wo, "RM-1", 5)
    await builder.detach_item(wo, "SC-1")
    await builder.detach_item(wo, "RM-1")
    attach = receiver.received[1][1]
    assert attach["type"] == "add" and attach["serial"] == "SN-1" and attach["externalId"] == "device-1"
    assert attach["item"] == {"sku": "SC-1", "quantity": 1, "serial": "C-SN-1", "workorderNumber": "WO-SUB"}
    assert attach["workorderExternalId"] is None
    qty_only = receiver.received[2][1]["item"]
    assert qty_only == {"sku": "RM-1", "quantity": 5}
    detach_serial = receiver.received[3][1]["item"]
    assert detach_serial["externalId"] == "item_attach-2"
    detach_qty = receiver.received[4][1]["item"]
    assert "externalId" not in detach_qty  # the attach reply (204) gave none


async def test_operation_report_and_undo(erp) -> None:
    receiver, urls = erp
    builder = IntegrationBuilder(source="ERP", urls=urls)
    wo = workorder()
    step = wo["_actions"][0]
    await builder.report_operation(wo, step["actCode"], 2, 1)
    await builder.undo_report(wo, step["actCode"])
    (_, add), (_, remove) = receiver.received
    assert "serial" not in add and "externalId" not in add
    assert (add["actCode"], add["workCenterCode"], add["position"]) == (
        step["actCode"],
        step["workCenterCode"],
        step["position"],
    )
    assert (add["validQty"], add["invalidQty"]) == (2, 1)
    assert add["operationExternalId"] == str(step["otherId"])
    assert remove["type"] == "remove" and remove["externalId"] == "operation-1"


async def test_failures_keep_message_or_generic_text(erp) -> None:
    receiver, urls = erp
    builder = IntegrationBuilder(source="ERP", urls=urls)
    wo = workorder()
    refused = await builder.set_serial(wo, "BAD")
    assert refused is not None and not refused.ok and refused.status == 400
    assert refused.message == "Seria nu exista in ERP"
    assert builder.devices[wo["workorderNumber"]].serial is None  # the action did not happen
    silent = await builder.attach_item(wo, "NOMSG", 1)
    assert silent is not None and silent.message == GENERIC_FAILURE.format(status=500)


async def test_unreachable_erp_is_a_failure() -> None:
    builder = IntegrationBuilder(source="ERP", urls={"device": "http://127.0.0.1:9/nothing"}, timeout=2)
    delivery = await builder.set_serial(workorder(), "SN-1")
    assert delivery is not None and not delivery.ok and delivery.status is None and delivery.message


async def test_other_source_and_disabled_kind_send_nothing(erp) -> None:
    receiver, urls = erp
    builder = IntegrationBuilder(source="ERP", urls={"device": urls["device"]})
    assert await builder.set_serial(workorder(source="MANUAL"), "SN-1") is None
    assert await builder.report_operation(workorder(), "ASSY", 1) is None
    assert receiver.received == []


async def test_scripted_shift_is_deterministic_and_plays(erp) -> None:
    receiver, urls = erp
    wos = [{**w, "id": str(uuid.UUID(int=n))} for n, w in enumerate(seed_workorders(6, 1))]
    actions = script_shift(wos, seed=4)
    assert actions == script_shift(wos, seed=4)
    assert {a.kind for a in actions} == set(ACTION_KINDS)
    assert [Action.from_dict(a.to_dict()) for a in actions] == actions
    assert any(a.kind == "attach_item" and "workorderNumber" in a.params for a in actions)
    summary = await play_shift(IntegrationBuilder(source="ERP", urls=urls), wos, actions)
    assert summary.sent == len(receiver.received) > 0
    assert summary.succeeded == summary.sent and not summary.failures
    assert summary.skipped > 0  # WO-1004 has source MANUAL
    assert all(body["workorderNumber"] != "WO-1004" for _, body in receiver.received)


async def test_shift_failures_are_summarised(erp) -> None:
    _, urls = erp
    wo = workorder()
    actions = [
        Action("set_serial", wo["workorderNumber"], {"serial": "BAD"}),
        Action("remove_serial", wo["workorderNumber"]),
    ]
    summary = await play_shift(IntegrationBuilder(source="ERP", urls=urls), [wo], actions)
    assert summary.sent == 1 and summary.failures[0]["message"] == "Seria nu exista in ERP"
    assert summary.refused[0]["action"]["kind"] == "remove_serial"
