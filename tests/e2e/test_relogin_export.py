"""A trace of an event whose ERP refused the connector's token becomes a test case that passes.

NextUp answers a dead token with HTTP 200 `{"Result": false, "Error": "AuthenticationToken lipseste,
este invalid sau a expirat."}`; the connector logs in again and sends the call once more. Test cases
run without auth, so the refused attempt is no part of the exported case: mocked, its reply would be
the pipeline's answer (422 with the token error) instead of the report NextUp booked.

Over real HTTP: the shipped root (NextUp binding only) served by `ServiceHost` against the NextUp and
Next Plus simulators, an Operation event posted as the Integration Builder posts it, then `mesbridge
traces export --as-test` and `mesbridge test` as an integrator runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.service.server import ServiceHost
from sandbox import nextplus, nextup
from sandbox.serve import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-relogin-export-token-0123456789"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for name in ("connectors", "mappings", "schemas"):
        shutil.copytree(REPO / name, root / name)
    (root / "mesbridge.yaml").write_text((REPO / "mesbridge.yaml").read_text() + "\nbindings: [nextup]\n")
    return root


async def _report_after_a_refused_token(root: Path, store: str) -> str:
    """Two Operation events through the service; NextUp forgets its tokens between them. The second's
    externalId."""
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
            url = f"{host.url}/nextup/operation?token={TOKEN}"
            async with httpx.AsyncClient(timeout=10) as client:
                first = await client.post(url, json=event)  # logs in
                assert first.status_code == 200, first.text
                sim.tokens.clear()  # NextUp forgets the token: the next call is refused for it
                again = await client.post(url, json={**event, "serial": "SN-0002"})
            assert again.status_code == 200, again.text
            return str(again.json()["externalId"])
        finally:
            await host.stop()


def test_an_event_sent_again_after_a_refused_token_exports_as_a_passing_case(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'mesbridge.db'}"
    number = asyncio.run(_report_after_a_refused_token(root, store))
    monkeypatch.chdir(root)
    for name in ("MESBRIDGE_STORE", "MESBRIDGE_BINDINGS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    listed = runner.invoke(
        main, ["traces", "list", "--store", store, "--search", "SN-0002", "--json"], catch_exceptions=False
    )
    assert listed.exit_code == 0, listed.output
    (found,) = json.loads(listed.output)
    target = "mappings/nextup/tests/recorded.yaml"
    exported = runner.invoke(
        main,
        ["traces", "export", found["id"], "--store", store, "--as-test", target],
        catch_exceptions=False,
    )
    assert exported.exit_code == 0, exported.output
    assert "1 of 1 exported case(s) pass" in exported.output, exported.output
    assert number in (root / target).read_text()
    tested = runner.invoke(main, ["test", ".", "-k", "nextup.operation"], catch_exceptions=False)
    assert tested.exit_code == 0, tested.output
    # the trace says why the call was sent twice
    shown = runner.invoke(main, ["traces", "show", found["id"], "--store", store], catch_exceptions=False)
    assert "token rejected, sent again after a login" in shown.output, shown.output
