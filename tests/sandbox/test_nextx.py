"""NextX simulator over real HTTP: token, 401s, the seed's reply shapes, paging, stock, sells, returns
and purchases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.nextx import CREDENTIALS, NextXSimulator, create_app
from sandbox.nextx_data import CONSUMPTION_CUSTOMER, PRODUCTION_SUPPLIER
from sandbox.serve import serve_in_thread

GRANT = {"grant_type": "client_credentials", **CREDENTIALS, "scope": "public.api"}


@pytest.fixture
def served() -> Iterator[tuple[httpx.Client, NextXSimulator]]:
    app = create_app(size=130, seed=5, faults=None)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        token = client.post("/api/auth/token", json=GRANT).json()["data"]["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, app.state.simulator


def _line(product: dict[str, Any], quantity: float) -> dict[str, Any]:
    return {
        "product_id": product["id"],
        "variation_id": product["variations_id"],
        "unit_price": 0,
        "unit_id": 1,
        "quantity": quantity,
    }


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


def test_lists_are_bare_arrays_paged_from_zero_and_clamped_at_100(served) -> None:
    client, _ = served

    def page(**params: object) -> list[dict[str, Any]]:
        reply = client.get("/api/product/product", params={"branch_id": 1, **params})
        assert reply.status_code == 200 and isinstance(reply.json(), list)  # seed 003 line 1264
        return list(reply.json())

    assert len(page()) == 15
    assert len(page(pageLimit=500)) == 100
    ids = [p["id"] for n in range(3) for p in page(page=n, pageLimit=50)]
    assert ids == list(range(1, 131))
    assert isinstance(client.get("/api/branch/branch").json(), list)
    assert isinstance(client.get("/api/customer/customer").json(), list)


def test_branch_required(served) -> None:
    client, _ = served
    reply = client.get("/api/product/product")
    assert reply.status_code == 422
    assert reply.json()["meta"] == {"message": "The branch_id field is required.", "status_code": 422}
    assert client.post("/api/product/product", json={"name": "Vỏ thép"}).status_code == 422


def test_product_detail_names_its_product_product_name_and_lists_its_composition(served) -> None:
    client, sim = served
    made = client.post("/api/product/product", json={"name": "Vỏ thép", "branch_id": 1, "qty_begin_stock": 4})
    product = made.json()
    assert product["product_code"] and product["qty_available"] == 4
    detail = client.get(
        "/api/product/product-detail", params={"variation_id": product["variations_id"], "branch_id": 1}
    ).json()
    assert detail["id"] == product["id"] and detail["product_name"] == "Vỏ thép"
    assert "product_fullname" not in detail and detail["computations"] == []
    combo = next(p for p in sim.store.products.values() if p["product_type"] == "combo")
    made_of = client.get(
        "/api/product/product-detail", params={"variation_id": combo["variations_id"], "branch_id": 1}
    ).json()
    assert made_of["product_type"] == "combo" and made_of["computations"]
    assert all({"product_id", "variations.id", "quantity"} <= set(c) for c in made_of["computations"])


def test_a_sell_answers_without_an_id_moves_stock_and_is_found_by_its_filters(served) -> None:
    client, sim = served
    product = sim.store.products[1]
    before = sim.store.stock[(1, 2)]
    sell = {
        "branch_id": 2,
        "transaction_date": "2025-03-05",
        "customer_id": CONSUMPTION_CUSTOMER,
        "invoice_no": "MESC-1",
        "products": [_line(product, 2)],
    }
    sold = client.post("/api/sell/sell", json=sell)
    assert sold.json() == {"status_code": 200, "message": "Sale order created successfully"}  # line 3635
    assert sim.store.stock[(1, 2)] == before - 2
    again = client.post("/api/sell/sell", json=sell)
    assert (
        again.status_code == 422
        and again.json()["meta"]["message"] == "The invoice no has already been taken."
    )
    rows = client.get(
        "/api/sell/sell",
        params={
            "branch_id": 2,
            "customer_id": CONSUMPTION_CUSTOMER,
            "from_date": "2025-03-05",
            "to_date": "2025-03-05",
            "strSearch": product["product_code"],
        },
    ).json()
    assert [r["invoice_no"] for r in rows] == ["MESC-1"]
    # strSearch is a "keyword for product name, code, or SKU" (seed 003 line 3405), not a number.
    by_number = {"branch_id": 2, "from_date": "2025-03-05", "strSearch": "MESC-1"}
    assert client.get("/api/sell/sell", params=by_number).json() == []
    assert {"customer_code", "status", "shipping_status", "purchase_invoice_no"} <= set(rows[0])
    detail = client.get(f"/api/sell/sell/{rows[0]['id']}").json()
    assert detail["id"] == rows[0]["id"] and detail["products"][0]["quantity"] == 2
    assert client.get("/api/sell/sell", params={"branch_id": 2, "from_date": "2025-03-06"}).json() == []
    too_much = client.post(
        "/api/sell/sell", json={**sell, "invoice_no": "MESC-2", "products": [_line(product, 10**6)]}
    )
    assert too_much.status_code == 422 and sim.store.stock[(1, 2)] == before - 2
    assert client.get("/api/sell/sell/999").status_code == 404


def test_a_sell_return_puts_stock_back_once_and_is_listed_with_its_sell(served) -> None:
    client, sim = served
    product = sim.store.products[2]
    before = sim.store.stock[(2, 1)]
    client.post(
        "/api/sell/sell",
        json={
            "branch_id": 1,
            "transaction_date": "2025-03-05",
            "customer_id": CONSUMPTION_CUSTOMER,
            "invoice_no": "MESC-9",
            "products": [_line(product, 3)],
        },
    )
    sell_id = max(sim.store.sells)
    back = {
        "transaction_id": sell_id,
        "transaction_date": "2025-03-06",
        "customer_id": CONSUMPTION_CUSTOMER,
        "invoice_no": "MESR-9",
        "products": [_line(product, 3)],
    }
    returned = client.post("/api/sell-return/sell-return", json=back)
    assert returned.status_code == 200 and returned.json()["transaction_id"] == sell_id  # line 3982
    assert sim.store.stock[(2, 1)] == before
    twice = client.post("/api/sell-return/sell-return", json={**back, "invoice_no": "MESR-9b"})
    assert twice.status_code == 422 and sim.store.stock[(2, 1)] == before
    rows = client.get(
        "/api/sell-return/sell-return",
        params={"customer_id": CONSUMPTION_CUSTOMER, "from_date": "2025-03-05"},
    ).json()
    assert [(r["invoice_no"], r["sell_id"], r["sell_invoice_no"]) for r in rows] == [
        ("MESR-9", sell_id, "MESC-9")
    ]
    search = {"customer_id": CONSUMPTION_CUSTOMER, "from_date": "2025-03-05"}
    assert [
        r["sell_id"]
        for r in client.get(
            "/api/sell-return/sell-return", params={**search, "strSearch": product["sku"]}
        ).json()
    ] == [sell_id]
    assert client.get("/api/sell-return/sell-return", params={**search, "strSearch": "MESC-9"}).json() == []


def test_a_purchase_answers_message_and_data_is_confirmed_by_code_and_cancelled_once(served) -> None:
    client, sim = served
    product = sim.store.products[3]
    before = sim.store.stock[(3, 1)]
    order = {
        "branch_id": 1,
        "transaction_date": "2025-03-05",
        "customer_id": PRODUCTION_SUPPLIER,
        "invoice_no": "MESP-1",
        "shipping_status": "delivered",
        "products": [{**_line(product, 5), "sell_line_note": "SN-1"}],
    }
    bought = client.post("/api/purchase/purchase", json=order)
    assert bought.json() == {"message": "Purchase order created successfully", "data": order}  # line 3110
    assert sim.store.stock[(3, 1)] == before + 5
    found = client.get("/api/purchase/purchase-by-code/MESP-1").json()
    assert (found["invoice_no"], found["products"][0]["product_id"], found["products"][0]["quantity"]) == (
        "MESP-1",
        3,
        5,
    )
    assert found["products"][0]["sell_line_note"] == "SN-1"
    cancel = {"comment": "withdrawn", "shipping_status": "cancelled"}
    assert client.put(f"/api/purchase/update-shipping/{found['id']}", json=cancel).json() == cancel
    assert client.put(f"/api/purchase/update-shipping/{found['id']}", json=cancel).status_code == 200
    assert sim.store.stock[(3, 1)] == before
    reopen = client.put(f"/api/purchase/update-shipping/{found['id']}", json={"shipping_status": "ordered"})
    assert reopen.status_code == 422
    customer = {**order, "customer_id": 1, "invoice_no": "MESP-2"}  # a customer is no supplier
    assert client.post("/api/purchase/purchase", json=customer).status_code == 422
    missing = client.get("/api/purchase/purchase-by-code/NOPE")
    assert missing.status_code == 404
    assert missing.json() == {"meta": {"message": "Purchase order not found", "status_code": 404}, "data": []}


def test_customers(served) -> None:
    client, sim = served
    made = client.post("/api/customer/customer", json={"name": "Công ty Mới", "type": "customer"})
    assert made.json() == {"status_code": 200, "message": "Customer created successfully"}
    cid = max(sim.store.customers)
    detail = client.get(f"/api/customer/customer/{cid}").json()
    assert (detail["id"], detail["name"], detail["type"]) == (cid, "Công ty Mới", "customer")
    assert client.post("/api/customer/customer", json={}).status_code == 422
    internal = {
        c["id"]: c["type"] for c in client.get("/api/customer/customer", params={"pageLimit": 100}).json()
    }
    assert internal[CONSUMPTION_CUSTOMER] == "customer" and internal[PRODUCTION_SUPPLIER] == "supplier"


def test_no_production_api(served) -> None:
    client, _ = served
    assert client.get("/api/production/order").status_code == 404
