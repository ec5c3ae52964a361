"""When a failed attempt is tried again: its failure class, backoff with full jitter, a total deadline.

Every failed attempt is one of three classes:

* **not sent** — nothing reached the system (connection refused, DNS, TLS, a pool or connect timeout);
* **refused unapplied** — the system answered that it did nothing: 429 or 503 (honouring
  `Retry-After`), and the statuses in `unapplied`;
* **uncertain** — the system may have applied it: a reply that never came after sending (a read
  timeout, a reset), and the statuses in `uncertain` (500, 502, 504 by default).

Not sent and refused unapplied are retried within `max_attempts` and `deadline`. An uncertain attempt
is repeated only when the call is safe to repeat, which the connector decides (see
`engine.connectors.connector`). Any other status >= 400 is the system's answer: never retried.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AttemptFailed",
    "BackoffConfig",
    "FailureClass",
    "RetryConfig",
    "RetryPolicy",
    "parse_retry_after",
]

FailureClass = Literal["not_sent", "unapplied", "uncertain"]


class BackoffConfig(BaseModel):
    """Exponential backoff between attempts."""

    model_config = ConfigDict(extra="forbid")

    initial: float = Field(0.2, ge=0, description="Delay before the second attempt, in seconds.")
    multiplier: float = Field(2.0, ge=1, description="Factor applied to the delay after each attempt.")
    max: float = Field(10.0, ge=0, description="Largest delay between two attempts, in seconds.")
    jitter: bool = Field(True, description="Full jitter: wait a random time between 0 and the delay.")


class RetryConfig(BaseModel):
    """Which failed attempts are tried again, how often, and for how long."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, description="Attempts in all, the first included.")
    backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig.model_validate({}), description="Delays between attempts."
    )
    deadline: float = Field(60.0, gt=0, description="Total seconds over all attempts and waits.")
    unapplied: list[int] = Field(
        default_factory=lambda: [408, 429, 503],
        description="Statuses meaning the system refused and applied nothing: always retried.",
    )
    uncertain: list[int] = Field(
        default_factory=lambda: [500, 502, 504],
        description="Statuses after which the request may have been applied: retried only when the "
        "call is safe to repeat (idempotent method, `idempotent: true`, idempotency key, `verify`).",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> RetryConfig:
        both = sorted(set(self.unapplied) & set(self.uncertain))
        if both:
            raise ValueError(f"status {both[0]} is listed both as unapplied and as uncertain")
        for status in (*self.unapplied, *self.uncertain):
            if not 400 <= status <= 599:
                raise ValueError(f"retry statuses are HTTP errors (400-599), not {status}")
        return self


@dataclass
class AttemptFailed(Exception):
    """One failed attempt, classed; raised inside the request path and handled by its retry loop."""

    failure: FailureClass
    message: str
    status: int | None = None
    retry_after: float | None = None
    body: Any = None

    def __str__(self) -> str:
        return self.message


MAX_RETRY_AFTER = 86_400.0
"""The longest `Retry-After` honoured (a day); a longer one (`1e12`, a date in 3000) is cut to it."""


def parse_retry_after(value: str | None, now: Callable[[], float] | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta seconds or an HTTP date), at most
    `MAX_RETRY_AFTER`; None if unusable (`inf` and `nan` too)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (now or time.time)()
    return min(max(0.0, seconds), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


class RetryPolicy:
    """The retry rules of one connector: classes of statuses, and the wait before attempt n + 1."""

    def __init__(self, config: RetryConfig, rng: Callable[[], float]) -> None:
        self.config = config
        self.rng = rng
        self._unapplied = frozenset(config.unapplied)
        self._uncertain = frozenset(config.uncertain)

    def failure_of(self, status: int) -> FailureClass | None:
        """The failure class of a reply's status; None when the status is the system's answer."""
        if status in self._unapplied:
            return "unapplied"
        if status in self._uncertain:
            return "uncertain"
        return None

    def backoff(self, attempt: int) -> float:
        """The delay after attempt number `attempt` (1-based), jittered when configured."""
        b = self.config.backoff
        delay = min(b.max, b.initial * b.multiplier ** (attempt - 1))
        return delay * self.rng() if b.jitter else delay

    def wait(self, attempt: int, failure: AttemptFailed) -> float:
        """Seconds to wait before the next attempt: the system's Retry-After, else the backoff."""
        if failure.retry_after is not None:
            return failure.retry_after
        return self.backoff(attempt)
