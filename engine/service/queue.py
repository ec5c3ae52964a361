"""Queue workers: claim durable jobs, run their pipeline, then complete, retry or dead-letter them.

The store gives per-key ordering: a job is claimable only when no earlier job of its key is unfinished,
so a worker never waits for a key: it takes whatever is claimable. A failure where nothing was applied
(ERP unreachable, 429, 503, a deadline with nothing in flight) is retried with exponential backoff and
jitter until `max_attempts`, then dead-lettered; a refusal is dead-lettered at once with its message,
and so is an **uncertain** outcome (the ERP may have applied a write): it is never sent blindly again.

A worker renews its job's lease every third of `delivery.lease` while it runs, so the lease is short
and a dead replica's jobs return within seconds. A reclaimed job runs cautiously: writes with a
`verify` look before they send, and a write nothing protects is not sent (see docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.config.settings import Delivery
from engine.errors import LeaseLostError, PipelineError, StoreError, TransientError
from engine.service.logging import event_context
from engine.store import Job, Store

if TYPE_CHECKING:
    from engine.service.app import Service

log = logging.getLogger("mesbridge.queue")

__all__ = ["WorkerPool", "backoff_delay", "is_retryable"]


def is_retryable(error: PipelineError) -> bool:
    """Failures where nothing was applied are worth retrying; refusals and uncertain outcomes are not."""
    return error.retryable


def backoff_delay(attempt: int, policy: Delivery, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, jittered over its upper half."""
    base = min(policy.max, policy.initial * policy.multiplier ** max(attempt - 1, 0))
    if not policy.jitter:
        return base
    return base / 2 + rng() * base / 2


class _Lease:
    """A running job's lease: renewed every third of `lease` (a heartbeat), and stretched before a
    write so that it lasts at least as long as the write may be in flight. A replica that dies between
    calls gives its jobs back within `lease`; one that dies mid-write, once that write's budget (the
    delivery deadline, or the connector's retry deadline) has passed: the call can no longer be
    running then, and its worker's successor does not send a second one alongside it."""

    MARGIN = 1.0

    def __init__(self, store: Store, job: Job, lease: float) -> None:
        self.store = store
        self.job = job
        self.lease = lease
        self.until = time.monotonic() + lease
        self.covered = False
        """Whether a write that is not safe to repeat was about to be sent."""

    async def _renew(self, seconds: float) -> None:
        try:
            await self.store.renew(self.job, seconds)
        except LeaseLostError:
            log.error("the lease of %s was taken by another worker while this one ran it", self.job.event_id)
            raise
        self.until = max(self.until, time.monotonic() + seconds)

    async def keep(self) -> None:
        """Renew every third of the lease, never shortening a lease stretched for a write."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._renew(max(self.lease, self.until - time.monotonic()))
            except LeaseLostError:
                return
            except StoreError as exc:
                log.warning("cannot renew the lease of %s: %s", self.job.event_id, exc)

    async def cover(self, budget: float) -> None:
        """Before a write: the lease lasts at least `budget` seconds more (else the write is not sent)."""
        self.covered = True
        if time.monotonic() + budget + self.MARGIN > self.until:
            try:
                await self._renew(budget + self.MARGIN)
            except LeaseLostError:
                raise
            except StoreError as exc:
                raise TransientError(
                    f"the state store could not extend the lease ({exc}); nothing was sent"
                ) from exc


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

        A cancelled job that had sent no write unsafe to repeat is queued again at once; any other stays
        leased in the store and is delivered again, cautiously, when its lease expires.
        """
        self._stopping = True
        self._wake.set()
        if self._busy:
            done, pending = await asyncio.wait(list(self._busy.values()), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)  # let them give their jobs back
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, worker_id: str) -> None:
        idle = 0.01
        while not self._stopping:
            try:
                served = self.service.generation.executors.keys()  # another replica's are left to it
                jobs = await self.store.claim(
                    worker_id, limit=1, lease_seconds=self.policy.lease, pipelines=served
                )
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
        """Run one job, renewing its lease while it runs, and record its outcome in the store.

        A job whose earlier lease expired (its worker died, perhaps mid-call) runs with each write's
        verify lookup first, and a write that nothing protects is not sent again: that event goes to
        the dead letters as uncertain. A replayed uncertain dead letter runs its verify lookups first.
        """
        metrics = self.service.metrics
        with event_context(job.pipeline, job.event_id):
            generation = self.service.generation
            executor = generation.executors.get(job.pipeline)
            if executor is None:
                # claimed just before a reload took its pipeline away: left queued, as the events of a
                # pipeline this replica does not serve are, for a replica that serves it (or an operator)
                message = (
                    f"pipeline {job.pipeline} is not in config version {generation.version}, loaded after "
                    "this replica claimed it; queued again for a replica that serves it"
                )
                if await self._queue_again(job, message):
                    log.warning(message)
                return
            source = executor.pipeline.source
            deadline = getattr(source, "deadline", None) or self.policy.deadline
            event = job.payload.get("event", job.payload)
            lease = _Lease(self.store, job, self.policy.lease)
            heartbeat = asyncio.create_task(lease.keep(), name=f"lease-{job.event_id}")
            recorder = self.service.tracer.recorder(executor.pipeline)
            verify_first = job.reclaimed or bool(job.payload.get("verify_first"))
            try:
                async with generation.use():
                    outcome = await executor.run(
                        event,
                        deadline=deadline,
                        event_id=job.event_id,
                        verify_first=verify_first,
                        refuse_unprotected=job.reclaimed,
                        on_write=lease.cover,
                        recorder=recorder,
                    )
            except asyncio.CancelledError:
                if not lease.covered and not job.reclaimed:  # a plain redelivery is then safe
                    await self._give_back(job)
                raise
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            then = None
            if outcome.error is not None:
                # a run that applied a write not safe to repeat is not run again as a whole
                retry = (
                    is_retryable(outcome.error)
                    and not outcome.applied
                    and job.attempts < self.policy.max_attempts
                )
                then = "retry" if retry else "dead"
            if recorder is not None:
                origin = "replay" if job.payload.get("replayed") else source.kind
                self.service.tracer.record(
                    recorder,
                    generation,
                    job.pipeline,
                    "queue" if origin == "webhook" else origin,
                    job.event_id,
                    job.enqueued_at,
                    event,
                    outcome,
                    attempt=job.attempts,
                    then=then,
                    verify_first=verify_first,
                    refuse_unprotected=job.reclaimed,
                )
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
            if then == "retry":
                wait = getattr(error, "retry_after", None) or 0.0
                delay = max(backoff_delay(job.attempts, self.policy), wait)
                try:
                    await self.store.retry(job, error.message, delay)
                except LeaseLostError:
                    return
                metrics.retries.labels(job.pipeline).inc()
                metrics.event(job.pipeline, "retried", outcome.duration)
                self.service.activity.failed(
                    job.pipeline, error.message, error.kind, event_id=job.event_id, status=outcome.status
                )
                log.warning(
                    "attempt %d failed, retrying in %.1f s: %s",
                    job.attempts,
                    delay,
                    error.message,
                    extra={"connector": connector, "kind": error.kind},
                )
                return
            reason = error.message
            kind = error.kind
            if outcome.applied and kind != "uncertain":
                kind = "partial"  # replayed only as an uncertain one is: writes look first, or --force
            elif is_retryable(error):
                reason = f"{error.message} (dead letter after {job.attempts} deliveries)"
            await self._dead(job, reason, connector=connector, kind=kind)

    async def _give_back(self, job: Job) -> None:
        """Queue a job stopped by shutdown before any write unsafe to repeat again now, not as uncertain."""
        message = "stopped by shutdown before any write that is not safe to repeat; queued again"
        if await self._queue_again(job, message):
            log.info(message)

    async def _queue_again(self, job: Job, message: str) -> bool:
        """Put a job back in the queue at once, `message` its attempt's record; False (and a warning)
        when the store cannot: the job then returns after its lease."""
        try:
            await self.store.retry(job, message, 0.0)
        except (LeaseLostError, StoreError) as exc:
            log.warning("cannot queue %s again (%s); it returns after its lease", job.event_id, exc)
            return False
        return True

    async def _dead(self, job: Job, message: str, **extra: Any) -> None:
        try:
            await self.store.dead_letter(job, message, kind=str(extra.get("kind") or "error"))
        except LeaseLostError:
            return
        self.service.metrics.dead_letters.labels(job.pipeline).inc()
        self.service.metrics.event(job.pipeline, "dead")
        kind = str(extra.get("kind") or "error")
        self.service.activity.failed(job.pipeline, message, kind, event_id=job.event_id)
        log.error("moved to the dead letters: %s", message, extra=extra)
