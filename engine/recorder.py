"""What one run did, as it happens: its steps with their timings, and every connector attempt.

The executor opens a `Recorder` for a run it is asked to trace and makes it the current one; each
step marks itself, and each connector attempt (`CallRecord`) is handed to the current recorder with
the step that made it. Recording keeps references only: redaction, size caps and JSON are left to
whoever stores the trace (`engine.traces.document`), off the event's path.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

__all__ = ["Recorder", "StepMark", "active"]

active: ContextVar[Recorder | None] = ContextVar("mesbridge_recorder", default=None)
"""The recorder of the run in progress in this task, if it is traced."""


class StepMark:
    """One step of a run: where it sits, its type and name, when it started and how it ended."""

    __slots__ = ("id", "kind", "name", "start", "duration", "status", "error")

    def __init__(self, id: str, kind: str, name: str | None, start: float) -> None:
        self.id = id
        self.kind = kind
        self.name = name
        self.start = start
        self.duration = 0.0
        self.status = "ok"
        """`ok`, `skipped` (its `when` was false), `handled` (an `on_error` handler answered) or
        `failed`."""
        self.error: str | None = None


class Recorder:
    """The steps and calls of one run, in the order they happened."""

    __slots__ = ("started", "steps", "calls", "_step")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.steps: list[StepMark] = []
        self.calls: list[tuple[str | None, float, Any]] = []
        """(step id, seconds into the run when it ended, CallRecord) per attempt; logins included."""
        self._step: StepMark | None = None

    def skipped(self, id: str, kind: str, name: str | None) -> None:
        """A step whose `when` was false."""
        mark = StepMark(id, kind, name, time.perf_counter() - self.started)
        mark.status = "skipped"
        self.steps.append(mark)

    def enter(self, id: str, kind: str, name: str | None) -> tuple[StepMark, StepMark | None]:
        """A step starts; its calls are attributed to it until `leave`."""
        mark = StepMark(id, kind, name, time.perf_counter() - self.started)
        self.steps.append(mark)
        outer, self._step = self._step, mark
        return mark, outer

    def leave(self, entered: tuple[StepMark, StepMark | None], status: str, error: str | None) -> None:
        """The step entered ends with `status`."""
        mark, outer = entered
        mark.duration = time.perf_counter() - self.started - mark.start
        mark.status = status
        mark.error = error
        self._step = outer

    def call(self, record: Any) -> None:
        """A connector attempt made by the current step."""
        step = self._step
        self.calls.append((step.id if step is not None else None, time.perf_counter() - self.started, record))
