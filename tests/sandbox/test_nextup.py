"""NextUp simulator over real HTTP: content type, token, expiry, Romanian errors, stock."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sandbox.nextup import CREDENTIALS, TOKEN_ERROR, NextUpSimulator, create_app
from sandbox.serve import serve_in_thread

URL = "/NextUpServices/Services/POST/"


class Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client, self.token = client, None

    def __call__(
        self, method: str, params: dict[str, Any] | None = None, token: Any = "self"
    ) -> dict[str, Any]:
        body = {
            "AuthenticationToken": self.token if token == "self" else token,
            "Method": method,
            "Params": params or {},
        }
        reply = self.client.post(URL, content=json.dumps(body), headers={"Content-Type": "text/plain"})
        assert reply.status_code == 200
        return reply.json()

    def login(self) -> str:
        self.token = self("GetAuthenticationToken", CREDENTIALS, token=None)["Result"]
        return str(self.token)


@pytest.fixture
def api() -> Iterator[tuple[Api, NextUpSimulator]]:
    app = create_app(size=4, seed=2, faults=None)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        yield Api(client), app.state.simulator


def test_only_text_plain_gets_an_answer(api) -> None:
    client = api[0].client
    body = json.dumps({"Method": "GetAuthenticationToken", "Params": CREDENTIALS})
    for ctype in ("application/json", "application/x-www-form-urlencoded"):
        reply = client.post(URL, content=body, headers={"Content-Type": ctype})
        assert reply.status_code == 200 and reply.content == b""
    ok = client.post(URL, content=body, headers={"Content-Type": "text/plain; charset=utf-8"})
    assert ok.json()["Error"] is None


def test_token_format_and_get_mode(api) -> None:
    call, _ = api
    token = call.login()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    payload = quote(
        json.dumps(
            {"AuthenticationToken": token, "Method": "GetArticleByCode", "Params": {"Code": "MP-001"}}
        ),
        safe="",
    )
    reply = call.client.get(f"/NextUpServices/Services/GET/{payload}")
    assert reply.json()["Result"]["Name"] == "Șurub M6 inox"


def test_bad_login_and_missing_token(api) -> None:
    call, _ = api
    assert call("GetAuthenticationToken", {**CREDENTIALS, "Password": "x"}, token=None) == {
        "Result": False,
        "Error": "Invalid credentials.",
    }
    assert call("GetAllArticles", token=None) == {"Result": False, "Error": TOKEN_ERROR}
    assert TOKEN_ERROR == "AuthenticationToken lipseste, este invalid sau a expirat."


def test_expiry_and_logout(api) -> None:
    call, sim = api
    call.login()
    assert call("GetAllArticles")["Error"] is None
    real = sim.clock
    sim.clock = lambda: real() + 3600
    assert call("GetAllArticles") == {"Result": False, "Error": TOKEN_ERROR}
    sim.clock = real
    call.login()
    assert call("Logout")["Result"] is True
    assert call("GetAllArticles")["Error"] == TOKEN_ERROR


def test_malformed_json_is_a_business_error(api) -> None:
    reply = api[0].client.post(URL, content="{nope", headers={"Content-Type": "text/plain"})
    assert reply.status_code == 200 and reply.json()["Result"] is False


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        pytest.param("AddArticle", {"Code": "X1"}, 'Parametrul "Name" este obligatoriu.', id="missing-name"),
        pytest.param(
            "AddArticle",
            {"Code": "MP-001", "Name": "Dublură"},
            'Exista deja un articol cu codul "MP-001".',
            id="duplicate-code",
        ),
        pytest.param("GetArticleByCode", {}, 'Parametrul "Code" este obligatoriu.', id="missing-code"),
        pytest.param(
            "AddDeliveryNote",
            {"PartnerId": 0, "Date": "2025-01-01"},
            "Partenerul cu Id 0 nu exista.",
            id="unknown-partner",
        ),
    ],
)
def test_romanian_errors(api, method, params, message) -> None:
    call, _ = api
    call.login()
    assert call(method, params) == {"Result": False, "Error": message}


def test_article_code_generated(api) -> None:
    call, _ = api
    call.login()
    result = call("AddArticle", {"Name": "Șaibă"})["Result"]
    assert result["Code"] and call("GetArticleByCode", {"Code": result["Code"]})["Result"]["Name"] == "Șaibă"


def stock(call: Api, code: str, warehouse: int) -> float:
    rows = call("GetStocksForArticleByCode", {"Code": code})["Result"]
    return next((r["Quantity"] for r in rows if r["WarehouseId"] == warehouse), 0.0)


def test_delivery_note_decrements_refuses_and_invalidate_restores(api) -> None:
    call, _ = api
    call.login()
    partner = call("GetAllPartners")["Result"][0]["Id"]
    have = stock(call, "MP-002", 1)
    doc = {
        "PartnerId": partner,
        "Date": "2025-03-01",
        "Currency": "RON",
        "WarehouseId": 1,
        "Lines": [
            {"ArticleCode": "MP-002", "Quantity": 3, "UnitPrice": 1.5, "VATRateId": 1, "WarehouseId": 1}
        ],
    }
    first = call("AddDeliveryNote", doc)["Result"]
    second = call("AddDeliveryNote", doc)["Result"]
    assert re.fullmatch(r"AVZ-\d{6}", first["Number"])
    assert int(second["Number"][4:]) == int(first["Number"][4:]) + 1
    assert stock(call, "MP-002", 1) == have - 6
    too_much = {**doc, "Lines": [{**doc["Lines"][0], "Quantity": have}]}
    error = call("AddDeliveryNote", too_much)
    assert error["Result"] is False and error["Error"].startswith("Stoc insuficient pentru ")
    assert stock(call, "MP-002", 1) == have - 6
    assert call("InvalidateDocument", {"Id": first["Id"]})["Result"] is True
    assert stock(call, "MP-002", 1) == have - 3
    assert call("AddSaleOrder", doc)["Result"]["Number"].startswith("COM-")


def test_production_report_and_reversal(api) -> None:
    call, _ = api
    call.login()
    order = call("GetProductionOrders", {"PageSize": 1})["Result"][0]
    assert {"Components", "Operations", "LastModified", "Customer"} <= set(order)
    article, qty = order["ArticleCode"], order["Quantity"]
    before = stock(call, article, 2)
    report = {
        "ProductionOrderCode": order["Code"],
        "ArticleCode": article,
        "Quantity": qty,
        "RejectedQuantity": 0,
        "OperationCode": order["Operations"][-1]["Code"],
        "WorkCenter": "CL-03",
    }
    done = call("AddProductionReport", report)["Result"]
    assert done["Number"].startswith("RP-") and stock(call, article, 2) == before + qty
    over = call("AddProductionReport", {**report, "Quantity": 1})
    assert over["Result"] is False and "depaseste" in over["Error"]
    since = call("GetProductionOrders", {"ModifiedSince": order["LastModified"]})["Result"]
    assert order["Code"] in [o["Code"] for o in since]
    assert call("InvalidateDocument", {"Id": done["Id"]})["Result"] is True
    assert stock(call, article, 2) == before
    assert call("InvalidateDocument", {"Id": done["Id"]}) == {
        "Result": False,
        "Error": f"Documentul {done['Number']} este deja anulat.",
    }


def test_consumption_on_a_delivery_note_to_the_internal_partner_keeps_the_serial_on_its_line(api) -> None:
    call, sim = api
    call.login()
    partners = {p["Id"]: p for p in call("GetAllPartners")["Result"]}
    assert partners[1]["Name"] == "Consum intern producție"
    have = stock(call, "MP-003", 1)
    line = {"ArticleCode": "MP-003", "Quantity": 1, "UnitPrice": 0, "VATRateId": 1, "WarehouseId": 1}
    note = call(
        "AddDeliveryNote",
        {
            "PartnerId": 1,
            "Date": "2025-03-05",
            "Currency": "RON",
            "WarehouseId": 1,
            "Lines": [{**line, "Serial": "PLC-7781"}],
        },
    )["Result"]
    assert note["Number"].startswith("AVZ-") and stock(call, "MP-003", 1) == have - 1
    [kept] = sim.company.documents[note["Id"]]["Lines"]
    assert kept == {**line, "Quantity": 1.0, "Serial": "PLC-7781"}


@pytest.mark.parametrize(
    "method",
    ["AddConsumptionNote", "AddSerialNumber", "UpdateSerialNumber", "DeleteSerialNumber", "GetSerialNumbers"],
)
def test_methods_no_document_names_answer_the_unknown_method_error_on_http_200(api, method) -> None:
    call, _ = api
    call.login()
    assert call(method, {"Code": "x"}) == {"Result": False, "Error": f'Metoda "{method}" nu exista.'}
