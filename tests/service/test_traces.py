"""Traces of what the service did, over real HTTP against the simulators: every event handled (sync,
queued, failed) leaves one, with its steps and every attempt, redacted and capped; a pipeline or the
settings can turn them off; and `mesbridge traces` lists, shows and exports them as passing tests."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from engine.commands import test as test_module
from engine.commands.traces import traces
from engine.service.server import ServiceHost
from engine.store import TraceQuery, open_store

from .conftest import Sims, running, url, write_root


async def _traces(host: ServiceHost, count: int, **criteria: Any) -> list[dict[str, Any]]:
    """The documents of the first `count` traces matching `criteria`, oldest first, once written."""
    assert host.store is not None
    deadline = time.monotonic() + 10
    while True:
        found = await host.store.list_traces(TraceQuery(**criteria))
        if len(found) >= count or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert len(found) == count, found
    documents = [await host.store.get_trace(t.id) for t in reversed(found)]
    return [d for d in documents if d is not None]


def _event(number: str, **extra: Any) -> dict[str, Any]:
    return {"workorderNumber": number, "sku": "SKU-1", "quantity": 2, **extra}


async def test_a_sync_event_leaves_its_steps_calls_and_reply(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient() as client:
        answer = await client.post(url(host.url, "/wo-sync"), json=_event("TR-1", requestId="r-1"))
        assert answer.status_code == 201
        [trace] = await _traces(host, 1)
    assert (trace["pipeline"], trace["binding"], trace["source"], trace["outcome"]) == (
        "wo.sync",
        "test",
        "webhook",
        "ok",
    )
    assert trace["event_id"] == "wo.sync:r-1" and trace["version"] == host.service.generation.version  # type: ignore[union-attr]
    assert trace["event"] == _event("TR-1", requestId="r-1")
    assert trace["status"] == 201 and trace["reply"] == answer.json() and trace["error"] is None
    [step] = trace["steps"]
    assert (step["id"], step["type"], step["name"], step["status"]) == ("steps[0]", "call", "created", "ok")
    login, create = trace["calls"]
    assert login["login"] is True and login["path"] == "/api/Users/login"
    assert (create["method"], create["path"], create["status"], create["attempt"]) == (
        "POST",
        "/api/Workorders/",
        200,
        1,
    )
    assert create["step"] == "steps[0]" and create["request"] == {
        "workorderNumber": "TR-1",
        "sku": "SKU-1",
        "quantity": 2,
    }
    assert create["reply"]["id"] == answer.json()["externalId"]
    assert 0 < create["latency"] <= step["duration"] <= trace["duration"]
    text = json.dumps(trace)
    assert "api-secret" not in text  # the login's password
    token = sims.sims["nextplus"].tokens if hasattr(sims.sims["nextplus"], "tokens") else {}
    for value in token:
        assert value not in text  # the obtained token


async def test_queued_and_failed_runs_carry_their_attempt_and_failure_class(
    tmp_path: Path, sims: Sims
) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient() as client:
        assert (
            await client.post(url(host.url, "/wo"), json=_event("TR-2", eventId="e-2"))
        ).status_code == 202
        [queued] = await _traces(host, 1, pipeline="wo.create")
        sims.faults("nextplus", error_rate=1.0)
        failed = await client.post(url(host.url, "/wo-sync"), json=_event("TR-3", requestId="r-3"))
        assert failed.status_code == 502
        [uncertain] = await _traces(host, 1, outcome="uncertain")
    assert (queued["source"], queued["attempt"], queued["event_id"]) == ("queue", 1, "wo.create:e-2")
    assert [s["id"] for s in queued["steps"]] == ["steps[0]", "steps[1]", "steps[1].then[0]"]
    assert [c["method"] for c in queued["calls"] if not c.get("login")] == ["GET", "POST"]
    assert uncertain["error"]["kind"] == "uncertain" and uncertain["status"] == 502
    [post] = [c for c in uncertain["calls"] if c["method"] == "POST"]
    assert (post["status"], post["failure"]) == (500, "uncertain")
    assert uncertain["steps"][0]["status"] == "failed"


async def test_pipelines_and_settings_turn_tracing_off_and_bodies_are_capped(
    tmp_path: Path, sims: Sims
) -> None:
    root = write_root(tmp_path)
    mapping = root / "mappings" / "test" / "workorders.yaml"
    mapping.write_text(
        mapping.read_text().replace("  - name: wo.create\n", "  - name: wo.create\n    trace: false\n")
    )
    settings = root / "mesbridge.yaml"
    settings.write_text(settings.read_text() + "traces: {max_body_bytes: 256}\n")
    async with running(root, sims) as host, httpx.AsyncClient() as client:
        assert (
            await client.post(url(host.url, "/wo"), json=_event("TR-4", eventId="e-4"))
        ).status_code == 202
        long_sku = "S" * 300
        big = await client.post(url(host.url, "/wo-sync"), json=_event("TR-5", sku=long_sku, requestId="r-5"))
        assert big.status_code == 201
        [capped] = await _traces(host, 1)
        assert sims.workorders("TR-4") == ["TR-4"]  # delivered, not traced
    assert capped["pipeline"] == "wo.sync"
    assert capped["event"]["$truncated"] > 256 and len(capped["event"]["head"].encode()) <= 256
    [create] = [c for c in capped["calls"] if c["method"] == "POST"]
    assert "$truncated" in create["request"]

    sims_env = dict(sims.environ, MESBRIDGE_TRACES="false")
    quiet = ServiceHost(root, port=0, host="127.0.0.1", environ=sims_env, reload=False)
    await quiet.start()
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(url(quiet.url, "/wo-sync"), json=_event("TR-6", requestId="r-6"))
            assert answer.status_code == 201
        await asyncio.sleep(0.6)  # two write intervals
        assert quiet.store is not None
        assert [t.pipeline for t in await quiet.store.list_traces(TraceQuery())] == ["wo.sync"]  # TR-5's only
    finally:
        await quiet.stop()


async def test_traces_list_show_and_export_as_a_passing_test(
    tmp_path: Path, sims: Sims, monkeypatch: Any
) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient() as client:
        for number in ("WO-7001", "WO-7002"):
            answer = await client.post(url(host.url, "/wo-sync"), json=_event(number, requestId=number))
            assert answer.status_code == 201
        await _traces(host, 2)
    monkeypatch.chdir(tmp_path)

    async def invoke(command: Any, args: list[str]) -> Any:  # the CLI runs its own event loop
        return await asyncio.to_thread(CliRunner().invoke, command, args)

    listed = await invoke(traces, ["list", "--root", "root", "--search", "wo-7002", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["pipeline"], row["outcome"], row["event_id"]) == ("wo.sync", "ok", "wo.sync:WO-7002")
    table = await invoke(traces, ["list", "--root", "root", "--outcome", "failed"])
    assert table.exit_code == 0 and "no traces match" in table.output

    shown = await invoke(traces, ["show", row["id"], "--root", "root"])
    assert shown.exit_code == 0, shown.output
    assert "wo.sync  ok 201" in shown.output and "steps[0] call created" in shown.output
    assert "mes POST /api/Workorders/" in shown.output and "201" in shown.output
    as_json = await invoke(traces, ["show", row["id"], "--root", "root", "--json"])
    assert json.loads(as_json.output)["id"] == row["id"]
    assert (await invoke(traces, ["show", "feedfacefeedface", "--root", "root"])).exit_code == 1

    file = Path("root/mappings/test/tests/recorded.yaml")
    exported = await invoke(traces, ["export", row["id"], "--root", "root", "--as-test", str(file)])
    assert exported.exit_code == 0, exported.output
    assert "1 of 1 exported case(s) pass" in exported.output
    first = file.read_text()
    again = await invoke(traces, ["export", row["id"], "--root", "root", "--as-test", str(file)])
    assert again.exit_code == 0 and file.read_text() == first  # stable: the same file again
    ran = await invoke(test_module.test, ["root", "-k", "WO-7002", "-v"])
    assert ran.exit_code == 0, ran.output
    assert "1 passed, 0 failed" in ran.output
    usage = await invoke(traces, ["export", row["id"], "--root", "root"])
    assert usage.exit_code == 2 and "--as-test" in usage.output


async def test_a_replayed_uncertain_dead_letter_leaves_a_cautious_trace_that_exports_so(
    tmp_path: Path, sims: Sims, monkeypatch: Any
) -> None:
    root = write_root(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    await store.migrate()
    await store.enqueue("wo.create", "TR-9", {"event": _event("TR-9")}, event_id="wo.create:e-9")
    [job] = await store.claim("w")
    await store.dead_letter(job, "outcome unknown after POST /api/Workorders/", kind="uncertain")
    assert await store.replay_dead("wo.create:e-9", verify_first=True)
    await store.close()
    async with running(root, sims) as host, httpx.AsyncClient() as client:
        [replayed] = await _traces(host, 1, pipeline="wo.create")
        posted = await client.post(url(host.url, "/wo"), json=_event("TR-10", eventId="e-10"))
        assert posted.status_code == 202
        [_, plain] = await _traces(host, 2, pipeline="wo.create")
    assert (replayed["source"], replayed["outcome"], replayed["verify_first"]) == ("replay", "ok", True)
    assert "refuse_unprotected" not in replayed
    assert "verify_first" not in plain and "refuse_unprotected" not in plain
    monkeypatch.chdir(tmp_path)
    file = Path("root/mappings/test/tests/recorded.yaml")
    args = ["export", replayed["id"], "--root", "root", "--as-test", str(file)]
    exported = await asyncio.to_thread(CliRunner().invoke, traces, args)
    assert exported.exit_code == 0 and "1 of 1 exported case(s) pass" in exported.output, exported.output
    assert "verify_first: true" in file.read_text() and "refuse_unprotected" not in file.read_text()
