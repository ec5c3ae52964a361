"""The Priority simulator over real HTTP: every quirk of ERP-FACTS' Priority section."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.priority import PAT, PrioritySimulator
from sandbox.serve import serve_in_thread

ROOT = "/odata/Priority/tabula.ini/demo/"
AUTH = ("apiuser", "apipass")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, PrioritySimulator]]:
    sim = PrioritySimulator(size=300, seed=1)
    with serve_in_thread(sim.app) as url:
        yield url, sim


@pytest.fixture
def client(server: tuple[str, PrioritySimulator]) -> Iterator[httpx.Client]:
    url, sim = server
    with httpx.Client(base_url=url + ROOT, auth=AUTH) as http:
        http.post(url + "/_admin/reset")
        http.put(url + "/_admin/faults", json={})
        yield http


def values(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["value"]


def interface_error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["FORM"]
    return response.status_code, body["@TYPE"], body["InterfaceErrors"]["text"]


def open_order(client: httpx.Client) -> dict[str, Any]:
    return values(client.get("SERIAL", params={"$filter": "SERIALSTATUSDES eq 'מאושרת'", "$top": "1"}))[0]


# -- auth --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("auth", "status"),
    [
        pytest.param(AUTH, 200, id="user-password"),
        pytest.param((PAT, "PAT"), 200, id="pat"),
        pytest.param(("PAT", PAT), 401, id="pat-reversed"),
        pytest.param(("apiuser", "wrong"), 401, id="bad-password"),
        pytest.param(None, 401, id="none"),
    ],
)
def test_auth(client: httpx.Client, auth: tuple[str, str] | None, status: int) -> None:
    response = client.get("ACT", auth=auth) if auth else httpx.get(str(client.base_url) + "ACT")
    assert response.status_code == status
    if status == 401:
        assert response.json() == {"error": {"code": "", "message": "Authentication failed."}}


def test_unknown_company_and_any_ini(client: httpx.Client) -> None:
    base = str(client.base_url).removesuffix(ROOT)
    assert client.get(base + "/odata/Priority/tabula.ini/other/ACT").status_code == 404
    assert client.get(base + "/odata/Priority/tabula.ini,3/demo/ACT").status_code == 200


# -- query options -----------------------------------------------------------------------------------
def test_collection_and_entity_envelopes(client: httpx.Client) -> None:
    body = client.get("ACT").json()
    assert body["@odata.context"].endswith(ROOT + "$metadata#ACT")
    assert {"ACTNAME": "ASSY", "ACTDES": "הרכבה", "ACT": 1} in body["value"]
    one = client.get("SERIAL('WO-000001')").json()
    assert one["@odata.context"].endswith("$metadata#SERIAL/$entity")
    assert "CLOSEDATE" in one and one["SERIALNAME"] == "WO-000001"  # empty fields present, not omitted


def test_filter_select_orderby_top_skip(client: httpx.Client) -> None:
    params = {
        "$filter": "(QUANT ge 10 and QUANT le 20) and not (SERIALSTATUSDES eq 'סגורה' or REVNAME ne 'A')",
        "$select": "SERIALNAME,QUANT,REVNAME",
        "$orderby": "QUANT desc,SERIALNAME",
    }
    rows = values(client.get("SERIAL", params=params))
    assert rows and all(set(r) == {"SERIALNAME", "QUANT", "REVNAME"} for r in rows)
    assert all(10 <= r["QUANT"] <= 20 and r["REVNAME"] == "A" for r in rows)
    assert rows == sorted(rows, key=lambda r: (-r["QUANT"], r["SERIALNAME"]))
    page = values(client.get("SERIAL", params={**params, "$top": "3", "$skip": "2"}))
    assert page == rows[2:5]


def test_filter_literals(client: httpx.Client) -> None:
    part = values(client.get("PART", params={"$filter": "PARTDES eq 'לוח בקרה 1'"}))
    assert [p["PARTNAME"] for p in part] == ["FG-0001"]  # non-ASCII descriptions
    quoted = client.get("PART", params={"$filter": "PARTDES eq 'O''Brien'"})
    assert values(quoted) == []
    dated = values(
        client.get(
            "SERIAL", params={"$filter": "UDATE lt 2025-01-01T08:10:00+02:00", "$select": "SERIALNAME"}
        )
    )
    assert [r["SERIALNAME"] for r in dated] == ["WO-000001", "WO-000002", "WO-000003"]
    utc = values(
        client.get("SERIAL", params={"$filter": "UDATE lt 2025-01-01T06:10:00Z", "$select": "SERIALNAME"})
    )
    assert utc == dated


def test_plus_sent_raw_in_a_date_is_refused(client: httpx.Client) -> None:
    raw = client.get("SERIAL?$filter=UDATE lt 2025-01-01T08:10:00+02:00")
    assert raw.status_code == 400 and "Syntax error" in raw.json()["error"]["message"]
    encoded = client.get("SERIAL?$filter=UDATE lt 2025-01-01T08:10:00%2B02:00")
    assert len(values(encoded)) == 3


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"$filter": "NOPE eq 1"}, id="unknown-field"),
        pytest.param({"$filter": "QUANT eq"}, id="syntax"),
        pytest.param({"$select": "NOPE"}, id="select"),
        pytest.param({"$orderby": "QUANT sideways"}, id="orderby"),
        pytest.param({"$top": "-1"}, id="top"),
        pytest.param({"$since": "2025-01-01"}, id="since-not-bpm"),
        pytest.param({"$expand": "NOPE_SUBFORM"}, id="expand"),
    ],
)
def test_bad_query_is_400(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get("SERIAL", params=params)
    assert response.status_code == 400 and response.json()["error"]["code"] == ""


def test_nested_expand(client: httpx.Client) -> None:
    posted = client.post("AFORM", json={"ALINE_SUBFORM": [{**_line(client), "QUANT": 1}]})
    assert posted.status_code == 201
    name = posted.json()["FORMNAME"]
    params = {
        "$expand": "ALINE_SUBFORM($select=SERIALNAME,QUANT;$expand=ALSERNTRANS_SUBFORM($select=SERNUM))"
    }
    record = client.get(f"AFORM('{name}')", params=params).json()
    assert record["ALINE_SUBFORM"] == [
        {"SERIALNAME": _line(client)["SERIALNAME"], "QUANT": 1, "ALSERNTRANS_SUBFORM": []}
    ]
    kits = values(
        client.get("SERIAL", params={"$top": "2", "$expand": "KITITEMS_SUBFORM($select=PARTNAME,QUANT)"})
    )
    assert all(k.keys() == {"PARTNAME", "QUANT"} for wo in kits for k in wo["KITITEMS_SUBFORM"])


def test_count(client: httpx.Client) -> None:
    body = client.get("SERIAL", params={"$top": "0", "$count": "true"}).json()
    assert (body["@odata.count"], body["value"]) == (300, [])
    dollar_count = client.get("SERIAL/$count")
    assert dollar_count.status_code == 500
    assert dollar_count.json() == {"error": {"code": "", "message": "An error has occurred."}}


def test_silent_cap(client: httpx.Client, server: tuple[str, PrioritySimulator]) -> None:
    sim = server[1]
    sim.max_api_lines = 100
    try:
        body = client.get("SERIAL").json()
        assert len(body["value"]) == 100 and set(body) == {"@odata.context", "value"}  # no next link
        assert len(values(client.get("SERIAL", params={"$top": "250"}))) == 100
        assert values(client.get("SERIAL", params={"$skip": "250"}))[-1]["SERIALNAME"] == "WO-000300"
    finally:
        sim.max_api_lines = 2000


# -- keys and 404s -------------------------------------------------------------------------------------
def test_keys(client: httpx.Client) -> None:
    assert client.get("WAREHOUSES(WARHSNAME='MAIN',LOCNAME='A1')").json()["WARHSDES"] == "מחסן ראשי - מדף A1"
    assert client.get("WAREHOUSES(LOCNAME='A1',WARHSNAME='MAIN')").status_code == 200
    kit = client.get("SERIAL('WO-000001')/KITITEMS_SUBFORM(1)").json()
    assert kit["KLINE"] == 1 and kit["@odata.context"].endswith("$metadata#KITITEMS_SUBFORM/$entity")
    lines = values(client.get("SERIAL('WO-000001')/KITITEMS_SUBFORM"))
    assert [k["KLINE"] for k in lines] == list(range(1, len(lines) + 1))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("NOFORM", id="form"),
        pytest.param("SERIAL('NOPE')", id="record"),
        pytest.param("KITITEMS_SUBFORM", id="subform-alone"),
        pytest.param("SERIAL('WO-000001')/KITITEMS_SUBFORM(99)", id="subform-record"),
        pytest.param("SERIAL('WO-000001')/NOPE_SUBFORM", id="unknown-subform"),
    ],
)
def test_not_found(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and "message" in response.json()["error"]


# -- writes -------------------------------------------------------------------------------------------
def _line(client: httpx.Client) -> dict[str, Any]:
    order = open_order(client)
    return {"SERIALNAME": order["SERIALNAME"], "PARTNAME": order["PARTNAME"], "ACTNAME": "ASSY"}


def test_post_patch_delete_statuses(client: httpx.Client) -> None:
    body = {
        "SERIALNAME": "WO-NEW-1",
        "PARTNAME": "FG-0001",
        "QUANT": 5,
        "KITITEMS_SUBFORM": [{"PARTNAME": "C-00001", "QUANT": 10}],
    }
    created = client.post("SERIAL", json=body)
    assert created.status_code == 201
    assert created.json()["KITITEMS_SUBFORM"][0]["TBALANCE"] == 10
    assert client.post("SERIAL", json=body).status_code == 409
    sub = client.post("SERIAL('WO-NEW-1')/KITITEMS_SUBFORM", json={"PARTNAME": "C-00002", "QUANT": 1})
    assert (sub.status_code, sub.json()["KLINE"]) == (201, 2)
    patched = client.patch("SERIAL('WO-NEW-1')", json={"QUANT": 7})
    assert (
        patched.status_code == 200
        and patched.json()["QUANT"] == 7
        and patched.json()["PARTNAME"] == "FG-0001"
    )
    deleted = client.delete("SERIAL('WO-NEW-1')/KITITEMS_SUBFORM(2)")
    assert (deleted.status_code, deleted.content) == (201, b"")
    assert client.delete("SERIAL('WO-NEW-1')").status_code == 201
    assert client.get("SERIAL('WO-NEW-1')").status_code == 404
    assert client.post("ACT", json={"ACTNAME": "X"}).status_code == 403


def test_udate_moves_on_every_write(client: httpx.Client) -> None:
    before = client.get("SERIAL('WO-000001')").json()["UDATE"]
    client.patch("SERIAL('WO-000001')", json={"REVNAME": "C"})
    middle = client.get("SERIAL('WO-000001')").json()["UDATE"]
    client.post("SERIAL('WO-000001')/SERACT_SUBFORM", json={"ACTNAME": "QC"})
    after = client.get("SERIAL('WO-000001')").json()["UDATE"]
    assert before < middle < after
    changed = values(client.get("SERIAL", params={"$filter": f"UDATE ge {middle}"}))
    assert [r["SERIALNAME"] for r in changed] == ["WO-000001"]


def test_production_report_balance(client: httpx.Client) -> None:
    line = _line(client)
    order = client.get(f"SERIAL('{line['SERIALNAME']}')").json()
    first = client.post(
        "ALINE_ONE", json={**line, "QUANT": order["QUANT"] - 1, "STIME": "08:00", "ETIME": "09:30"}
    )
    assert first.status_code == 201
    key = f"ALINE_ONE(FORM={first.json()['FORM']},KLINE={first.json()['KLINE']})"
    assert client.get(key).json()["QUANT"] == order["QUANT"] - 1
    over = client.post("ALINE_ONE", json={**line, "QUANT": 2})
    assert interface_error(over) == (400, "ALINE_ONE", 'הכמות המדווחת עולה על יתרת הפק"ע')
    assert client.post("ALINE_ONE", json={**line, "QUANT": 1}).status_code == 201
    assert client.delete(key).status_code == 201  # restores the balance
    assert client.post("ALINE_ONE", json={**line, "QUANT": 2}).status_code == 201


@pytest.mark.parametrize(
    ("form", "changes", "message"),
    [
        pytest.param("ALINE_ONE", {"SERIALNAME": "WO-1"}, 'פק"ע WO-1 לא קיימת', id="unknown-order"),
        pytest.param("ALINE_ONE", {"PARTNAME": "X"}, "מוצר X לא קיים", id="unknown-part"),
        pytest.param("ALINE_ONE", {"PARTNAME": None}, "חסר ערך בשדה PARTNAME", id="required"),
        pytest.param(
            "ALINE_ONE", {"STIME": "8:00"}, "ערך לא חוקי בשדה STIME: יש להזין שעה בתבנית HH:MM", id="time"
        ),
        pytest.param(
            "SERNUMBERS", {"SERNUM": "SN-X", "PARTNAME": "NOPE"}, "מוצר NOPE לא קיים", id="card-part"
        ),
        pytest.param("DOCUMENTS_Q", {"DETAILS": "x"}, "חסר ערך בשדה CALLSTATUSCODE", id="call-status"),
    ],
)
def test_business_rules_in_hebrew(
    client: httpx.Client, form: str, changes: dict[str, Any], message: str
) -> None:
    body = {**_line(client), "QUANT": 1, **changes} if form == "ALINE_ONE" else changes
    assert interface_error(client.post(form, json=body)) == (400, form, message)


def test_closed_order_refuses_reports(client: httpx.Client) -> None:
    closed = values(client.get("SERIAL", params={"$filter": "SERIALSTATUSDES eq 'סגורה'", "$top": "1"}))[0]
    body = {"SERIALNAME": closed["SERIALNAME"], "PARTNAME": closed["PARTNAME"], "QUANT": 1}
    assert interface_error(client.post("ALINE_ONE", json=body))[2] == f'פק"ע {closed["SERIALNAME"]} סגורה'


def test_service_call_with_fix_description(client: httpx.Client) -> None:
    card = values(client.get("SERNUMBERS", params={"$top": "1"}))[0]
    created = client.post(
        "DOCUMENTS_Q",
        json={
            "CALLSTATUSCODE": "חדשה",
            "SERNUM": card["SERNUM"],
            "DETAILS": "לא נדלק",
            "DOCTEXT_Q_SUBFORM": {"TEXT": "הוחלף ספק כוח"},
        },
    )
    assert created.status_code == 201 and created.json()["CUSTNAME"] == card["CUSTNAME"]
    key = f"DOCUMENTS_Q(DOCNO='{created.json()['DOCNO']}',TYPE='Q')"
    assert client.get(f"{key}/DOCTEXT_Q_SUBFORM").json()["TEXT"] == "הוחלף ספק כוח"
    assert client.patch(f"{key}/DOCTEXT_Q_SUBFORM", json={"TEXT": "תוקן"}).json()["TEXT"] == "תוקן"
    assert client.get(key, params={"$expand": "DOCTEXT_Q_SUBFORM"}).json()["DOCTEXT_Q_SUBFORM"] == {
        "TEXT": "תוקן"
    }


def test_admin_state(client: httpx.Client) -> None:
    base = str(client.base_url).removesuffix(ROOT)
    state = client.get(base + "/_admin/state", params={"form": "ACT"}).json()
    assert [a["ACTNAME"] for a in state["ACT"]][:3] == ["ASSY", "TEST", "PACK"]
    line = _line(client)  # after a production report too: the reported quantities keyed as text
    assert client.post("ALINE_ONE", json={**line, "QUANT": 1}).status_code == 201
    answered = client.get(base + "/_admin/state", params={"form": "ALINE_ONE"})
    assert answered.status_code == 200
    assert answered.json()["_reported"] == {f"{line['SERIALNAME']}/{line['ACTNAME']}": 1}


# -- faults --------------------------------------------------------------------------------------------
def test_throttle_error_and_outage(client: httpx.Client) -> None:
    admin = str(client.base_url).removesuffix(ROOT) + "/_admin/faults"
    client.put(admin, json={"throttle": 3})
    statuses = [client.get("ACT").status_code for _ in range(4)]
    throttled = client.get("ACT")
    assert statuses == [200, 200, 200, 429] and throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert client.get("ACT", auth=(PAT, "PAT")).status_code == 200  # limits are per user
    client.put(admin, json={"error_rate": 1})
    failed = client.get("ACT")
    assert (failed.status_code, failed.json()) == (
        500,
        {"error": {"code": "", "message": "An error has occurred."}},
    )
    client.put(admin, json={"down": True})
    assert client.get("ACT").status_code == 503
    client.put(admin, json={})
    assert client.get("ACT").status_code == 200


# -- scale ---------------------------------------------------------------------------------------------
def test_50000_work_orders_page_without_gaps() -> None:
    started = time.perf_counter()
    sim = PrioritySimulator(size=50_000)
    assert time.perf_counter() - started < 5.0
    names: list[str] = []
    with serve_in_thread(sim.app) as url, httpx.Client(base_url=url + ROOT, auth=AUTH) as client:
        skip = 0
        while True:
            page = values(
                client.get("SERIAL", params={"$select": "SERIALNAME", "$top": "2000", "$skip": str(skip)})
            )
            names.extend(r["SERIALNAME"] for r in page)
            if len(page) < 2000:
                break
            skip += len(page)
    assert len(names) == len(set(names)) == 50_000
    assert names == [f"WO-{i:06d}" for i in range(1, 50_001)]


# -- the command ---------------------------------------------------------------------------------------
def _free_port_base(count: int = 4) -> int:
    """A base port under the ephemeral range whose `count` consecutive ports are all free now."""
    for _ in range(50):
        base = random.randrange(20000, 32000, 10)
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free run of ports found")


def test_sandbox_command_prints_urls_and_stops_on_sigint() -> None:
    port_base = _free_port_base()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.command", "--json", "--port-base", str(port_base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        raw = [process.stdout.readline() for _ in range(4)]
        if not all(raw):
            process.kill()
            pytest.fail(f"sandbox stopped early: {process.communicate(timeout=10)[1]}")
        lines = [json.loads(line) for line in raw]
        assert [line["name"] for line in lines] == ["nextplus", "priority", "nextup", "nextx"]
        priority = lines[1]
        assert priority["url"] == f"http://127.0.0.1:{port_base + 1}"
        creds = priority["credentials"]
        response = httpx.get(
            priority["url"] + creds["path"] + "ACT", auth=(creds["pat"], creds["pat_password"])
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
