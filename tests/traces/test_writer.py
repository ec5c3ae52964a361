"""The trace writer process: what it stores is what the loop would have stored; it masks with the
secrets each batch brings, survives a bad trace, restarts after a crash and stops only when told."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.settings import Traces
from engine.connectors.connector import CallRecord
from engine.errors import BusinessError, StoreError
from engine.recorder import Recorder
from engine.redaction import Redactor
from engine.service.metrics import Metrics
from engine.service.tracer import Tracer
from engine.store import TraceQuery, open_store
from engine.traces.document import Finished, Masker, encode, pack, stored_rows
from engine.traces.writer import NICENESS, WriterProcess
from tests.store.conftest import BACKENDS, empty_store_url, pg_database  # noqa: F401 - any_url uses it

SECRET = "s3cr3t-token-value"

bodies = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from([SECRET, f"Bearer {SECRET}", "hunter22", "\ud800"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "token", "password", "note", "items", SECRET]), children, max_size=4
        )
    ),
    max_leaves=12,
)


def _finished(event: object, reply: object, request: object, *, error: bool = False) -> Finished:
    recorder = Recorder()
    mark = recorder.enter("steps[0]", "call", "report")
    recorder.call(
        CallRecord(
            "erp",
            "POST",
            "/reports",
            500 if error else 201,
            0.002,
            1,
            f"erp answered HTTP 500: {SECRET}" if error else None,
            "unapplied" if error else None,
            Redactor([SECRET]),
            f"http://erp/api/reports?key={SECRET}&n=1",
            request,
            reply,
            "http://erp/api",
        )
    )
    recorder.leave(mark, "failed" if error else "ok", f"refused {SECRET}" if error else None)
    return Finished(
        "0123456789abcdef01234567",
        "erp.report",
        "erp",
        "v1",
        "webhook",
        "erp.report:ev-1",
        datetime(2030, 1, 1, tzinfo=UTC),
        event,
        422 if error else 200,
        reply,
        BusinessError(f"no: {SECRET}", connector="erp") if error else None,
        False,
        0.01,
        recorder,
    )


@settings(max_examples=150, deadline=None)
@given(event=bodies, reply=bodies, request=bodies, error=st.booleans(), limit=st.sampled_from([64, 4096]))
def test_the_writer_stores_exactly_what_the_loop_would(
    event: object, reply: object, request: object, error: bool, limit: int
) -> None:
    finished = _finished(event, reply, request, error=error)
    _, expected = encode(finished, Masker([Redactor([SECRET])]), limit)
    [row], dropped = stored_rows(limit, [SECRET], [pack(finished)])
    assert dropped == 0
    assert json.loads(row.document) == json.loads(expected)  # the standard library reads big integers exactly
    assert SECRET not in row.document and SECRET not in row.search


def test_a_trace_that_cannot_be_read_is_dropped_and_counted_and_the_rest_are_written() -> None:
    good = pack(_finished({"wo": "WO-1"}, {"ok": True}, {"n": 1}))
    rows, dropped = stored_rows(4096, [], [b"{not json", good])
    assert dropped == 1 and [row.id for row in rows] == ["0123456789abcdef01234567"]


@pytest.fixture(name="url")
async def migrated_store_url(tmp_path: Path) -> str:
    """A migrated SQLite store's URL."""
    found = f"sqlite:///{tmp_path / 'traces.db'}"
    store = open_store(found)
    await store.migrate()
    await store.close()
    return found


async def _stored_ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [summary.id for summary in await store.list_traces(TraceQuery())]
    finally:
        await store.close()


def _child_pid(writer: WriterProcess) -> int:
    assert writer._child is not None
    return writer._child.pid


async def test_batches_reach_the_store_and_secrets_sent_with_them_are_masked(url: str) -> None:
    writer = WriterProcess(url)
    try:
        finished = _finished({"wo": "WO-7", "note": SECRET}, {"ok": True}, {"n": 1})
        assert await writer.write(4096, [SECRET], [pack(finished)]) == (1, 0)
        cmdline = Path(f"/proc/{_child_pid(writer)}/cmdline").read_bytes()
        assert url.encode() not in cmdline  # the store URL (a password, perhaps) is not in `ps`
    finally:
        await writer.close()
    store = open_store(url)
    try:
        [summary] = await store.list_traces(TraceQuery())
        stored = await store.get_trace(summary.id)
    finally:
        await store.close()
    assert stored is not None and stored["event"] == {"wo": "WO-7", "note": "***"}
    assert SECRET not in orjson.dumps(stored).decode()


async def test_a_crashed_writer_loses_only_the_batch_in_hand_and_starts_again(url: str) -> None:
    writer = WriterProcess(url)
    first, second = _runs(2)
    try:
        assert await writer.write(4096, [], [pack(first)]) == (1, 0)
        os.kill(_child_pid(writer), signal.SIGKILL)
        assert writer._child is not None
        await writer._child.wait()
        assert await writer.write(4096, [], [pack(second)]) == (1, 0)
    finally:
        await writer.close()
    assert sorted(await _stored_ids(url)) == sorted([first.id, second.id])


async def test_a_store_that_fails_is_a_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"  # no traces table: every insert fails
    writer = WriterProcess(url)
    try:
        for _ in range(2):  # answered by the child, which stays up for the next batch
            with pytest.raises(StoreError, match="traces"):
                await writer.write(4096, [], [pack(_finished({"wo": "WO-1"}, None, None))])
            assert writer._child is not None and writer._child.returncode is None
    finally:
        await writer.close()


async def test_ctrl_c_and_sigterm_to_the_process_group_leave_the_writer_to_the_service(url: str) -> None:
    writer = WriterProcess(url)
    first, again = _runs(2)
    try:
        assert await writer.write(4096, [], [pack(first)]) == (1, 0)
        pid = _child_pid(writer)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert writer._child is not None and writer._child.returncode is None
        assert await writer.write(4096, [], [pack(again)]) == (1, 0)
    finally:
        await writer.close()
    assert writer._child is None
    assert len(await _stored_ids(url)) == 2


@pytest.fixture(name="any_url", params=BACKENDS)
async def migrated_store_url_of_each_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated store's URL, SQLite and PostgreSQL."""
    found = empty_store_url(request, tmp_path)
    store = open_store(found)
    await store.migrate()
    await store.close()
    return found


async def test_the_writer_is_nicer_than_the_service_unless_its_transactions_hold_the_services_back(
    any_url: str,
) -> None:
    """Traces are a diagnosis: on a busy machine the events come first. On SQLite a write transaction
    holds every other writer back, so a writer slowed inside one would slow the events' writes too."""
    writer = WriterProcess(any_url)
    try:
        assert await writer.write(4096, [], [pack(_runs(1)[0])]) == (1, 0)
        child = os.getpriority(os.PRIO_PROCESS, _child_pid(writer))
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert child == (own if open_store(any_url).exclusive_writes else min(own + NICENESS, 19))
        assert open_store(any_url).exclusive_writes == any_url.startswith("sqlite")
    finally:
        await writer.close()


def _tracer(url: str, writer: WriterProcess | None) -> Tracer:
    return Tracer(open_store(url), Traces, lambda: [Redactor([SECRET])], Metrics(), writer)


def _written(tracer: Tracer, result: str) -> float:
    return tracer.metrics.traces.labels(result)._value.get()


def _runs(count: int) -> list[Finished]:
    return [
        dataclasses.replace(_finished({"wo": f"WO-{n}"}, {"ok": True}, {"n": n}), id=f"{n:024x}")
        for n in range(count)
    ]


async def test_a_writer_that_cannot_start_leaves_the_service_writing_its_traces(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = WriterProcess(url, command=("false",))
    tracer = _tracer(url, writer)
    try:
        for finished in _runs(3):
            tracer.finish(finished)
        assert await tracer.flush()
        assert writer.failures == 1 and "the service writes its traces itself" in caplog.text
        tracer.finish(_runs(4)[3])
        assert await tracer.flush()  # within the pause: written here, no second start
        assert writer.failures == 1
    finally:
        await tracer.stop()
        assert tracer.store is not None
        await tracer.store.close()
    assert len(await _stored_ids(url)) == 4 and _written(tracer, "written") == 4


async def test_a_writer_that_hangs_is_killed_and_the_batch_written_by_the_service(url: str) -> None:
    hangs = (sys.executable, "-c", "import sys, time; sys.stdin.buffer.readline(); time.sleep(60)")
    writer = WriterProcess(url, command=hangs, timeout=0.5)
    tracer = _tracer(url, writer)
    try:
        tracer.finish(_runs(1)[0])
        assert await tracer.flush()
        assert writer._child is None and writer.failures == 1
    finally:
        await tracer.stop()
        assert tracer.store is not None
        await tracer.store.close()
    assert len(await _stored_ids(url)) == 1


async def test_a_batch_interrupted_mid_write_is_kept_for_stop_and_later_answers_stay_paired(
    url: str, tmp_path: Path
) -> None:
    writer = WriterProcess(url)
    tracer = _tracer(url, writer)
    lock = sqlite3.connect(tmp_path / "traces.db", isolation_level=None)
    try:
        tracer.finish(_runs(1)[0])
        assert await tracer.flush()  # the child is up
        lock.execute("BEGIN EXCLUSIVE")  # the child's next insert waits for the database
        for finished in _runs(3)[1:]:
            tracer.finish(finished)
        flushing = asyncio.create_task(tracer.flush())
        await asyncio.sleep(0.5)
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing
        assert tracer.waiting == 2 and writer._child is None  # kept; the child that held it killed
        lock.execute("ROLLBACK")
        later = [pack(finished) for finished in _runs(6)[3:]]
        assert await writer.write(4096, [], later) == (3, 0)
        assert await writer.write(4096, [], later[:1]) == (1, 0)
    finally:
        lock.close()
        await tracer.stop()  # writes the two kept traces
        assert tracer.store is not None
        await tracer.store.close()
    assert len(await _stored_ids(url)) == 6


def test_paths_and_queries_are_masked_by_value_as_they_were_sent() -> None:
    encoded = "ab'c\\d-" + SECRET
    recorder = Recorder()
    recorder.call(
        CallRecord(
            "erp",
            "GET",
            "/reports",
            200,
            0.001,
            1,
            None,
            None,
            Redactor([encoded]),
            "http://erp/api/reports/ab%27c%5Cd-" + SECRET + "?q=ab%27c%5Cd-" + SECRET + "&page_token=c2",
            None,
            None,
            "http://erp/api",
        )
    )
    finished = dataclasses.replace(_finished(None, None, None), recorder=recorder)
    [row], _ = stored_rows(4096, [encoded], [pack(finished)])
    [call] = json.loads(row.document)["calls"]
    assert call["path"] == "/reports/***" and call["query"] == {"q": "***", "page_token": "c2"}
