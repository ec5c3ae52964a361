"""The trace of a cautious delivery (a reclaimed one, a replayed uncertain dead letter) exports as a case
that runs as cautiously: its writes look first, and a write nothing protects is not sent.

The trace is recorded as the queue records it: the run's executor with a recorder, its connectors
answered by mocks, its document built with the options the delivery ran with.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.config.root import load_project
from engine.pipeline.executor import Executor
from engine.pipeline.models import MockResponse
from engine.recorder import Recorder
from engine.testing.mock import MockBackend
from engine.testing.offline import offline_connectors
from engine.testing.runner import run_all
from engine.traces.document import Finished, Masker, build
from engine.traces.export import as_case, dump_cases

CONNECTOR = "base_url: http://erp.example\nauth: {kind: none}\npagination: {kind: none}\n"
MAPPING = """\
pipelines:
  - name: erp.report
    source: {kind: webhook, path: /report, mode: queue}
    steps:
      - name: report
        call: erp
        method: POST
        path: /reports
        body: {wo: "{{ event.wo }}"}
        verify:
          path: /reports
          query: {wo: "{{ event.wo }}"}
          result: "[0]"
      - name: note
        call: erp
        method: POST
        path: /notes
        body: {wo: "{{ event.wo }}"}
    reply: {status: 200, body: {externalId: "{{ report.id }}"}}
"""
EVENT = {"wo": "WO-1"}
FOUND = [{"id": 41, "wo": "WO-1"}]
"""What the verify lookup reads: the report an earlier delivery saved."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "erp.yaml").write_text(CONNECTOR)
    (tmp_path / "mappings" / "erp").mkdir(parents=True)
    (tmp_path / "mappings" / "erp" / "report.yaml").write_text(MAPPING)
    return tmp_path


async def _trace(root: Path, responses: list[MockResponse], **options: bool) -> dict[str, Any]:
    """The trace document of one delivery of EVENT run with `options`."""
    project = load_project(root, environ={})
    entry = project.pipelines["erp.report"]
    backend = MockBackend(responses)
    connectors = offline_connectors(project, backend, environ={})
    recorder = Recorder()
    try:
        executor = Executor(entry.pipeline, connectors, {})
        outcome = await executor.run(EVENT, event_id="erp.report:ev-1", recorder=recorder, **options)
    finally:
        await connectors.aclose()
    finished = Finished(
        "0123456789abcdef01234567",
        "erp.report",
        "erp",
        project.version,
        "queue",
        "erp.report:ev-1",
        datetime(2030, 1, 1, tzinfo=UTC),
        EVENT,
        outcome.status,
        outcome.body,
        outcome.error,
        outcome.skipped,
        outcome.duration,
        recorder,
        attempt=2,
        then=None if outcome.error is None else "dead",
        now=outcome.now,
        **options,
    )
    return build(finished, Masker([]), 65536)


def _passes(root: Path, trace: dict[str, Any]) -> list[str]:
    """The failures of the case exported from `trace` into the root, run as `mesbridge test` runs it."""
    target = root / "mappings" / "erp" / "tests" / "recorded.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(dump_cases([as_case(trace).case], "recorded"))
    project = load_project(root, environ={})
    assert project.ok, project.diagnostics
    (result,) = asyncio.run(run_all(project))
    return result.failures


def test_a_replayed_uncertain_dead_letter_exports_as_a_case_that_looks_first(root: Path) -> None:
    lookup = MockResponse(connector="erp", method="GET", path="/reports", body=FOUND)
    note = MockResponse(connector="erp", method="POST", path="/notes", status=201, body={"id": 7})
    trace = asyncio.run(_trace(root, [lookup, note], verify_first=True))
    assert trace["verify_first"] is True and "refuse_unprotected" not in trace
    assert trace["status"] == 200 and trace["reply"] == {"externalId": 41}
    case = as_case(trace).case
    assert case["verify_first"] is True and "refuse_unprotected" not in case
    assert [(c["method"], c["path"]) for c in case["expect"]["calls"]] == [
        ("GET", "/reports"),
        ("POST", "/notes"),
    ]
    assert _passes(root, trace) == []


def test_a_reclaimed_delivery_exports_as_a_case_that_refuses_an_unprotected_write(root: Path) -> None:
    lookup = MockResponse(connector="erp", method="GET", path="/reports", body=FOUND)
    trace = asyncio.run(_trace(root, [lookup], verify_first=True, refuse_unprotected=True))
    assert trace["outcome"] == "uncertain" and trace["refuse_unprotected"] is True
    case = as_case(trace).case
    assert case["verify_first"] is True and case["refuse_unprotected"] is True
    assert _passes(root, trace) == []


def test_a_plain_delivery_records_and_exports_no_options(root: Path) -> None:
    created = MockResponse(connector="erp", method="POST", path="/reports", status=201, body={"id": 41})
    note = MockResponse(connector="erp", method="POST", path="/notes", status=201, body={"id": 7})
    trace = asyncio.run(_trace(root, [created, note]))
    assert "verify_first" not in trace and "refuse_unprotected" not in trace
    case = as_case(trace).case
    assert "verify_first" not in case and "refuse_unprotected" not in case
    assert _passes(root, trace) == []
