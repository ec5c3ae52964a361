"""NextX simulator over real HTTP: token, 401s, envelope, paging, stock, assumed production API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.nextx import CREDENTIALS, NextXSimulator, create_app
from sandbox.serve import serve_in_thread

GRANT = {"grant_type": "client_credentials", **CREDENTIALS, "scope": "public.api"}


@pytest.fixture
def served() -> Iterator[tuple[httpx.Client, NextXSimulator]]:
    app = create_app(size=130, seed=5, faults=None)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        token = client.post("/api/auth/token", json=GRANT).json()["data"]["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, app.state.simulator


def test_token_reply_and_bad_credentials(served) -> None:
    client, _ = served
    reply = client.post("/api/auth/token", json=GRANT)
    body = reply.json()
    assert reply.status_code == 200 and body["meta"]["status_code"] == 200
    assert body["data"]["token_type"] == "Bearer" and body["data"]["expires_in"] == 3600
    bad = client.post("/api/auth/token", json={**GRANT, "client_secret": "x"})
    assert bad.json() == {"meta": {"message": "Incorrect credentials", "status_code": 1}, "data": []}


def test_missing_and_expired_token(served) -> None:
    client, sim = served
    assert httpx.get(f"{client.base_url}/api/branch/branch").json() == {"message": "Unauthenticated."}
    real = sim.clock
    sim.clock = lambda: real() + 3600
    reply = client.get("/api/branch/branch")
    assert reply.status_code == 401
    assert reply.json() == {"meta": {"message": "Token expired", "status_code": 401}, "data": []}


def test_token_ttl_fault(served) -> None:
    client, _ = served
    client.put("/_admin/faults", json={"token_ttl": 60})
    assert client.post("/api/auth/token", json=GRANT).json()["data"]["expires_in"] == 60


def test_paging_from_zero_clamped_at_100(served) -> None:
    client, _ = served

    def page(**params: object) -> list[dict]:
        reply = client.get("/api/product/product", params={"branch_id": 1, **params})
        assert reply.status_code == 200 and set(reply.json()) == {"meta", "data"}
        return list(reply.json()["data"])

    assert len(page()) == 15
    assert len(page(pageLimit=500)) == 100
    ids = [p["id"] for n in range(3) for p in page(page=n, pageLimit=50)]
    assert ids == list(range(1, 131))


def test_branch_required(served) -> None:
    client, _ = served
    reply = client.get("/api/product/product")
    assert reply.status_code == 422
    assert reply.json()["meta"] == {"message": "The branch_id field is required.", "status_code": 422}
    created = client.post("/api/product/product", json={"name": "Vỏ thép"})
    assert created.status_code == 422


def test_product_create_detail(served) -> None:
    client, _ = served
    made = client.post("/api/product/product", json={"name": "Vỏ thép", "branch_id": 1, "qty_begin_stock": 4})
    product = made.json()["data"]
    assert product["product_code"] and product["qty_available"] == 4
    detail = client.get(
        "/api/product/product-detail", params={"variation_id": product["variations_id"], "branch_id": 1}
    )
    assert detail.json()["data"]["id"] == product["id"]


def test_purchase_and_sell_move_stock(served) -> None:
    client, _ = served

    def qty() -> float:
        detail = client.get("/api/product/product-detail", params={"variation_id": 101, "branch_id": 2})
        return float(detail.json()["data"]["qty_available"])

    before = qty()
    line = {"product_id": 1, "variation_id": 101, "unit_price": 1000, "quantity": 5}
    bought = client.post(
        "/api/purchase/purchase",
        json={"branch_id": 2, "transaction_date": "2025-03-01", "customer_id": 3, "products": [line]},
    )
    assert bought.json()["meta"]["message"] == "Purchase order created successfully"
    code = bought.json()["data"]["invoice_no"]
    assert client.get(f"/api/purchase/purchase-by-code/{code}").json()["data"]["invoice_no"] == code
    sold = client.post(
        "/api/sell/sell",
        json={"branch_id": 2, "transaction_date": "2025-03-01", "products": [{**line, "quantity": 2}]},
    )
    assert sold.json()["meta"]["message"] == "Sale order created successfully"
    assert qty() == before + 3
    too_much = client.post(
        "/api/sell/sell",
        json={"branch_id": 2, "transaction_date": "2025-03-01", "products": [{**line, "quantity": 10**6}]},
    )
    assert too_much.status_code == 422 and qty() == before + 3
    sid = sold.json()["data"]["id"]
    assert client.get(f"/api/sell/sell/{sid}").json()["data"]["id"] == sid
    assert client.get("/api/sell/sell/999").status_code == 404


def test_customers(served) -> None:
    client, _ = served
    made = client.post("/api/customer/customer", json={"name": "Công ty Mới", "type": "customer"})
    cid = made.json()["data"]["id"]
    assert client.get(f"/api/customer/customer/{cid}").json()["data"]["name"] == "Công ty Mới"
    assert client.post("/api/customer/customer", json={}).status_code == 422


def test_production_orders_report_and_consumption(served) -> None:
    client, _ = served
    order = client.get("/api/production/order", params={"pageLimit": 1}).json()["data"][0]
    good = {"order_code": order["code"], "quantity": order["quantity"], "operation_code": "KT"}
    assert client.post("/api/production/report", json=good).status_code == 200
    assert client.post("/api/production/report", json={**good, "quantity": 1}).status_code == 422
    polled = client.get(
        "/api/production/order", params={"updated_from": order["updated_at"], "pageLimit": 100}
    ).json()["data"]
    assert [o["produced_qty"] for o in polled if o["code"] == order["code"]] == [order["quantity"]]
    comp = order["components"][0]
    used = client.post(
        "/api/production/consumption",
        json={
            "order_code": order["code"],
            "branch_id": 1,
            "products": [{"product_id": comp["product_id"], "quantity": 10**6}],
        },
    )
    assert used.status_code == 422
