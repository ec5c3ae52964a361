"""`mesbridge run examples/session-odata` over real HTTP against the Service Layer-style simulator and
Next Plus.

The connector logs in once, sends the B1SESSION and ROUTEID cookies it was given (the simulator
refuses a session without its route), and logs in again when the simulator ends the session after a
few requests (HTTP 401 "Invalid session."), repeating the refused call once.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.examples import session_odata_sim
from tests.examples.conftest import Example, wait_for

PASSWORD = session_odata_sim.CREDENTIALS["Password"]


def start(example: Any, size: int, **session: Any) -> Example:
    app = session_odata_sim.create_app(size=size, seed=5, **session)
    return example("session-odata", app, "SERVICELAYER_URL", "/b1s/v1", SERVICELAYER_PAGE_SIZE="10")


def listings(sim: Any) -> list[dict[str, Any]]:
    return [c for c in list(sim.calls) if c["method"] == "GET" and c["path"].endswith("/ProductionOrders")]


def test_the_poll_follows_next_links_into_next_plus_through_an_ending_session(example: Any) -> None:
    running = start(example, 45, session_requests=3)
    orders = running.erp.orders.values()
    wanted = sorted(str(o["DocumentNumber"]) for o in orders if o["ProductionOrderStatus"] == "boposReleased")
    listed = [o for o in orders if o["ProductionOrderStatus"] in ("boposReleased", "boposClosed")]
    assert wait_for(lambda: len(running.workorders()) >= len(wanted), 20), running.workorders()
    assert wait_for(running.drained, 10)
    assert sorted(running.workorders()) == wanted  # each released order once; the closed ones not created
    pages = [c for c in listings(running.erp) if c["status"] == 200]
    assert len(pages) == math.ceil(len(listed) / 10) >= 4
    skips = [parse_qs(c["query"]).get("$skip", ["0"])[0] for c in pages]
    assert skips == [str(10 * n) for n in range(len(pages))]
    assert {c["headers"]["prefer"] for c in pages} == {"odata.maxpagesize=10"}
    refused = [c for c in listings(running.erp) if c["status"] == 401]
    assert running.erp.expired >= 1 and len(refused) == running.erp.expired
    assert running.erp.logins == running.erp.expired + 1  # one new login per ended session
    assert running.dead_letters() == []
    sample = next(o for o in orders if o["ProductionOrderStatus"] == "boposReleased")
    created = next(
        w
        for w in running.nextplus.workorders.values()
        if w["workorderNumber"] == str(sample["DocumentNumber"])
    )
    assert created["sku"] == sample["ItemNo"] and created["quantity"] == sample["PlannedQuantity"]
    assert [k["sku"] for k in created["kitItems"]] == [
        line["ItemNo"] for line in sample["ProductionOrderLines"]
    ]
    assert [a["actCode"] for a in created["_actions"]] == [
        s["Name"] for s in sample["ProductionOrdersStages"]
    ]
    log = running.log()
    assert "servicelayer: token rejected (HTTP 401); logging in again" in log
    assert PASSWORD not in log


def test_an_operation_report_is_received_and_cancelled_across_ending_sessions(example: Any) -> None:
    running = start(example, 6)
    assert wait_for(lambda: len(running.workorders()) == 5 and running.drained(), 10), running.workorders()
    httpx.put(f"{running.urls['erp']}/_admin/session", json={"requests": 1}).raise_for_status()
    # from now on every session ends after one request: every second call meets 401 Invalid session.
    order = running.erp.orders[101]
    assert order["ProductionOrderStatus"] == "boposReleased"
    event = {
        "type": "add",
        "workorderNumber": str(order["DocumentNumber"]),
        "actCode": "Packing",
        "validQty": 3,
        "invalidQty": 1,
    }
    with httpx.Client(timeout=20) as client:
        added = client.post(running.webhook("/session-odata/operation"), json=event)
        assert added.status_code == 200, added.text
        doc_entry = int(added.json()["externalId"])
        assert list(running.erp.receipts) == [doc_entry]  # one receipt, not two
        receipt = running.erp.receipts[doc_entry]
        assert [
            (line["BaseEntry"], line["Quantity"], line["TransactionType"])
            for line in receipt["DocumentLines"]
        ] == [
            (101, 3.0, "botrntComplete"),
            (101, 1.0, "botrntReject"),
        ]
        assert (order["CompletedQuantity"], order["RejectedQuantity"]) == (3.0, 1.0)
        remove = {**event, "type": "remove", "externalId": str(doc_entry)}
        removed = client.post(running.webhook("/session-odata/operation"), json=remove)
        assert removed.status_code == 200, removed.text
        assert receipt["Cancelled"] == "tYES"
        assert (order["CompletedQuantity"], order["RejectedQuantity"]) == (0.0, 0.0)
        again = client.post(running.webhook("/session-odata/operation"), json=remove)
        assert again.status_code == 200 and again.json() == {
            "externalId": str(doc_entry)
        }  # done, not an error
        assert len(running.erp.receipts) == 2  # the receipt and its one cancellation
        planned = next(
            o for o in running.erp.orders.values() if o["ProductionOrderStatus"] != "boposReleased"
        )
        refused = client.post(
            running.webhook("/session-odata/operation"),
            json={**event, "workorderNumber": str(planned["DocumentNumber"])},
        )
        assert refused.status_code == 422
        assert refused.json()["message"] == f"Production order {planned['DocumentNumber']} is not released"
    assert running.erp.expired >= 3
