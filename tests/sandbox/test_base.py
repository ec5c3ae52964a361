"""The simulator foundation: fault parsing, fault injection, admin routes, serving on a real port."""

from __future__ import annotations

import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.base import Faults, Simulator
from sandbox.serve import serve_in_thread


class Echo(Simulator):
    name = "echo"

    def routes(self) -> list[BaseRoute]:
        async def echo(request: Request) -> Response:
            return JSONResponse({"body": (await request.body()).decode()})

        return [Route("/echo", echo, methods=["GET", "POST"])]

    def state(self, request: Request) -> dict:
        return {"calls": len(self.calls)}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("", Faults(), id="empty"),
        pytest.param(
            "latency=0.2,error_rate=0.1,down=1,throttle=100,token_ttl=5",
            Faults(latency=0.2, error_rate=0.1, down=True, throttle=100, token_ttl=5),
            id="all",
        ),
        pytest.param("outage=10-20,outage=30-40", Faults(outages=[(10, 20), (30, 40)]), id="outages"),
        pytest.param("outages=1-2;3-4,down=0", Faults(outages=[(1, 2), (3, 4)]), id="outage-list"),
        pytest.param(
            "apply_then_error=0.2,apply_then_timeout=0.1,reset_after_body=0.05,writes_only=0,timeout_hold=5",
            Faults(
                apply_then_error=0.2,
                apply_then_timeout=0.1,
                reset_after_body=0.05,
                writes_only=False,
                timeout_hold=5,
            ),
            id="hard",
        ),
    ],
)
def test_faults_parse(spec: str, expected: Faults) -> None:
    assert Faults.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("speed=1", r"unknown fault\(s\) speed", id="unknown"),
        pytest.param("error_rate=2", "error_rate must be within 0..1", id="rate"),
        pytest.param("latency", "is not NAME=VALUE", id="no-value"),
        pytest.param("outage=5", "is not START-END", id="window"),
        pytest.param(
            "apply_then_error=1.5", r"apply_then_error must be within 0\.\.1, got 1\.5", id="hard-rate"
        ),
        pytest.param(
            "apply_then_error=0.6,reset_after_body=0.6",
            r"apply_then_error \+ apply_then_timeout \+ reset_after_body must be at most 1, got 1\.2",
            id="hard-sum",
        ),
        pytest.param("timeout_hold=-1", "timeout_hold must be >= 0 seconds", id="hold"),
    ],
)
def test_faults_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.parse(spec)


def test_faults_merge_keeps_other_settings() -> None:
    merged = Faults.from_dict({"down": True}, base=Faults(latency=1.0))
    assert (merged.latency, merged.down) == (1.0, True)


def test_serve_in_thread_and_admin_routes() -> None:
    sim = Echo()
    with serve_in_thread(sim.app) as url, httpx.Client(base_url=url) as client:
        assert client.post("/echo", json={"a": 1}, headers={"Authorization": "secret"}).status_code == 200
        calls = client.get("/_admin/calls").json()
        assert [(c["method"], c["path"], c["body"], c["status"]) for c in calls] == [
            ("POST", "/echo", {"a": 1}, 200)
        ]
        assert "authorization" not in calls[0]["headers"]
        assert client.get("/_admin/state").json() == {"calls": 1}
        assert client.delete("/_admin/calls").status_code == 204
        assert client.get("/_admin/calls").json() == []

        assert client.put("/_admin/faults", json={"down": True}).json()["down"] is True
        assert client.get("/echo").status_code == 503
        assert client.patch("/_admin/faults", json={"latency": 0.2}).json()["down"] is True
        assert client.put("/_admin/faults", json={"latency": 0.2}).json()["down"] is False
        started = time.monotonic()
        assert client.get("/echo").status_code == 200
        assert time.monotonic() - started >= 0.2
        assert client.put("/_admin/faults", json={"bogus": 1}).status_code == 400
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/echo")


async def test_throttle_answers_429_with_retry_after() -> None:
    now = [100.0]
    sim = Echo(faults=Faults(throttle=2), clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app), base_url="http://sim") as client:
        assert [(await client.get("/echo")).status_code for _ in range(2)] == [200, 200]
        now[0] += 15
        third = await client.get("/echo")
        assert (third.status_code, third.headers["Retry-After"]) == (429, "45")
        assert (await client.get("/echo", headers={"Authorization": "other"})).status_code == 200
        now[0] += 45
        assert (await client.get("/echo")).status_code == 200


async def test_outage_window_and_seeded_error_rate() -> None:
    now = [0.0]
    sim = Echo(faults=Faults(outages=[(10, 20)]), clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app), base_url="http://sim") as client:
        assert (await client.get("/echo")).status_code == 200
        now[0] = 15
        assert (await client.get("/echo")).status_code == 503
        assert (await client.get("/_admin/faults")).status_code == 200  # admin is never faulted
        now[0] = 20
        assert (await client.get("/echo")).status_code == 200

    first = await _statuses(Echo(faults=Faults(error_rate=0.5, seed=7)), 20)
    assert first == await _statuses(Echo(faults=Faults(error_rate=0.5, seed=7)), 20)
    assert set(first) == {200, 500}


async def _statuses(sim: Simulator, n: int) -> list[int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app), base_url="http://sim") as client:
        return [(await client.get("/echo")).status_code for _ in range(n)]


async def test_hard_faults_spare_reads_unless_told_and_need_a_server_to_drop() -> None:
    sim = Echo(faults=Faults(apply_then_error=1.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app), base_url="http://sim") as client:
        assert (await client.get("/echo")).status_code == 200
        assert (await client.post("/echo", content=b"x")).status_code == 500
        sim.faults = Faults(apply_then_error=1.0, writes_only=False)
        assert (await client.get("/echo")).status_code == 500
        # In-process there is no connection to drop: the client sees the reset as an exception.
        sim.faults = Faults(reset_after_body=1.0)
        with pytest.raises(ConnectionResetError, match="sandbox.abort"):
            await client.post("/echo", content=b"y")
    assert [(c["method"], c["status"], c.get("fault")) for c in sim.calls] == [
        ("GET", 200, None),
        ("POST", 200, "apply_then_error"),
        ("GET", 200, "apply_then_error"),
        ("POST", 200, "reset_after_body"),
    ]


@pytest.mark.parametrize("faults", [Faults(), Faults(throttle=1)], ids=["route", "fault"])
async def test_a_call_is_logged_before_its_reply_can_reach_the_caller(faults: Faults) -> None:
    """A caller that has read the reply (and answered its own caller) finds the call in the log: it was
    logged after the reply was sent, so a test reading the log right after could find it empty."""
    echo = Echo(faults=faults)
    logged_at_start: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            logged_at_start.append(len(echo.calls))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }
    for _ in range(2):  # the second is throttled when the throttle is on
        await echo.app(dict(scope), receive, send)
    assert logged_at_start == [1, 2]
    assert len(echo.calls) == 2
