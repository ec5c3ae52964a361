"""Event values that look like URL structure reach the ERP as data, inside the resource the path
template names, over real HTTP; a lone surrogate is refused at the door with no call."""

from __future__ import annotations

import httpx

from .conftest import Stack

NEXTX_ESCAPE = "MESP-1/../../../customer/customer/5?x=1#"
PRIORITY_ESCAPE = "a')/../../../otherco/SERIAL('b"


def _operation(**fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "add",
        "sku": "SP000010",
        "workorderNumber": "LSX00001",
        "actCode": "KT",
        "workCenterCode": "WC-3",
        "position": 30,
        "validQty": 1,
        "invalidQty": 0,
    }
    event.update(fields)
    return event


async def test_a_path_like_external_id_cannot_reach_another_resource(stack: Stack) -> None:
    nextx = stack.simulators["nextx"]
    customer = nextx.store.customer_detail(5)
    nextx.calls.clear()
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            stack.webhook("/nextx/operation"), json=_operation(type="remove", externalId=NEXTX_ESCAPE)
        )
    assert answer.status_code == 404  # no such purchase: the whole value was its code
    assert nextx.store.customer_detail(5) == customer
    assert nextx.calls, "the event made no call"
    for call in nextx.calls:
        assert not call["raw_path"].startswith("/api/customer/customer"), call
        assert call["query"] == "" or "x=1" not in call["query"], call
    [lookup] = [call for call in nextx.calls if call["path"].startswith("/api/purchase/")]
    assert (
        lookup["raw_path"]
        == "/api/purchase/purchase-by-code/MESP-1%2F..%2F..%2F..%2Fcustomer%2Fcustomer%2F5%3Fx%3D1%23"
    )
    assert not [call for call in nextx.calls if call["method"] == "PUT"]


async def test_a_quote_breaking_work_order_stays_in_the_company(stack: Stack) -> None:
    priority = stack.simulators["priority"]
    priority.calls.clear()
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            stack.webhook("/priority/operation"),
            json=_operation(workorderNumber=PRIORITY_ESCAPE, workCenterCode="WC-10", actCode=None),
        )
    assert answer.status_code == 404  # no such work order (the position is looked up on it)
    assert priority.calls
    for call in priority.calls:
        assert call["raw_path"].startswith("/odata/Priority/tabula.ini/demo/"), call
        assert "otherco" not in call["path"].split("SERIAL(", 1)[0], call
        assert "/otherco/" not in call["raw_path"], call
    raw = [c["raw_path"] for c in priority.calls]
    assert any("a%27%27%29%2F..%2F..%2F..%2Fotherco%2FSERIAL%28%27%27b" in path for path in raw), raw


async def test_a_lone_surrogate_is_refused_before_any_call(stack: Stack) -> None:
    priority = stack.simulators["priority"]
    priority.calls.clear()
    body = '{"type": "add", "sku": "FG-1", "workorderNumber": "WO-\\ud800", "actCode": "A", "position": 1}'
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            stack.webhook("/priority/operation"), content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400 and "surrogate" in answer.json()["message"]
    assert list(priority.calls) == []
