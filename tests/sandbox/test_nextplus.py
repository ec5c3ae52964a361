"""Next Plus simulator over real HTTP: LoopBack login, 401 codes, validation, uniqueness, filters."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from sandbox.nextplus import CREDENTIALS, NextPlusSimulator, create_app
from sandbox.serve import serve_in_thread

VALID = {
    "sku": "FG-1",
    "quantity": 2,
    "workorderNumber": "WO-NEW-1",
    "C_Line": "L1",
    "releasedAt": "2025-02-18T10:39:00.559Z",
    "kitItems": [{"sku": "RM-1", "quantity": 1, "serials": [{"sku": "RM-1", "serial": "S1"}]}],
    "customer": {"accountNumber": "C1", "accountName": "X"},
}


@pytest.fixture
def served() -> Iterator[tuple[httpx.Client, NextPlusSimulator]]:
    app = create_app(size=6, seed=3, faults=None)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        yield client, app.state.simulator


def login(client: httpx.Client) -> str:
    reply = client.post("/api/Users/login", json=CREDENTIALS)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"id", "ttl", "created", "userId"} and body["ttl"] == 1209600
    return str(body["id"])


def error(reply: httpx.Response) -> dict:
    return reply.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"username": "api", "password": "nope"}, 401, "LOGIN_FAILED", id="bad-password"),
        pytest.param({"email": "ghost@x", "password": "api-secret"}, 401, "LOGIN_FAILED", id="unknown-email"),
        pytest.param({"password": "api-secret"}, 400, "USERNAME_EMAIL_REQUIRED", id="no-username"),
    ],
)
def test_login_failures(served, body, status, code) -> None:
    client, _ = served
    reply = client.post("/api/Users/login", json=body)
    assert reply.status_code == status
    assert error(reply)["code"] == code and error(reply)["statusCode"] == status


def test_token_in_query_header_or_bearer(served) -> None:
    client, _ = served
    token = login(client)
    assert client.get("/api/Workorders", params={"access_token": token}).status_code == 200
    assert client.get("/api/Workorders", headers={"Authorization": token}).status_code == 200
    assert client.get("/api/Workorders", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_no_token_is_authorization_required(served) -> None:
    client, _ = served
    reply = client.get("/api/Workorders")
    assert reply.status_code == 401
    assert error(reply) == {
        "statusCode": 401,
        "name": "Error",
        "message": "Authorization Required",
        "code": "AUTHORIZATION_REQUIRED",
    }


def test_expired_token_is_invalid_token_once(served) -> None:
    client, sim = served
    token = login(client)
    real = sim.clock
    sim.clock = lambda: real() + 1209600
    reply = client.get("/api/Workorders", params={"access_token": token})
    assert reply.status_code == 401 and error(reply)["code"] == "INVALID_TOKEN"
    again = client.get("/api/Workorders", params={"access_token": token})
    assert error(again)["code"] == "AUTHORIZATION_REQUIRED"


def test_token_ttl_from_faults(served) -> None:
    client, _ = served
    client.put("/_admin/faults", json={"token_ttl": 5})
    assert client.post("/api/Users/login", json=CREDENTIALS).json()["ttl"] == 5


def test_user_without_api_flag_is_denied(served) -> None:
    client, _ = served
    token = client.post(
        "/api/Users/login", json={"username": "operator", "password": "operator-secret"}
    ).json()
    reply = client.get("/api/Workorders", params={"access_token": token["id"]})
    assert reply.status_code == 403 and error(reply)["code"] == "ACCESS_DENIED"


def test_create_returns_record_with_id(served) -> None:
    client, sim = served
    reply = client.post("/api/Workorders/", json=VALID, params={"access_token": login(client)})
    assert reply.status_code == 200
    record = reply.json()
    assert record["id"] in sim.workorders and record["C_Line"] == "L1"


@pytest.mark.parametrize(
    ("patch", "field", "code"),
    [
        pytest.param({"sku": None}, "sku", "presence", id="missing-sku"),
        pytest.param({"quantity": "2"}, "quantity", "type", id="quantity-string"),
        pytest.param({"erpClosed": "no"}, "erpClosed", "type", id="bool-string"),
        pytest.param({"releasedAt": "18/02/2025"}, "releasedAt", "date", id="not-iso-date"),
        pytest.param({"colour": "red"}, "colour", "unknown-property", id="unknown-root-key"),
        pytest.param(
            {"kitItems": [{"sku": "A", "quantity": "x"}]}, "kitItems[0].quantity", "type", id="nested"
        ),
        pytest.param({"_actions": {"actCode": "A"}}, "_actions", "type", id="array-expected"),
    ],
)
def test_validation_error(served, patch, field, code) -> None:
    client, _ = served
    body = {**VALID, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    reply = client.post("/api/Workorders/", json=body, params={"access_token": login(client)})
    assert reply.status_code == 422
    err = error(reply)
    assert err["name"] == "ValidationError" and err["statusCode"] == 422
    assert err["details"]["codes"][field] == [code] and field in err["details"]["messages"]


def test_duplicate_workorder_number(served) -> None:
    client, _ = served
    token = login(client)
    assert client.post("/api/Workorders/", json=VALID, params={"access_token": token}).status_code == 200
    reply = client.post("/api/Workorders/", json=VALID, params={"access_token": token})
    assert reply.status_code == 422
    assert error(reply)["details"]["messages"] == {"workorderNumber": ["is not unique"]}


def test_filters(served) -> None:
    client, _ = served
    token = login(client)

    def find(flt: dict) -> list[str]:
        reply = client.get("/api/Workorders", params={"filter": json.dumps(flt), "access_token": token})
        assert reply.status_code == 200
        return [w["workorderNumber"] for w in reply.json()]

    assert find({"where": {"workorderNumber": "WO-1002"}}) == ["WO-1002"]
    assert find(
        {"where": {"workorderNumber": {"inq": ["WO-1001", "WO-1003"]}}, "order": "workorderNumber"}
    ) == ["WO-1001", "WO-1003"]
    assert find({"where": {"source": "MANUAL"}}) == ["WO-1004"]
    assert find(
        {
            "where": {"or": [{"workorderNumber": "WO-1000"}, {"workorderNumber": "WO-1005"}]},
            "order": "workorderNumber DESC",
        }
    ) == ["WO-1005", "WO-1000"]
    assert find(
        {
            "where": {"and": [{"priority": {"gte": 0}}, {"source": "ERP"}]},
            "order": "workorderNumber",
            "skip": 1,
            "limit": 2,
        }
    ) == ["WO-1001", "WO-1002"]
    bad = client.get("/api/Workorders", params={"filter": "{nope", "access_token": token})
    assert bad.status_code == 400


def test_find_by_id_patch_and_count(served) -> None:
    client, sim = served
    token = login(client)
    wid = next(iter(sim.workorders))
    assert client.get(f"/api/Workorders/{wid}", params={"access_token": token}).json()["id"] == wid
    missing = client.get("/api/Workorders/nope", params={"access_token": token})
    assert missing.status_code == 404 and error(missing)["code"] == "MODEL_NOT_FOUND"
    patched = client.patch(
        f"/api/Workorders/{wid}", json={"erpStatus": "Closed"}, params={"access_token": token}
    )
    assert patched.json()["erpStatus"] == "Closed"
    bad = client.patch(f"/api/Workorders/{wid}", json={"quantity": -1}, params={"access_token": token})
    assert bad.status_code == 422
    count = client.get("/api/Workorders/count", params={"where": '{"source": "ERP"}', "access_token": token})
    assert count.json() == {"count": 5}


def test_configurable_login_path() -> None:
    sim = NextPlusSimulator(size=0, login_path="/api/AppUsers/login")
    with serve_in_thread(sim.app) as url:
        assert httpx.post(f"{url}/api/AppUsers/login", json=CREDENTIALS).status_code == 200
        assert httpx.post(f"{url}/api/Users/login", json=CREDENTIALS).status_code == 404
