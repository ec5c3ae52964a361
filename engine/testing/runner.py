"""Runs YAML test cases: each case's event through its pipeline against mocked connectors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.config.root import Project, TestEntry
from engine.errors import MesbridgeError, PipelineError, RequestRejected
from engine.helpers import Clock
from engine.pipeline.executor import Executor, Outcome
from engine.pipeline.models import MockResponse, TestCase
from engine.pipeline.sources.poll import PolledRecord, PollSource, later, read_changes
from engine.redaction import Redactor
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
    real_auth: bool = False,
    event_id: str | None = None,
    clock: Clock | None = None,
    verify_first: bool = False,
    refuse_unprotected: bool = False,
) -> tuple[Outcome, MockBackend]:
    """One event through one pipeline with canned responses; nothing leaves the process.

    The event meets the webhook's payload schema first, as the service's door does: an invalid one is
    answered 422 naming each field, with no call. `event_id` (the calls' idempotency keys) and
    `clock` (what `now()` reads) default to a fresh id and the system clock; `verify_first` and
    `refuse_unprotected` run it as a cautious delivery is run (see `Executor.run`).
    """
    backend = MockBackend(responses, fallback_status=fallback_status)
    schema = project.payload_schemas.get(pipeline)
    if schema is not None:
        try:
            event = schema.admit(event)
        except RequestRejected as rejection:
            error = PipelineError(rejection.message, rejection.status)
            return Outcome(rejection.status, {"message": rejection.message}, error=error), backend
    connectors = offline_connectors(project, backend, real_auth=real_auth)
    try:
        entry = project.pipelines[pipeline]
        merged = {**project.variables.get(entry.binding, {}), **(variables or {})}
        executor = Executor(entry.pipeline, connectors, merged, clock=clock)
        outcome = await executor.run(
            event, event_id=event_id, verify_first=verify_first, refuse_unprotected=refuse_unprotected
        )
    finally:
        await connectors.aclose()
    return outcome, backend


@dataclass
class PollResult:
    """One offline poll: the records delivered (each with its run), the cursor after, the calls."""

    records: list[PolledRecord]
    outcomes: list[Outcome]
    cursor: Any
    backend: MockBackend
    error: str | None = None


async def run_poll_offline(
    project: Project,
    pipeline: str,
    cursor: Any,
    responses: list[MockResponse],
    *,
    fallback_status: int = 501,
    variables: dict[str, Any] | None = None,
    real_auth: bool = False,
    event_id: str | None = None,
    clock: Clock | None = None,
    verify_first: bool = False,
    refuse_unprotected: bool = False,
) -> PollResult:
    """One round of a poll pipeline with canned pages: read from `cursor`, run each new record through
    the pipeline, and compute the cursor the service would store; nothing leaves the process.

    With `event_id`, a record's run has the id `<event_id>:<key>`; `clock` is what `now()` reads;
    `verify_first` and `refuse_unprotected` as for `run_pipeline_offline`."""
    backend = MockBackend(responses, fallback_status=fallback_status)
    entry = project.pipelines[pipeline]
    source = entry.pipeline.source
    assert isinstance(source, PollSource)
    merged = {**project.variables.get(entry.binding, {}), **(variables or {})}
    connectors = offline_connectors(project, backend, real_auth=real_auth)
    result = PollResult([], [], cursor, backend)
    try:
        executor = Executor(entry.pipeline, connectors, merged, clock=clock)
        async for polled in read_changes(source, connectors, cursor, merged, clock=clock):
            result.records.append(polled)
            if polled.cursor is not None:
                result.cursor = later(result.cursor, polled.cursor)
            record_id = None if event_id is None else f"{event_id}:{polled.key}"
            run = executor.run(
                polled.record,
                event_id=record_id,
                verify_first=verify_first,
                refuse_unprotected=refuse_unprotected,
            )
            result.outcomes.append(await run)
    except MesbridgeError as exc:
        result.error = str(exc)
    finally:
        await connectors.aclose()
    return result


async def run_case(project: Project, entry: TestEntry) -> CaseResult:
    """Run one case and collect every way it departs from its expectations."""
    result = CaseResult(entry)
    started = time.perf_counter()
    case = entry.case
    polls = isinstance(project.pipelines[case.pipeline].pipeline.source, PollSource)
    clock = _fixed_clock(case.now)
    if polls and case.event is None and case.event_file is None:  # a whole poll round, not one record
        poll = await run_poll_offline(
            project,
            case.pipeline,
            case.cursor,
            case.responses,
            variables=case.vars,
            real_auth=case.real_auth,
            clock=clock,
            verify_first=case.verify_first,
            refuse_unprotected=case.refuse_unprotected,
        )
        result.calls = poll.backend.calls
        result.failures.extend(_check_poll(case, poll))
        result.failures = poll.backend.redactor.redact(result.failures)
        result.duration = time.perf_counter() - started
        return result
    try:
        event = entry.event()
    except (OSError, ValueError) as exc:
        result.failures.append(f"cannot read event_file {case.event_file}: {exc}")
        return result
    outcome, backend = await run_pipeline_offline(
        project,
        case.pipeline,
        event,
        case.responses,
        variables=case.vars,
        real_auth=case.real_auth,
        clock=clock,
        verify_first=case.verify_first,
        refuse_unprotected=case.refuse_unprotected,
    )
    result.outcome, result.calls = outcome, backend.calls
    result.failures.extend(_check(case, outcome, backend))
    result.failures = backend.redactor.redact(result.failures)
    result.duration = time.perf_counter() - started
    return result


def _fixed_clock(moment: datetime | None) -> Clock | None:
    """The clock of a case that gives `now`: always that moment (a time without a zone is UTC)."""
    if moment is None:
        return None
    fixed = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return lambda: fixed


def _check_poll(case: TestCase, poll: PollResult) -> list[str]:
    """Failures of a poll case: records delivered, the cursor after, each record's run, the calls."""
    failures = _check_backend(poll.backend)
    expect = case.expect
    errors = [poll.error] if poll.error else []
    errors += [
        f"record {r.key}: {o.error.message}"
        for r, o in zip(poll.records, poll.outcomes, strict=True)
        if o.error
    ]
    if expect.error is not None:
        if not any(expect.error in error for error in errors):
            failures.append(f"expected an error containing {expect.error!r}, got {errors or 'none'}")
    else:
        failures.extend(f"poll failed: {error}" for error in errors)
    keys = [r.key for r in poll.records]
    if expect.records is not None and keys != expect.records:
        failures.append(f"records delivered: expected {expect.records}, got {keys}")
    if "cursor" in expect.model_fields_set:
        failures.extend(f"cursor after: {d}" for d in differences(expect.cursor, poll.cursor, subset=False))
    if expect.calls is not None:
        failures.extend(_check_calls(expect, poll.backend.calls, poll.backend.redactor))
    return failures


def _check_backend(backend: MockBackend) -> list[str]:
    failures: list[str] = []
    answered: set[tuple[str, str, str]] = set()
    for call in backend.calls:
        target = (call.connector, call.method, call.path)
        if call.matched:
            answered.add(target)
            continue
        why = (
            "no mocked response left: the one given answered an earlier attempt; a retried call "
            "needs one response per attempt"
            if target in answered
            else "no mocked response"
        )
        failures.append(f"unexpected call {call.connector} {call.method} {call.path} ({why})")
    for response in backend.pending:
        what = f"{response.connector} {response.method} {response.path}"
        failures.append(f"mocked response not used: {what}")
    return failures


def _check(case: TestCase, outcome: Outcome, backend: MockBackend) -> list[str]:
    failures = _check_backend(backend)
    expect = case.expect
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
        failures.extend(_check_calls(expect, backend.calls, backend.redactor))
    return failures


def _check_calls(expect: Any, calls: list[RecordedCall], redactor: Redactor) -> list[str]:
    """The calls against their expectations, as the run shows them: each secret the connectors know
    (secret-named variables, their defaults, obtained tokens) is `***`, so a case never holds one."""
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
            diffs = differences(wanted.query, redactor.redact(call.query), subset=subset)
            if diffs:
                failures.append(f"{label} query differs:\n  " + "\n  ".join(diffs))
        if "body" in wanted.model_fields_set:
            body = redactor.redact(call.body)
            diffs = differences(wanted.body, body, subset=subset)
            if diffs:
                failures.append(f"{label} body differs:\n  " + "\n  ".join(diffs))
                if not subset:
                    failures.append(unified(wanted.body, body))
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
