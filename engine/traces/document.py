"""A finished run made into its trace: plain JSON, every secret masked, every body capped in size.

The document is what the store keeps, `mesbridge traces show` renders and `traces export` turns into
a test case:

    id, pipeline, binding, version, source (webhook | queue | poll | replay), event_id, received,
    duration, outcome (ok | skipped | failed | uncertain), status, reply, error, attempt, then,
    event, steps: [{id, type, name, start, duration, status, error}],
    calls: [{step, connector, method, path, query, request, status, reply, latency, attempt,
             failure, error, login, end}]

Times are seconds (`start`, `end`: since the run began). A body larger than the cap is replaced by
`{"$truncated": <its size in bytes>, "head": <the start of its JSON>}`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.connectors.urls import split_call
from engine.errors import PipelineError
from engine.recorder import Recorder
from engine.redaction import Redactor

__all__ = ["OUTCOMES", "SOURCES", "TRUNCATED", "Finished", "build", "new_id", "outcome_of", "search_text"]

OUTCOMES = ("ok", "skipped", "failed", "uncertain")
SOURCES = ("webhook", "queue", "poll", "replay")
TRUNCATED = "$truncated"
_NAMES_ONLY = Redactor()
"""Masks entries named like secrets (`password`, `token`, ...) when no secret value is known."""


def new_id() -> str:
    """A trace id: 16 hex digits."""
    return secrets.token_hex(8)


def outcome_of(error: PipelineError | None, skipped: bool) -> str:
    """`ok`, `skipped`, `failed`, or `uncertain` (the external system may have applied a write)."""
    if error is None:
        return "skipped" if skipped else "ok"
    return "uncertain" if error.kind == "uncertain" else "failed"


@dataclass(slots=True)
class Finished:
    """A traced run as it ended, before it becomes a document (which happens off the event's path)."""

    id: str
    pipeline: str
    binding: str
    version: str
    source: str
    event_id: str
    received: datetime
    event: Any
    status: int
    reply: Any
    error: PipelineError | None
    skipped: bool
    duration: float
    recorder: Recorder
    attempt: int | None = None
    then: str | None = None
    """What the queue does next with a failed delivery: `retry` or `dead`."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return outcome_of(self.error, self.skipped)


def _capped(value: Any, limit: int) -> Any:
    """`value`, or a marker with its size and the start of its JSON when that is over `limit` bytes."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) * 4 <= limit:
        return value
    size = len(text.encode("utf-8", "replace"))
    if size <= limit:
        return value
    head = text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
    return {TRUNCATED: size, "head": head}


def _masker(redactors: Iterable[Redactor]) -> Callable[[Any], Any]:
    chosen = [redactor for redactor in redactors if redactor.secrets]

    def mask(value: Any) -> Any:
        for redactor in chosen:
            value = redactor.redact(value)
        return value

    return mask if chosen else _NAMES_ONLY.redact


def _seconds(value: float) -> float:
    return round(value, 6)


def _error(error: PipelineError | None, mask: Callable[[Any], Any]) -> dict[str, Any] | None:
    if error is None:
        return None
    found: dict[str, Any] = {"message": mask(error.message), "kind": error.kind}
    for name in ("connector", "http_status"):
        value = getattr(error, name, None)
        if value:
            found[name] = value
    return found


def _call(
    step: str | None, end: float, record: Any, mask: Callable[[Any], Any], limit: int
) -> dict[str, Any]:
    path, query = split_call(str(mask(record.raw_url)), record.base_url)
    call: dict[str, Any] = {
        "step": step,
        "connector": record.connector,
        "method": record.method,
        "path": path,
        "query": query,
        "request": _capped(mask(record.raw_request), limit),
        "status": record.status,
        "reply": _capped(mask(record.raw_reply), limit),
        "latency": _seconds(record.latency),
        "attempt": record.attempt,
        "end": _seconds(end),
    }
    if record.failure is not None:
        call["failure"] = record.failure
    if record.error:
        call["error"] = mask(record.error)
    if record.login:
        call["login"] = True
    return call


def build(finished: Finished, redactors: Iterable[Redactor], max_body_bytes: int) -> dict[str, Any]:
    """The trace document of a finished run, redacted by `redactors` and with bodies capped."""
    mask = _masker(redactors)
    recorder = finished.recorder
    steps = []
    for mark in recorder.steps:
        step: dict[str, Any] = {
            "id": mark.id,
            "type": mark.kind,
            "start": _seconds(mark.start),
            "duration": _seconds(mark.duration),
            "status": mark.status,
        }
        if mark.name:
            step["name"] = mark.name
        if mark.error is not None:
            step["error"] = mask(mark.error)
        steps.append(step)
    document: dict[str, Any] = {
        "id": finished.id,
        "pipeline": finished.pipeline,
        "binding": finished.binding,
        "version": finished.version,
        "source": finished.source,
        "event_id": finished.event_id,
        "received": finished.received.isoformat(),
        "duration": _seconds(finished.duration),
        "outcome": finished.outcome,
        "status": finished.status,
        "reply": _capped(mask(finished.reply), max_body_bytes),
        "error": _error(finished.error, mask),
        "event": _capped(mask(finished.event), max_body_bytes),
        "steps": steps,
        "calls": [_call(step, end, record, mask, max_body_bytes) for step, end, record in recorder.calls],
    }
    if finished.attempt is not None:
        document["attempt"] = finished.attempt
    if finished.then is not None:
        document["then"] = finished.then
    document.update(finished.extra)
    return document


def search_text(document: dict[str, Any]) -> str:
    """What free-text search looks in: the event, the event id, the reply and the error, lowercased."""
    parts = [
        document.get("event_id") or "",
        json.dumps(document.get("event"), ensure_ascii=False, default=str),
        json.dumps(document.get("reply"), ensure_ascii=False, default=str),
        (document.get("error") or {}).get("message", ""),
    ]
    return "\n".join(parts).lower()
