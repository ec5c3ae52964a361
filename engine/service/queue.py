"""Queue workers: claim durable jobs, run their pipeline, then complete, retry or dead-letter them.

The store gives per-key ordering: a job is claimable only when no earlier job of its key is unfinished,
so a worker never waits for a key: it takes whatever is claimable. A transient failure (ERP down,
timeout, 429, 5xx, deadline) is retried with exponential backoff and jitter until `max_attempts`, then
dead-lettered; a business error (or any other failure) is dead-lettered at once with its message.

Delivery is at-least-once: a worker that dies mid-job leaves the job leased; when the lease expires
another worker claims it again. Mappings whose ERP write is not naturally idempotent should look the
record up first (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.config.settings import Delivery
from engine.errors import (
    LeaseLostError,
    PipelineError,
    StoreError,
)
from engine.service.logging import event_context
from engine.store import Job, Store

if TYPE_CHECKING:
    from engine.service.app import Service

log = logging.getLogger("mesbridge.queue")

__all__ = ["WorkerPool", "backoff_delay", "is_retryable"]


def is_retryable(error: PipelineError) -> bool:
    """Failures where nothing was applied are worth retrying; refusals and uncertain outcomes are not."""
    return error.retryable


_RETRY_AFTER = re.compile(r"Retry-After ([0-9.]+) s")


def retry_after(message: str) -> float | None:
    """The Retry-After the connector reported in its message (when it passed the call's deadline)."""
    found = _RETRY_AFTER.search(message)
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def backoff_delay(attempt: int, policy: Delivery, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, jittered over its upper half."""
    base = min(policy.max, policy.initial * policy.multiplier ** max(attempt - 1, 0))
    if not policy.jitter:
        return base
    return base / 2 + rng() * base / 2


class WorkerPool:
    """`settings.workers` tasks delivering queued events with the current generation's executors."""

    def __init__(self, service: Service, store: Store, count: int, policy: Delivery) -> None:
        self.service = service
        self.store = store
        self.count = count
        self.policy = policy
        self.replica = uuid.uuid4().hex[:8]
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: dict[str, asyncio.Task[Any]] = {}

    def start(self) -> None:
        """Start the workers."""
        for index in range(self.count):
            worker_id = f"{self.replica}-{index}"
            self._tasks.append(asyncio.create_task(self._loop(worker_id), name=f"worker-{worker_id}"))

    def wake(self) -> None:
        """A job was enqueued: idle workers claim now instead of at their next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    async def stop(self, grace: float) -> None:
        """Claim nothing more; let jobs in hand finish within `grace` seconds, then cancel them.

        A cancelled job stays leased in the store and is delivered again when its lease expires.
        """
        self._stopping = True
        self._wake.set()
        if self._busy:
            done, pending = await asyncio.wait(list(self._busy.values()), timeout=grace)
            for task in pending:
                task.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, worker_id: str) -> None:
        idle = 0.01
        while not self._stopping:
            try:
                jobs = await self.store.claim(worker_id, limit=1, lease_seconds=self.policy.lease)
            except StoreError as exc:
                log.error("cannot claim jobs: %s", exc)
                jobs = []
                idle = self.policy.poll_interval
            if not jobs:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), idle)
                except TimeoutError:
                    pass
                idle = min(self.policy.poll_interval, idle * 2)
                continue
            idle = 0.01
            self._wake.set()  # there may be more: let another idle worker look too
            job = jobs[0]
            task = asyncio.create_task(self.deliver(job))
            self._busy[worker_id] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    task.cancel()
                raise
            except Exception:  # noqa: BLE001 - a worker must survive anything one job does
                log.exception("delivery of %s crashed", job.event_id)
            finally:
                self._busy.pop(worker_id, None)

    async def deliver(self, job: Job) -> None:
        """Run one job and record its outcome in the store."""
        metrics = self.service.metrics
        with event_context(job.pipeline, job.event_id):
            generation = self.service.generation
            executor = generation.executors.get(job.pipeline)
            if executor is None:
                message = (
                    f"pipeline '{job.pipeline}' is not in the running config (version {generation.version})"
                )
                await self._dead(job, message)
                return
            source = executor.pipeline.source
            deadline = min(getattr(source, "deadline", None) or self.policy.deadline, self.policy.lease * 0.8)
            event = job.payload.get("event", job.payload)
            async with generation.use():
                outcome = await executor.run(event, deadline=deadline)
            if outcome.error is None:
                try:
                    await self.store.complete(job, {"status": outcome.status, "body": outcome.body})
                except LeaseLostError:
                    log.warning("lease of %s was lost; another worker delivers it", job.event_id)
                    return
                metrics.event(job.pipeline, "skipped" if outcome.skipped else "delivered", outcome.duration)
                log.info(
                    "delivered",
                    extra={
                        "status": outcome.status,
                        "attempt": job.attempts,
                        "seconds": round(outcome.duration, 4),
                    },
                )
                return
            error = outcome.error
            connector = getattr(error, "connector", None) or None
            if is_retryable(error) and job.attempts < self.policy.max_attempts:
                delay = max(backoff_delay(job.attempts, self.policy), retry_after(error.message) or 0.0)
                try:
                    await self.store.retry(job, error.message, delay)
                except LeaseLostError:
                    return
                metrics.retries.labels(job.pipeline).inc()
                metrics.event(job.pipeline, "retried", outcome.duration)
                log.warning(
                    "attempt %d failed, retrying in %.1f s: %s",
                    job.attempts,
                    delay,
                    error.message,
                    extra={"connector": connector, "kind": error.kind},
                )
                return
            reason = error.message
            if is_retryable(error):
                reason = f"{error.message} (gave up after {job.attempts} attempts)"
            await self._dead(job, reason, connector=connector, kind=error.kind)

    async def _dead(self, job: Job, message: str, **extra: Any) -> None:
        try:
            await self.store.dead_letter(job, message)
        except LeaseLostError:
            return
        self.service.metrics.dead_letters.labels(job.pipeline).inc()
        self.service.metrics.event(job.pipeline, "dead")
        log.error("moved to the dead letters: %s", message, extra=extra)
