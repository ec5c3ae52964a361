"""Replaying samples through two config roots and comparing what each did with them.

Both runs of a sample are offline and get the same mocked responses, the same clock (what `now()`
reads) and the same event id (what idempotency keys are made from), so that only the configs differ. A
call nothing mocks is answered `200 {}` on both sides, as in `mesbridge dry-run`. The connectors'
idempotency-key headers are not compared: they name the step that sends the call, not what it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.config.root import Project
from engine.errors import MesbridgeError
from engine.helpers import Clock
from engine.pipeline.executor import Outcome
from engine.pipeline.sources.poll import PollSource
from engine.testing.diff import Recorded, RunDiff, compare_runs
from engine.testing.runner import run_pipeline_offline, run_poll_offline
from engine.testing.samples import Sample

__all__ = ["DiffReport", "EventReport", "PipelineSummary", "compare_roots", "replay"]

FALLBACK_STATUS = 200

Status = Literal["same", "changed", "added", "removed"]


@dataclass
class EventReport:
    """One sample compared; `added` or `removed` when its pipeline is only in head or only in base
    (then it is not run)."""

    sample: Sample
    status: Status
    diff: RunDiff = field(default_factory=RunDiff)


@dataclass
class PipelineSummary:
    """How one pipeline's events fared; `edited` when its definition differs between the roots."""

    name: str
    status: Status
    events: int = 0
    changed: int = 0
    edited: bool = False


@dataclass
class DiffReport:
    """Every sample compared, and every pipeline of either root summarised."""

    events: list[EventReport]
    pipelines: list[PipelineSummary]

    @property
    def changed(self) -> bool:
        """True when an event behaves differently or a pipeline was added or removed."""
        return any(p.status != "same" for p in self.pipelines)

    @property
    def changed_events(self) -> list[EventReport]:
        return [event for event in self.events if event.status == "changed"]


async def replay(project: Project, sample: Sample, clock: Clock) -> Recorded:
    """Run one sample through one root offline; what it did, as plain data."""
    entry = project.pipelines[sample.pipeline]
    options: dict[str, Any] = {
        "fallback_status": FALLBACK_STATUS,
        "variables": sample.variables,
        "real_auth": sample.real_auth,
        "verify_first": sample.verify_first,
        "refuse_unprotected": sample.refuse_unprotected,
        "event_id": sample.event_id,
        "clock": clock,
    }
    try:
        if sample.poll and isinstance(entry.pipeline.source, PollSource):
            poll = await run_poll_offline(
                project, sample.pipeline, sample.cursor, sample.responses, **options
            )
            result: dict[str, Any] = {"records": [r.key for r in poll.records], "cursor": poll.cursor}
            if poll.error is not None:
                result["error"] = poll.error
            failed = {
                r.key: o.error.message for r, o in zip(poll.records, poll.outcomes, strict=True) if o.error
            }
            if failed:
                result["failed"] = failed
            return Recorded(poll.backend.calls, result)
        outcome, backend = await run_pipeline_offline(
            project, sample.pipeline, sample.event, sample.responses, **options
        )
    except MesbridgeError as exc:  # a failure outside the steps (a connector that cannot be built)
        return Recorded([], {"error": str(exc)})
    return Recorded(backend.calls, _result(outcome))


def _result(outcome: Outcome) -> dict[str, Any]:
    """The reply, and the error of a failed run; the default error reply (`{"message"}`) is the error."""
    if outcome.error is None:
        return {"reply": {"status": outcome.status, "body": outcome.body}}
    message = outcome.error.message
    if outcome.body == {"message": message}:
        return {"reply": {"status": outcome.status}, "error": message}
    return {"reply": {"status": outcome.status, "body": outcome.body}, "error": message}


def _volatile_headers(*projects: Project) -> set[str]:
    return {
        config.idempotency_key.header
        for project in projects
        for config in project.connector_configs.values()
        if config.idempotency_key is not None
    }


def _definition(project: Project, name: str) -> Any:
    return project.pipelines[name].pipeline.model_dump(mode="json", by_alias=True, exclude_unset=True)


async def compare_roots(base: Project, head: Project, samples: list[Sample], clock: Clock) -> DiffReport:
    """Every sample through both roots, compared; and which pipelines were added, removed or edited."""
    ignore = _volatile_headers(base, head)
    events: list[EventReport] = []
    for sample in samples:
        if sample.pipeline not in base.pipelines:
            events.append(EventReport(sample, "added"))
        elif sample.pipeline not in head.pipelines:
            events.append(EventReport(sample, "removed"))
        else:
            before = await replay(base, sample, clock)
            after = await replay(head, sample, clock)
            diff = compare_runs(before, after, ignore_headers=ignore)
            events.append(EventReport(sample, "changed" if diff.changed else "same", diff))
    pipelines: list[PipelineSummary] = []
    for name in sorted(base.pipelines.keys() | head.pipelines.keys()):
        own = [event for event in events if event.sample.pipeline == name]
        summary = PipelineSummary(name, "same", len(own), sum(e.status == "changed" for e in own))
        if name not in base.pipelines:
            summary.status = "added"
        elif name not in head.pipelines:
            summary.status = "removed"
        else:
            summary.edited = _definition(base, name) != _definition(head, name)
            summary.status = "changed" if summary.changed else "same"
        pipelines.append(summary)
    return DiffReport(events, pipelines)
