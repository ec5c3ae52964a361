"""The apply-then faults in every simulator, over real HTTP: the write is saved, and then the reply is
the system's own 500 (apply_then_error), never comes (apply_then_timeout), or the connection is reset
(reset_after_body). Sign-in and reads are untouched while `writes_only` is on, and the draws follow
the seed."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox import nextplus, nextup, nextx, priority
from sandbox.serve import serve_in_thread

PRIORITY_ROOT = "/odata/Priority/tabula.ini/demo/"
NEXTUP_URL = "/NextUpServices/Services/POST/"
DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)  # a reset, or a close with no reply


@dataclass
class Session:
    client: httpx.Client
    token: str | None = None  # NextUp's, which travels in the body


def _nextup(session: Session, method: str, params: dict[str, Any]) -> httpx.Response:
    body = {"AuthenticationToken": session.token, "Method": method, "Params": params}
    return session.client.post(NEXTUP_URL, content=json.dumps(body), headers={"Content-Type": "text/plain"})


def _sign_in_nextplus(session: Session) -> None:
    reply = session.client.post("/api/Users/login", json=nextplus.CREDENTIALS)
    assert reply.status_code == 200, reply.text
    session.client.headers["Authorization"] = reply.json()["id"]


def _sign_in_nextup(session: Session) -> None:
    reply = _nextup(session, "GetAuthenticationToken", nextup.CREDENTIALS)
    assert reply.status_code == 200 and reply.json()["Error"] is None, reply.text
    session.token = reply.json()["Result"]


def _sign_in_nextx(session: Session) -> None:
    grant = {"grant_type": "client_credentials", "scope": "public.api", **nextx.CREDENTIALS}
    reply = session.client.post("/api/auth/token", json=grant)
    assert reply.status_code == 200, reply.text
    session.client.headers["Authorization"] = "Bearer " + reply.json()["data"]["access_token"]


def _count_nextup(session: Session, code: str) -> int:
    reply = _nextup(session, "GetAllArticles", {})
    assert reply.status_code == 200, reply.text
    return sum(article["Code"] == code for article in reply.json()["Result"])


@dataclass(frozen=True)
class System:
    """How to sign in to one simulator, write record `code`, count the records named `code`, and
    what its 500 looks like."""

    name: str
    create_app: Callable[..., Any]
    sign_in: Callable[[Session], None]
    write: Callable[[Session, str], httpx.Response]
    count: Callable[[Session, str], int]
    check_error: Callable[[httpx.Response], None]
    applied: int  # the status the write's route answers


def _priority_error(reply: httpx.Response) -> None:
    assert reply.json() == {"error": {"code": "", "message": "An error has occurred."}}


def _nextplus_error(reply: httpx.Response) -> None:
    assert reply.json()["error"] == {
        "statusCode": 500,
        "name": "Error",
        "message": "Internal Server Error",
        "code": "INTERNAL_ERROR",
    }


def _nextup_error(reply: httpx.Response) -> None:
    assert reply.headers["content-type"].startswith("text/html")
    assert "Runtime Error" in reply.text


def _nextx_error(reply: httpx.Response) -> None:
    assert reply.json() == {"meta": {"message": "Server Error", "status_code": 500}, "data": []}


SYSTEMS = [
    System(
        "priority",
        priority.create_app,
        lambda s: None,  # HTTP Basic on every call
        lambda s, code: s.client.post(
            PRIORITY_ROOT + "SERIAL", json={"SERIALNAME": code, "PARTNAME": "FG-0001", "QUANT": 1}
        ),
        lambda s, code: len(
            s.client.get(PRIORITY_ROOT + "SERIAL", params={"$filter": f"SERIALNAME eq '{code}'"}).json()[
                "value"
            ]
        ),
        _priority_error,
        201,
    ),
    System(
        "nextplus",
        nextplus.create_app,
        _sign_in_nextplus,
        lambda s, code: s.client.post(
            "/api/Workorders/", json={"workorderNumber": code, "sku": "FG-1", "quantity": 1}
        ),
        lambda s, code: s.client.get(
            "/api/Workorders/count", params={"where": json.dumps({"workorderNumber": code})}
        ).json()["count"],
        _nextplus_error,
        200,
    ),
    System(
        "nextup",
        nextup.create_app,
        _sign_in_nextup,
        lambda s, code: _nextup(s, "AddArticle", {"Code": code, "Name": code}),
        _count_nextup,
        _nextup_error,
        200,
    ),
    System(
        "nextx",
        nextx.create_app,
        _sign_in_nextx,
        lambda s, code: s.client.post("/api/customer/customer", json={"name": code}),
        lambda s, code: sum(
            c["name"] == code  # the search matches substrings: HF-1 finds HF-10 too
            for c in s.client.get("/api/customer/customer", params={"sttsearch": code}).json()
        ),
        _nextx_error,
        200,
    ),
]


@pytest.fixture(params=SYSTEMS, ids=[s.name for s in SYSTEMS])
def system(request: pytest.FixtureRequest) -> System:
    chosen: System = request.param
    return chosen


@pytest.fixture
def served(system: System) -> Iterator[tuple[System, str, Any]]:
    app = system.create_app(seed=1)
    with serve_in_thread(app) as url:
        yield system, url, app.state.simulator


@contextlib.contextmanager
def signed_in(system: System, url: str, timeout: float = 5.0) -> Iterator[Session]:
    """A client signed in to the simulator (sign-in is no write: the faults never hit it)."""
    auth = ("apiuser", "apipass") if system.name == "priority" else None
    with httpx.Client(base_url=url, auth=auth, timeout=timeout) as client:
        session = Session(client)
        system.sign_in(session)
        yield session


def _set_faults(url: str, **faults: Any) -> None:
    reply = httpx.put(url + "/_admin/faults", json=faults)
    assert reply.status_code == 200, reply.text


def _logged(url: str) -> list[tuple[str, int, str | None]]:
    calls = httpx.get(url + "/_admin/calls").json()
    return [(c["method"], c["status"], c.get("fault")) for c in calls]


def test_apply_then_error_saves_and_answers_the_systems_500(served: tuple[System, str, Any]) -> None:
    system, url, _ = served
    _set_faults(url, apply_then_error=1.0)
    with signed_in(system, url) as session:
        for code in ("HF-1", "HF-2"):
            reply = system.write(session, code)
            assert reply.status_code == 500
            system.check_error(reply)
            assert system.count(session, code) == 1  # saved; reads are not faulted either
    writes = [call for call in _logged(url) if call[2] is not None]
    assert writes == [("POST", system.applied, "apply_then_error")] * 2


def test_apply_then_timeout_saves_and_never_answers(served: tuple[System, str, Any]) -> None:
    system, url, _ = served
    _set_faults(url, apply_then_timeout=1.0, timeout_hold=30)
    with signed_in(system, url, timeout=0.3) as session:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            system.write(session, "HF-1")
        assert time.monotonic() - started < 2
    # A client that would wait longer than timeout_hold has its connection dropped with no reply.
    _set_faults(url, apply_then_timeout=1.0, timeout_hold=0.3)
    with signed_in(system, url, timeout=10) as session:
        started = time.monotonic()
        with pytest.raises(DROPPED):
            system.write(session, "HF-2")
        assert 0.3 <= time.monotonic() - started < 3
        assert (system.count(session, "HF-1"), system.count(session, "HF-2")) == (1, 1)
    assert [call for call in _logged(url) if call[2] is not None] == [
        ("POST", system.applied, "apply_then_timeout")
    ] * 2


def test_reset_after_body_saves_and_resets(served: tuple[System, str, Any]) -> None:
    system, url, _ = served
    _set_faults(url, reset_after_body=1.0)
    with signed_in(system, url) as session:
        with pytest.raises(DROPPED):
            system.write(session, "HF-1")
        assert system.count(session, "HF-1") == 1
    assert [call for call in _logged(url) if call[2] is not None] == [
        ("POST", system.applied, "reset_after_body")
    ]


def test_a_simulator_held_by_a_fault_still_stops_at_once(system: System) -> None:
    app = system.create_app(seed=1)
    with serve_in_thread(app) as url, signed_in(system, url, timeout=30) as session:
        _set_faults(url, apply_then_timeout=1.0, timeout_hold=60)
        writer = concurrent.futures.ThreadPoolExecutor(1)
        pending = writer.submit(system.write, session, "HF-1")
        deadline = time.monotonic() + 5
        while not app.state.simulator.calls or app.state.simulator.calls[-1].get("fault") is None:
            assert time.monotonic() < deadline, "the write never reached the simulator"
            time.sleep(0.01)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2
    with pytest.raises(DROPPED):
        pending.result(timeout=5)
    writer.shutdown()


def _outcomes(system: System, seed: int, n: int = 24) -> tuple[list[str], list[int]]:
    """What the client saw of `n` writes on a fresh simulator, and how many records each left."""
    app = system.create_app(seed=1)
    outcomes: list[str] = []
    with serve_in_thread(app) as url, signed_in(system, url) as session:
        _set_faults(
            url,
            apply_then_error=0.25,
            apply_then_timeout=0.25,
            reset_after_body=0.25,
            timeout_hold=0,
            seed=seed,
        )
        for i in range(n):
            try:
                outcomes.append(str(system.write(session, f"HF-{i}").status_code))
            except DROPPED:
                outcomes.append("dropped")
        logged = _logged(url)[-n:]  # the n writes are the last calls so far
        counts = [system.count(session, f"HF-{i}") for i in range(n)]
    # The call log tells a timeout from a reset; the client sees both as a dropped connection.
    seen = {"apply_then_error": "500", "apply_then_timeout": "dropped", "reset_after_body": "dropped"}
    assert [seen.get(fault or "", str(status)) for _, status, fault in logged] == outcomes
    assert {status for _, status, _ in logged} == {system.applied}
    return outcomes, counts


def test_hard_faults_follow_the_seed(system: System) -> None:
    first, counts = _outcomes(system, seed=7)
    assert counts == [1] * len(first)  # every write was applied, whatever the client was told
    assert set(first) == {str(system.applied), "500", "dropped"}
    assert _outcomes(system, seed=7)[0] == first
    assert _outcomes(system, seed=8)[0] != first
