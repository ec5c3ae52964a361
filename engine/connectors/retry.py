"""Retrying transient failures: exponential backoff with full jitter, max attempts, a total deadline.

Transient means the call may succeed if repeated: connect errors, timeouts, and the configured
statuses (408, 429 and 5xx by default). `Retry-After` (seconds or an HTTP date) is honoured when it
fits in the deadline. Business errors are never retried. `sleep`, `clock` and `random` are injectable.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import DeadlineExceeded, TransientError

__all__ = ["BackoffConfig", "RetryConfig", "Retryable", "RetryPolicy", "parse_retry_after"]

T = TypeVar("T")

DEFAULT_STATUSES = [408, 429, 500, 502, 503, 504]


class BackoffConfig(BaseModel):
    """Exponential backoff between attempts."""

    model_config = ConfigDict(extra="forbid")

    initial: float = Field(0.2, ge=0, description="Delay before the second attempt, in seconds.")
    multiplier: float = Field(2.0, ge=1, description="Factor applied to the delay after each attempt.")
    max: float = Field(10.0, ge=0, description="Largest delay between two attempts, in seconds.")
    jitter: bool = Field(True, description="Full jitter: wait a random time between 0 and the delay.")


class RetryConfig(BaseModel):
    """When and how often a transient failure is retried."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, description="Attempts in all, the first included.")
    backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig.model_validate({}), description="Delays between attempts."
    )
    deadline: float = Field(60.0, gt=0, description="Total seconds over all attempts and waits.")
    statuses: list[int] = Field(
        default_factory=lambda: list(DEFAULT_STATUSES),
        description="HTTP statuses that are transient and retried.",
    )


class Retryable(Exception):
    """One attempt failed transiently; raised inside an attempt, handled by RetryPolicy."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body


def parse_retry_after(value: str | None, now: Callable[[], float] | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now or time.time)())


class RetryPolicy:
    """Runs an attempt function until it succeeds, fails for good, or the budget is spent."""

    def __init__(
        self,
        config: RetryConfig,
        *,
        connector: str = "",
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.connector = connector
        self.sleep = sleep
        self.clock = clock
        self.rng = rng

    def is_transient_status(self, status: int) -> bool:
        return status in self.config.statuses

    def backoff(self, attempt: int) -> float:
        """The delay after attempt number `attempt` (1-based), jittered when configured."""
        b = self.config.backoff
        delay = min(b.max, b.initial * b.multiplier ** (attempt - 1))
        return delay * self.rng() if b.jitter else delay

    async def run(self, attempt_fn: Callable[[int], Awaitable[T]], *, deadline: float | None = None) -> T:
        """Call `attempt_fn(attempt)` until it returns; a `Retryable` is retried within the budget.

        Raises TransientError once attempts run out, DeadlineExceeded when the next wait would pass
        the deadline; both carry `attempts` and the last error's message, status and body.
        """
        budget = self.config.deadline if deadline is None else min(deadline, self.config.deadline)
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_fn(attempt)
            except Retryable as exc:
                last = exc
            if attempt >= self.config.max_attempts:
                raise self._error(
                    TransientError, f"{last.message} (gave up after {attempt} attempts)", last, attempt
                )
            remaining = budget - (self.clock() - start)
            if last.retry_after is not None:
                delay = last.retry_after
                if delay > remaining:
                    raise self._error(
                        DeadlineExceeded,
                        f"{last.message}; Retry-After {delay:g} s passes the {budget:g} s deadline "
                        f"(after {attempt} attempts)",
                        last,
                        attempt,
                    )
            else:
                delay = self.backoff(attempt)
            if remaining <= 0 or delay >= remaining:
                raise self._error(
                    DeadlineExceeded,
                    f"{last.message} (deadline of {budget:g} s passed after {attempt} attempts)",
                    last,
                    attempt,
                )
            await self.sleep(delay)

    def _error(
        self, kind: type[TransientError], message: str, last: Retryable, attempts: int
    ) -> TransientError:
        error = kind(message, connector=self.connector, http_status=last.status, body=last.body)
        error.attempts = attempts  # type: ignore[attr-defined]
        error.last_error = last.message  # type: ignore[attr-defined]
        return error
