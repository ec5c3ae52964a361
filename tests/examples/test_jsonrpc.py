"""`mesbridge run examples/jsonrpc` over real HTTP against the JSON-RPC simulator and Next Plus.

The binding has no login step and no credential in its vars: the connector logs in with
common.login and puts db, the numeric uid and the password into every execute_kw. The simulator
ends a login's grant after a number of calls (answering AccessDenied on HTTP 200), so every test
meets a login that dies mid-run; the engine logs in again and repeats the refused call once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config.root import load_project
from engine.errors import ConnectorError
from engine.pipeline.sources.poll import read_changes
from engine.service.generation import live_connectors
from sandbox.serve import serve_in_thread
from tests.examples import jsonrpc_sim
from tests.examples.conftest import Example, wait_for
from tests.service.conftest import REPO

PASSWORD = jsonrpc_sim.CREDENTIALS["password"]


def rpc_calls(sim: Any, method: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The execute_kw calls the simulator answered (optionally of one ORM method and model)."""
    found = []
    for call in list(sim.calls):
        params = (call["body"] or {}).get("params", {})
        if params.get("method") != "execute_kw":
            continue
        args = params["args"]
        if (method is None or args[4] == method) and (model is None or args[3] == model):
            found.append(call)
    return found


def start(example: Any, size: int, **session: Any) -> Example:
    return example("jsonrpc", jsonrpc_sim.create_app(size=size, seed=3, **session), "ODOO_URL")


def test_the_poll_pages_500_orders_into_next_plus_through_an_expiring_login(example: Any) -> None:
    running = start(example, 500, session_requests=120)
    numbers = [f"WH/MO/{i:05d}" for i in range(1, 501)]
    assert wait_for(lambda: len(running.workorders()) >= 500, 25), len(running.workorders())
    assert wait_for(running.drained, 10)
    assert sorted(running.workorders()) == numbers  # every order once: nothing lost, nothing twice
    listing = rpc_calls(running.erp, "search_read", "mrp.production")
    kwargs = [call["body"]["params"]["args"][6] for call in listing]
    # each page after the first starts at the last order of the page before (99 new orders a page)
    assert [(k["limit"], k["offset"]) for k in kwargs] == [(100, n) for n in range(0, 500, 99)]
    assert listing[0]["body"]["params"]["args"][5] == [
        [["write_date", ">", "2025-12-31 23:59:00"], ["state", "!=", "draft"]]  # initial, less overlap
    ]
    every = rpc_calls(running.erp)
    assert {type(c["body"]["params"]["args"][1]) for c in every} == {int}  # the uid, a number
    assert {c["body"]["params"]["args"][2] for c in every} == {PASSWORD}
    assert running.erp.rejected >= 5 and running.erp.logins == running.erp.rejected + 1
    assert running.dead_letters() == []
    first = next(w for w in running.nextplus.workorders.values() if w["workorderNumber"] == numbers[0])
    production = running.erp.db.records["mrp.production"][1]
    assert first["quantity"] == production["product_qty"] and first["externalId"] == "1"
    assert [a["actCode"] for a in first["_actions"]] == [
        running.erp.db.records["mrp.workorder"][i]["name"] for i in production["workorder_ids"]
    ]
    log = running.log()
    assert "odoo: token rejected (HTTP 200); logging in again" in log
    assert PASSWORD not in log


def test_an_operation_report_is_logged_and_removed_across_a_dying_login(example: Any) -> None:
    running = start(example, 6)
    assert wait_for(lambda: len(running.workorders()) == 6 and running.drained(), 10)
    httpx.put(f"{running.urls['erp']}/_admin/session", json={"requests": 1}).raise_for_status()
    # from now on every second execute_kw meets AccessDenied
    production = running.erp.db.records["mrp.production"][3]
    event = {
        "type": "add",
        "workorderNumber": production["name"],
        "actCode": "Assembly",
        "validQty": 3,
        "invalidQty": 1,
        "sku": "FG-300",
    }
    with httpx.Client(timeout=20) as client:
        added = client.post(running.webhook("/jsonrpc/operation"), json=event)
        assert added.status_code == 200, added.text
        external_id = added.json()["externalId"]
        logs = running.erp.db.records["mrp.workcenter.productivity"]
        assert list(logs) == [int(external_id)]  # one time log, not two
        log = logs[int(external_id)]
        assert log["workorder_id"][0] in production["workorder_ids"]
        assert log["loss_id"][1] == "Productive"
        assert log["description"] == "Next Plus Assembly: 3 good, 1 rejected"
        remove = {**event, "type": "remove", "externalId": external_id}
        removed = client.post(running.webhook("/jsonrpc/operation"), json=remove)
        assert removed.status_code == 200, removed.text
        assert removed.json() == {"externalId": external_id}
        assert logs == {}
        again = client.post(running.webhook("/jsonrpc/operation"), json=remove)
        assert again.status_code == 200 and again.json() == {
            "externalId": external_id
        }  # removing twice: done
        wrong = client.post(running.webhook("/jsonrpc/operation"), json={**event, "actCode": "Painting"})
        assert wrong.status_code == 404
        assert (
            wrong.json()["message"] == f"Manufacturing order {production['name']} has no operation Painting"
        )
    assert running.erp.rejected >= 3


def test_a_server_that_ignores_the_offset_stops_the_poll_naming_the_paginator(tmp_path: Path) -> None:
    """The issue's run-away walk (10,000 requests) cannot happen: the second identical page stops it."""
    app = jsonrpc_sim.create_app(size=250, seed=3)
    sim = app.state.simulator
    sim.db.ignore_offset = True
    with serve_in_thread(app) as url:
        environ = {"ODOO_URL": url}
        project = load_project(REPO / "examples" / "jsonrpc", environ=environ)
        assert project.ok
        source = project.pipelines["jsonrpc.workorders"].pipeline.source

        async def poll() -> list[Any]:
            connectors = live_connectors(project, environ)
            try:
                return [r async for r in read_changes(source, connectors, None, {})]
            finally:
                await connectors.aclose()

        with pytest.raises(ConnectorError, match=r"odoo: the offset paginator got the same page again at"):
            asyncio.run(poll())
    assert len(rpc_calls(sim, "search_read")) == 2
