"""Runs YAML test cases: each case's event through its pipeline against mocked connectors."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from engine.config.root import Project, TestEntry
from engine.errors import PipelineError, RequestRejected
from engine.pipeline.executor import Executor, Outcome
from engine.pipeline.models import MockResponse, TestCase
from engine.testing.compare import differences, unified
from engine.testing.mock import MockBackend, RecordedCall
from engine.testing.offline import offline_connectors


@dataclass
class CaseResult:
    """The verdict on one test case."""

    entry: TestEntry
    failures: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    calls: list[RecordedCall] = field(default_factory=list)
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def title(self) -> str:
        return f"{self.entry.source.file}::{self.entry.case.name}"


async def run_pipeline_offline(
    project: Project,
    pipeline: str,
    event: Any,
    responses: list[MockResponse],
    *,
    fallback_status: int = 501,
    variables: dict[str, Any] | None = None,
) -> tuple[Outcome, MockBackend]:
    """One event through one pipeline with canned responses; nothing leaves the process.

    The event meets the webhook's payload schema first, as the service's door does: an invalid one is
    answered 422 naming each field, with no call.
    """
    backend = MockBackend(responses, fallback_status=fallback_status)
    schema = project.payload_schemas.get(pipeline)
    if schema is not None:
        try:
            event = schema.admit(event)
        except RequestRejected as rejection:
            error = PipelineError(rejection.message, rejection.status)
            return Outcome(rejection.status, {"message": rejection.message}, error=error), backend
    connectors = offline_connectors(project, backend)
    try:
        entry = project.pipelines[pipeline]
        merged = {**project.variables.get(entry.binding, {}), **(variables or {})}
        outcome = await Executor(entry.pipeline, connectors, merged).run(event)
    finally:
        await asyncio.gather(*(c.aclose() for c in connectors.values()))
    return outcome, backend


def load_event(entry: TestEntry) -> Any:
    """The case's event, inline or from its file."""
    case = entry.case
    if case.event_file is None:
        return case.event
    path = entry.source.path.parent / case.event_file
    return json.loads(path.read_text(encoding="utf-8"))


async def run_case(project: Project, entry: TestEntry) -> CaseResult:
    """Run one case and collect every way it departs from its expectations."""
    result = CaseResult(entry)
    started = time.perf_counter()
    case = entry.case
    try:
        event = load_event(entry)
    except (OSError, ValueError) as exc:
        result.failures.append(f"cannot read event_file {case.event_file}: {exc}")
        return result
    outcome, backend = await run_pipeline_offline(
        project, case.pipeline, event, case.responses, variables=case.vars
    )
    result.outcome, result.calls = outcome, backend.calls
    result.failures.extend(_check(case, outcome, backend))
    result.duration = time.perf_counter() - started
    return result


def _check(case: TestCase, outcome: Outcome, backend: MockBackend) -> list[str]:
    failures: list[str] = []
    expect = case.expect
    for call in backend.calls:
        if not call.matched:
            failures.append(
                f"unexpected call {call.connector} {call.method} {call.path} (no mocked response)"
            )
    if backend.pending:
        for response in backend.pending:
            failures.append(
                f"mocked response not used: {response.connector} {response.method} {response.path}"
            )
    if expect.error is not None:
        if outcome.error is None:
            failures.append(f"expected an error containing {expect.error!r}, but the pipeline succeeded")
        elif expect.error not in outcome.error.message:
            failures.append(f"expected an error containing {expect.error!r}, got {outcome.error.message!r}")
    elif expect.reply is None and outcome.error is not None:
        failures.append(f"pipeline failed: {outcome.error.message}")
    if expect.reply is not None:
        if expect.reply.status is not None and expect.reply.status != outcome.status:
            failures.append(f"reply status: expected {expect.reply.status}, got {outcome.status}")
        if "body" in expect.reply.model_fields_set:
            subset = expect.reply.match == "subset"
            diffs = differences(expect.reply.body, outcome.body, subset=subset)
            if diffs:
                failures.append("reply body differs:\n  " + "\n  ".join(diffs))
                if not subset:
                    failures.append(unified(expect.reply.body, outcome.body))
    if expect.calls is not None:
        failures.extend(_check_calls(expect, backend.calls))
    return failures


def _check_calls(expect: Any, calls: list[RecordedCall]) -> list[str]:
    failures: list[str] = []
    position = 0
    for number, wanted in enumerate(expect.calls, start=1):
        label = f"call #{number} ({wanted.connector} {wanted.method or '*'} {wanted.path or '*'})"
        match_at = None
        for index in range(position, len(calls)):
            call = calls[index]
            if call.connector != wanted.connector:
                continue
            if wanted.method is not None and call.method.upper() != wanted.method.upper():
                continue
            if wanted.path is not None and call.path != wanted.path:
                continue
            match_at = index
            break
        if match_at is None:
            made = "\n    ".join(f"{c.connector} {c.method} {c.path}" for c in calls) or "(none)"
            failures.append(f"{label}: not made. Calls made:\n    {made}")
            continue
        call = calls[match_at]
        position = match_at + 1
        subset = wanted.match == "subset"
        if wanted.query is not None:
            diffs = differences(wanted.query, call.query, subset=subset)
            if diffs:
                failures.append(f"{label} query differs:\n  " + "\n  ".join(diffs))
        if "body" in wanted.model_fields_set:
            diffs = differences(wanted.body, call.body, subset=subset)
            if diffs:
                failures.append(f"{label} body differs:\n  " + "\n  ".join(diffs))
                if not subset:
                    failures.append(unified(wanted.body, call.body))
    if expect.calls_exact and len(calls) != len(expect.calls):
        failures.append(f"expected exactly {len(expect.calls)} call(s), {len(calls)} made")
    return failures


async def run_all(project: Project, keyword: str | None = None) -> list[CaseResult]:
    """Run every case (whose name or pipeline contains `keyword`, if given), in file order."""
    selected = [
        entry
        for entry in project.tests
        if keyword is None or keyword in entry.case.name or keyword in entry.case.pipeline
    ]
    return [await run_case(project, entry) for entry in selected]
