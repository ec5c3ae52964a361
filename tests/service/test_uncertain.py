"""Uncertain writes in the queue: never sent blindly again, dead-lettered as uncertain, replayed with
their verify lookup first (or only with --force), leases renewed while a slow call runs, and a
reclaimed job that nothing protects left for a person to check. Over real HTTP against a small ERP
whose records can be counted and which saves and then fails on request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.commands.dlq import dlq
from engine.service.server import ServiceHost
from engine.store import open_store
from sandbox.serve import serve_in_thread

pytestmark = pytest.mark.slow


@dataclass
class Ledger:
    """A small ERP: POST /records saves a record; `after_save` says what the reply then is."""

    records: list[dict[str, object]] = field(default_factory=list)
    after_save: str = "ok"  # ok | error (save, then 500) | slow (save after `delay`, then 201)
    delay: float = 0.0
    find_delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def create(request: Request) -> Response:
            body = await request.json()
            if self.after_save == "slow":
                await asyncio.sleep(self.delay)
            with self.lock:
                self.records.append(body)
                number = len(self.records)
            if self.after_save == "error":
                return JSONResponse({"error": {"message": "An error has occurred."}}, 500)
            return JSONResponse({"id": number, **body}, 201)

        async def find(request: Request) -> Response:  # `after`: past the first that many (a baseline)
            await asyncio.sleep(self.find_delay)
            ref = request.query_params.get("ref")
            after = int(request.query_params.get("after", 0))
            return JSONResponse([r for r in self.records if r.get("ref") == ref][after:])

        async def busy(request: Request) -> Response:
            return JSONResponse({"error": {"message": "busy"}}, 503)

        return Starlette(
            routes=[
                Route("/records", create, methods=["POST"]),
                Route("/records", find),
                Route("/busy", busy),
            ]
        )


CONNECTOR = """\
base_url: ${LEDGER_URL}
envelope: {error: [error.message]}
timeout: {connect: 2, read: 10}
retry: {max_attempts: 3, backoff: {initial: 0.05, multiplier: 2, max: 0.2, jitter: false}, deadline: 10}
"""

PIPELINES = """\
pipelines:
  - name: plain.create
    source: {kind: webhook, path: /plain, mode: queue, idempotency_key: ref}
    steps:
      - {name: saved, call: ledger, method: POST, path: /records, body: {ref: "{{ event.ref }}"}}
  - name: verified.create
    source: {kind: webhook, path: /verified, mode: queue, idempotency_key: ref}
    steps:
      - name: saved
        call: ledger
        method: POST
        path: /records
        body: {ref: "{{ event.ref }}"}
        verify: {path: /records, query: {ref: "{{ event.ref }}"}, result: "[0]"}
  - name: baseline.create
    source: {kind: webhook, path: /baseline, mode: queue, idempotency_key: ref}
    steps:
      - {name: before, call: ledger, method: GET, path: /records, query: {ref: "{{ event.ref }}"}}
      - set: {seen: "{{ before | length }}"}
      - name: saved
        call: ledger
        method: POST
        path: /records
        body: {ref: "{{ event.ref }}"}
        verify: {path: /records, query: {ref: "{{ event.ref }}", after: "{{ seen }}"}, result: "[0]"}
  - name: stamped.create
    source: {kind: webhook, path: /stamped, mode: queue, idempotency_key: ref}
    steps:
      - set: {stamp: "{{ now() }}"}
      - name: saved
        call: ledger
        method: POST
        path: /records
        body: {ref: "{{ event.ref }}", at: "{{ stamp }}"}
        verify: {path: /records, query: {ref: "{{ event.ref }}", at: "{{ stamp }}"}, result: "[0]"}
  - name: then.busy
    source: {kind: webhook, path: /then-busy, mode: queue, idempotency_key: ref}
    steps:
      - {name: saved, call: ledger, method: POST, path: /records, body: {ref: "{{ event.ref }}"}}
      - {name: after, call: ledger, method: GET, path: /busy}
  - name: then.busy.sync
    source: {kind: webhook, path: /then-busy-sync, mode: sync, idempotency_key: ref, deadline: 5}
    steps:
      - {name: saved, call: ledger, method: POST, path: /records, body: {ref: "{{ event.ref }}"}}
      - {name: after, call: ledger, method: GET, path: /busy}
"""


def write_root(path: Path, lease: float = 3.0) -> Path:
    (path / "connectors").mkdir(parents=True)
    (path / "mappings" / "ledger").mkdir(parents=True)
    (path / "connectors" / "ledger.yaml").write_text(CONNECTOR)
    (path / "mappings" / "ledger" / "pipelines.yaml").write_text(PIPELINES)
    (path / "mesbridge.yaml").write_text(
        f"store: sqlite:///{path / 'state.db'}\nworkers: 4\nshutdown_grace: 2\n"
        f"delivery: {{max_attempts: 5, initial: 0.05, max: 0.2, lease: {lease}, deadline: 8, poll_interval: 0.05}}\n"
    )
    return path


@pytest.fixture
def ledger() -> Iterator[tuple[Ledger, str]]:
    erp = Ledger()
    with serve_in_thread(erp.app()) as base:
        yield erp, base


@contextlib.asynccontextmanager
async def serving(root: Path, base: str) -> AsyncIterator[ServiceHost]:
    host = ServiceHost(root, port=0, environ={"LEDGER_URL": base}, reload=False)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def cli(root: Path, *args: str) -> tuple[int, str]:
    """`mesbridge dlq ARGS --root ROOT`, as a person runs it beside the service (its own event loop)."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(dlq, [*args, "--root", str(root)], env={"LEDGER_URL": "http://unused"})
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


async def test_saved_then_500_is_one_record_and_an_uncertain_dead_letter(tmp_path: Path, ledger) -> None:
    erp, base = ledger
    erp.after_save = "error"
    root = write_root(tmp_path)
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        accepted = await client.post(f"{host.url}/plain", json={"ref": "R-1"})
        assert accepted.status_code == 202
        assert await until(_dead_count(host, 1))
        [dead] = await host.store.list_dead()
    assert len(erp.records) == 1  # saved once, never sent again
    assert dead.kind == "uncertain" and len(dead.attempts) == 1
    assert dead.error.startswith("outcome unknown after POST /records: ledger answered HTTP 500")

    code, output = await cli(root, "replay", dead.id)
    assert code == 1 and "not replayed" in output and "POST /records" in output and "--force" in output
    code, output = await cli(root, "list")
    assert code == 0 and "uncertain" in output
    code, output = await cli(root, "replay", dead.id, "--force")
    assert code == 0 and f"replayed {dead.id}" in output


@pytest.mark.parametrize(
    ("pipeline", "reads"),
    [("baseline.create", "`before`, the result of a call"), ("stamped.create", "now()")],
)
async def test_a_verify_that_reads_what_a_replay_reads_anew_does_not_protect_a_replay(
    tmp_path: Path, pipeline: str, reads: str
) -> None:
    """A lookup relative to a count read in the same run, or to the time, looks elsewhere in a replay
    (which reads them again): the replay of the uncertain dead letter needs --force."""
    root = write_root(tmp_path)
    store = open_store(f"sqlite:///{root / 'state.db'}")
    await store.migrate()
    await store.enqueue(pipeline, "B-1", {"event": {"ref": "B-1"}}, event_id="ev-b1")
    [job] = await store.claim("w")
    await store.dead_letter(job, "outcome unknown after POST /records", kind="uncertain")
    await store.close()
    code, output = await cli(root, "replay", "ev-b1")
    assert code == 1 and "--force" in output
    assert (
        f"POST /records (steps[{1 if pipeline == 'stamped.create' else 2}]), whose verify lookup reads {reads}"
        in (" ".join(output.split()))
    )
    code, output = await cli(root, "replay", "ev-b1", "--force")
    assert code == 0 and "replayed ev-b1" in output


async def test_a_run_that_fails_after_a_write_is_a_partial_dead_letter_never_run_again(
    tmp_path: Path, ledger
) -> None:
    """Saved, then a later read finds the ERP busy (transient): retrying the whole run would save the
    record a second time, so the event is not retried; its replay needs --force, as an uncertain one's."""
    erp, base = ledger
    root = write_root(tmp_path)
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        assert (await client.post(f"{host.url}/then-busy", json={"ref": "P-1"})).status_code == 202
        assert await until(_dead_count(host, 1))
        [dead] = await host.store.list_dead()
        assert [r["ref"] for r in erp.records] == ["P-1"]  # once: the transient failure did not rerun it
        assert dead.kind == "partial" and len(dead.attempts) == 1
        assert (
            "ledger answered HTTP 503" in dead.error and "after POST /records had been applied" in dead.error
        )
        again = await client.post(f"{host.url}/then-busy", json={"ref": "P-1"})  # the MES sends it again
    assert again.status_code == 409 and again.json()["eventId"] == dead.id
    assert again.json()["message"].startswith(f"event {dead.id} is in the dead letters (partial: ")
    assert [r["ref"] for r in erp.records] == ["P-1"]
    code, output = await cli(root, "replay", dead.id)
    assert code == 1 and "failed after a write of it had been applied" in output and "--force" in output
    code, output = await cli(root, "replay", dead.id, "--force")
    assert code == 0 and f"replayed {dead.id}" in output


async def test_a_sync_event_that_failed_after_a_write_keeps_its_answer(tmp_path: Path, ledger) -> None:
    """The same event sent again (the MES retrying a 502) gets the same answer; nothing is saved twice."""
    erp, base = ledger
    root = write_root(tmp_path)
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        first = await client.post(f"{host.url}/then-busy-sync", json={"ref": "Q-1"})
        again = await client.post(f"{host.url}/then-busy-sync", json={"ref": "Q-1"})
    assert first.status_code == again.status_code == 502
    assert first.json() == again.json()
    assert (
        "after POST /records had been applied: sending the event again would apply it twice"
        in (first.json()["message"])
    )
    assert [r["ref"] for r in erp.records] == ["Q-1"]


async def test_an_uncertain_write_with_verify_replays_by_looking_first(tmp_path: Path, ledger) -> None:
    erp, base = ledger
    root = write_root(tmp_path)
    erp.after_save = "error"
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        await client.post(f"{host.url}/verified", json={"ref": "V-1"})
        # the verify lookup runs before any repeat: it finds the record and the event is delivered
        assert await until(_queue_empty(host))
        assert await host.store.list_dead() == []
    assert [r["ref"] for r in erp.records] == ["V-1"]

    store = open_store(f"sqlite:///{root / 'state.db'}")
    await store.migrate()
    await store.enqueue("verified.create", "V-2", {"event": {"ref": "V-2"}}, event_id="ev-v2")
    [job] = await store.claim("w")
    await store.dead_letter(job, "outcome unknown after POST /records", kind="uncertain")
    await store.close()
    erp.records.append({"ref": "V-2"})  # the first attempt had been applied after all
    code, output = await cli(root, "replay", "ev-v2")
    assert code == 0 and "each write looks first" in output
    erp.after_save = "ok"
    async with serving(root, base) as host:
        assert await until(_queue_empty(host))
        assert await host.store.list_dead() == []
    assert [r["ref"] for r in erp.records] == ["V-1", "V-2"]  # replayed, found, not created again


async def test_the_lease_is_renewed_while_a_slow_call_runs(tmp_path: Path, ledger) -> None:
    erp, base = ledger
    erp.after_save, erp.delay = "slow", 2.0
    root = write_root(tmp_path, lease=0.6)  # a slow call lasts more than three leases
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        await client.post(f"{host.url}/plain", json={"ref": "S-1"})
        assert await until(_queue_empty(host), 15)
        assert await host.store.list_dead() == []
    assert [r["ref"] for r in erp.records] == ["S-1"]  # no other worker took it over mid-call


@pytest.mark.parametrize(
    ("pipeline", "records", "dead"),
    [("plain.create", 0, 1), ("verified.create", 1, 0), ("baseline.create", 1, 1)],
)
async def test_a_job_whose_worker_died_runs_cautiously(
    tmp_path: Path, ledger, pipeline: str, records: int, dead: int
) -> None:
    erp, base = ledger
    root = write_root(tmp_path)
    store = open_store(f"sqlite:///{root / 'state.db'}")
    await store.migrate()
    await store.enqueue(pipeline, "D-1", {"event": {"ref": "D-1"}}, event_id="ev-d1")
    await store.claim("a-worker-that-died", lease_seconds=0.2)  # and never finishes
    await store.close()
    if pipeline in ("verified.create", "baseline.create"):
        erp.records.append({"ref": "D-1"})  # the dead worker's write had reached the ERP
    # baseline.create's lookup counts records from a baseline this delivery reads again, after that
    # write: it cannot find it, so the write is not sent again either
    async with serving(root, base) as host:
        assert await until(_queue_empty(host))
        found = await host.store.list_dead()
    assert len(erp.records) == records and len(found) == dead
    if dead:
        assert found[0].kind == "uncertain"
        assert "an earlier delivery of this event stopped mid-run" in found[0].error
    if pipeline == "baseline.create":
        assert "has a verify lookup that reads `before`, the result of a call" in found[0].error


def _dead_count(host: ServiceHost, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        assert host.store is not None
        return len(await host.store.list_dead()) == count

    return check


def _queue_empty(host: ServiceHost) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        assert host.store is not None
        return await host.store.queue_depth() == {}

    return check


async def test_dlq_list_says_when_it_stops_at_its_limit(tmp_path: Path) -> None:
    root = write_root(tmp_path)

    async def fill() -> None:
        store = open_store(f"sqlite:///{root / 'state.db'}")
        await store.migrate()
        for n in range(3):
            await store.enqueue("plain.create", f"K{n}", {"event": {"ref": n}})
        for job in await store.claim("w", limit=3):
            await store.dead_letter(job, "refused", kind="business")
        await store.close()

    await fill()
    code, output = await cli(root, "list", "--limit", "2")
    assert code == 0 and "the oldest 2 of more than 2 dead letters (use --limit)" in output
    code, output = await cli(root, "list", "--limit", "2", "--json")
    assert len(json.loads(output.split("\n]")[0] + "\n]")) == 2 and "more than 2" in output
    for limit in ("0", "-1"):  # never "no dead letters" while there are some
        code, output = await cli(root, "list", "--limit", limit)
        assert code == 2 and f"Invalid value for '--limit': {limit} is not in the range x>=1" in output


async def test_an_uncertain_dead_letter_of_a_pipeline_not_in_the_config_is_not_replayed(
    tmp_path: Path,
) -> None:
    """Its writes cannot be checked (a --root other than the service's): it needs --force, not a replay
    that says each write looks first."""
    root = write_root(tmp_path)
    store = open_store(f"sqlite:///{root / 'state.db'}")
    await store.migrate()
    await store.enqueue("renamed.create", "K1", {"event": {"ref": 1}}, event_id="renamed.create:1")
    [job] = await store.claim("w")
    await store.dead_letter(job, "outcome unknown", kind="uncertain")
    await store.close()
    code, output = await cli(root, "replay", "renamed.create:1")
    assert code == 1 and "its pipeline renamed.create is not in the config" in output and "--force" in output
    code, output = await cli(root, "replay", "renamed.create:1", "--force")
    assert code == 0 and "replayed renamed.create:1" in output


async def test_a_delivery_cut_off_by_shutdown_before_any_write_is_delivered_after_restart(
    tmp_path: Path, ledger
) -> None:
    """SIGTERM past the grace period while the baseline read is in flight: nothing was written, so the
    event is queued again and delivered once after the restart, not left as an uncertain dead letter."""
    erp, base = ledger
    erp.find_delay = 4.0  # longer than shutdown_grace (2 s)
    root = write_root(tmp_path)
    async with serving(root, base) as host, httpx.AsyncClient() as client:
        assert (await client.post(f"{host.url}/baseline", json={"ref": "T-1"})).status_code == 202
        await asyncio.sleep(0.5)  # the delivery waits for the baseline read
    erp.find_delay = 0.0
    async with serving(root, base) as host:
        assert await until(_queue_empty(host), 10)
        assert host.store is not None
        assert await host.store.list_dead() == []
    assert [r["ref"] for r in erp.records] == ["T-1"]
