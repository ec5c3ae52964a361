"""What the service did lately, kept in memory for the operator console.

The metrics count; this keeps the latest of what they cannot hold: each pipeline's last error, each
connector's last few calls, and each poller's lease and last round. Nothing here is durable or shared
between replicas: each process tells what it saw itself. The durable state (queue, cursors, dead
letters, traces) stays in the store and is read from there.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Activity", "Call", "Failure", "PollRound"]

CALLS_KEPT = 5
"""Calls kept per connector."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A pipeline's latest error: when (epoch seconds), its message and kind, and the event if known."""

    at: float
    message: str
    kind: str
    event_id: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP attempt of a connector. `path` is as the connector sent it: redact it before showing."""

    at: float
    method: str
    path: str
    status: int | None
    latency: float
    attempt: int
    failure: str | None
    error: str | None
    redactor: Any
    """The connector's redactor, which knows the tokens it obtained."""


@dataclass(frozen=True, slots=True)
class PollRound:
    """A poller's round: when it ended, how many records were new or seen, how long, and its error."""

    at: float
    new: int
    seen: int
    seconds: float
    error: str | None = None


class Activity:
    """The latest errors, calls and poll rounds of one service process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.failures: dict[str, Failure] = {}
        self.calls: dict[str, collections.deque[Call]] = {}
        self.rounds: dict[str, PollRound] = {}
        self.leading: dict[str, bool] = {}
        """Per poll pipeline: True while this process holds its lease, False while another one does."""

    def failed(
        self,
        pipeline: str,
        message: str,
        kind: str,
        *,
        event_id: str | None = None,
        status: int | None = None,
    ) -> None:
        """A pipeline's event failed (or was refused, or its poll failed)."""
        self.failures[pipeline] = Failure(self.clock(), message, kind, event_id, status)

    def call(self, record: Any) -> None:
        """A connector's HTTP attempt (a `CallRecord`)."""
        kept = self.calls.get(record.connector)
        if kept is None:
            kept = self.calls[record.connector] = collections.deque(maxlen=CALLS_KEPT)
        kept.append(
            Call(
                self.clock(),
                record.method,
                record.path,
                record.status,
                record.latency,
                record.attempt,
                record.failure,
                record.error,
                record.redactor,
            )
        )

    def recent_calls(self, connector: str) -> list[Call]:
        """A connector's last calls, newest first."""
        return list(reversed(self.calls.get(connector, ())))

    def lease(self, pipeline: str, holds: bool) -> None:
        """Whether this process holds a poll pipeline's lease after its latest attempt to take it."""
        self.leading[pipeline] = holds

    def polled(self, pipeline: str, new: int, seen: int, seconds: float, error: str | None = None) -> None:
        """A poll round ended (with `error` when it failed and the cursor was kept)."""
        self.rounds[pipeline] = PollRound(self.clock(), new, seen, seconds, error)
