"""Traces of events that met the hard cases become test cases that pass, as an integrator exports them.

- NextUp refused the connector's token (HTTP 200 `{"Result": false, "Error": "AuthenticationToken
  lipseste, este invalid sau a expirat."}`): the connector logged in again and sent the call once more.
  Test cases run without auth, so the refused attempt is no part of the case: mocked, its reply would be
  the pipeline's answer (422 with the token error) instead of the report NextUp booked.
- NextUp saved a production report and the connection was reset before the reply: the case plays that
  attempt as unanswered (`no_reply`) and expects the same 502 "outcome unknown" reply.

Over real HTTP: the shipped root (NextUp binding only) served by `ServiceHost` against the NextUp and
Next Plus simulators, Operation events posted as the Integration Builder posts them, then `mesbridge
traces export --as-test` and `mesbridge test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.service.server import ServiceHost
from sandbox import nextplus, nextup
from sandbox.base import Faults
from sandbox.serve import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-exported-traces-token-0123456789"
TARGET = "mappings/nextup/tests/recorded.yaml"

Play = Callable[[httpx.AsyncClient, str, Any, dict[str, Any]], Awaitable[httpx.Response]]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for name in ("connectors", "mappings", "schemas"):
        shutil.copytree(REPO / name, root / name)
    (root / "mesbridge.yaml").write_text((REPO / "mesbridge.yaml").read_text() + "\nbindings: [nextup]\n")
    for name in ("MESBRIDGE_STORE", "MESBRIDGE_BINDINGS"):
        monkeypatch.delenv(name, raising=False)
    return root


async def _serve(root: Path, store: str, play: Play) -> httpx.Response:
    """The service and the simulators; `play(client, url, nextup simulator, event)` sends the events.
    Its last reply."""
    apps = {"nextplus": nextplus.create_app(size=6, seed=1), "nextup": nextup.create_app(size=6, seed=1)}
    with contextlib.ExitStack() as servers:
        urls = {name: servers.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        environ = {
            "NEXTPLUS_URL": urls["nextplus"],
            "NEXTUP_URL": urls["nextup"],
            "MESBRIDGE_WEBHOOK_TOKEN": TOKEN,
            "MESBRIDGE_STORE": store,
        }
        host = ServiceHost(root, host="127.0.0.1", port=0, environ=environ, reload=False)
        await host.start()
        try:
            # the work-order poller's first round logs in too: over before the events, so that no
            # login of its own falls between a test's forgetting the token and its next event
            assert host.pollers is not None
            async with asyncio.timeout(30):
                while host.pollers.running["nextup.workorders"].rounds < 1:
                    await asyncio.sleep(0.02)
            sim = apps["nextup"].state.simulator
            order = next(iter(sim.company.production_orders.values()))
            event = {
                "type": "add",
                "workorderNumber": order["Code"],
                "sku": order["ArticleCode"],
                "serial": "SN-0001",
                "actCode": "DEB",
                "workCenterCode": "WC-DEB",
                "validQty": 1,
                "invalidQty": 0,
            }
            async with httpx.AsyncClient(timeout=10) as client:
                return await play(client, f"{host.url}/nextup/operation?token={TOKEN}", sim, event)
        finally:
            await host.stop()


def _export(root: Path, store: str, search: str) -> tuple[str, str]:
    """`traces list --search`, then `traces export --as-test` of the one trace found: (its id, the output)."""
    runner = CliRunner()
    listed = runner.invoke(
        main, ["traces", "list", "--store", store, "--search", search, "--json"], catch_exceptions=False
    )
    assert listed.exit_code == 0, listed.output
    (found,) = json.loads(listed.output)
    exported = runner.invoke(
        main, ["traces", "export", found["id"], "--store", store, "--as-test", TARGET], catch_exceptions=False
    )
    assert exported.exit_code == 0, exported.output
    assert "1 of 1 exported case(s) pass" in exported.output, exported.output
    tested = runner.invoke(main, ["test", ".", "-k", "nextup.operation"], catch_exceptions=False)
    assert tested.exit_code == 0, tested.output
    return found["id"], exported.output


def test_an_event_sent_again_after_a_refused_token_exports_as_a_passing_case(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def play(client: httpx.AsyncClient, url: str, sim: Any, event: dict[str, Any]) -> httpx.Response:
        first = await client.post(url, json=event)  # logs in
        assert first.status_code == 200, first.text
        sim.tokens.clear()  # NextUp forgets the token: the next call is refused for it
        return await client.post(url, json={**event, "serial": "SN-0002"})

    store = f"sqlite:///{tmp_path / 'mesbridge.db'}"
    again = asyncio.run(_serve(root, store, play))
    assert again.status_code == 200, again.text
    monkeypatch.chdir(root)
    trace_id, _ = _export(root, store, "SN-0002")
    assert again.json()["externalId"] in (root / TARGET).read_text()
    # the trace says why the call was sent twice
    shown = CliRunner().invoke(main, ["traces", "show", trace_id, "--store", store], catch_exceptions=False)
    assert "token rejected, sent again after a login" in shown.output, shown.output


def test_a_report_saved_then_unanswered_exports_as_a_passing_case_of_its_unknown_outcome(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def play(client: httpx.AsyncClient, url: str, sim: Any, event: dict[str, Any]) -> httpx.Response:
        sim.faults = Faults(reset_after_body=1.0)  # saved, then the connection is reset
        return await client.post(url, json={**event, "serial": "SN-0003"})

    store = f"sqlite:///{tmp_path / 'mesbridge.db'}"
    reply = asyncio.run(_serve(root, store, play))
    assert reply.status_code == 502 and reply.json()["message"].startswith("outcome unknown"), reply.text
    monkeypatch.chdir(root)
    _, output = _export(root, store, "SN-0003")
    assert "cannot be mocked" not in output, output
    case = (root / TARGET).read_text()
    assert "no_reply: the connection was lost" in case, case
