"""The service's traces: each finished run queued in memory, written to the store in batches, and
old ones pruned, all off the event's path.

A run costs the event its recording (`engine.recorder`) and one `pack` of what was recorded; a
background task hands the packed runs, many per transaction, to the trace writer process
(`engine.traces.writer`), which builds the documents (redaction, size caps, search text) and stores
them; without one (a store in memory), or while it is down, the task does that itself. Traces are a
diagnosis, not a delivery: when the buffer is full or the store fails, the oldest waiting traces are
dropped and counted (`mesbridge_traces_total{result="dropped"}`), and no event waits or fails for it.
Every replica prunes (by age, then count); the deletes are idempotent, so replicas need no leader.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.config.settings import Traces
from engine.errors import StoreError
from engine.recorder import Recorder
from engine.redaction import Redactor
from engine.store import Store
from engine.traces.document import Finished, new_id, pack, stored, stored_rows
from engine.traces.writer import WriterProcess, WriterUnavailable

if TYPE_CHECKING:
    from engine.pipeline.executor import Outcome
    from engine.service.metrics import Metrics

log = logging.getLogger("mesbridge.traces")

__all__ = ["Tracer", "stored"]

BATCH = 64
"""Most traces written in one transaction."""
FLUSH_INTERVAL = 0.05
"""Seconds a finished trace waits at most before it is written."""
PRUNE_INTERVAL = 60.0


class Tracer:
    """Records runs for the store when tracing is on (`settings().enabled` and the pipeline's `trace`)."""

    def __init__(
        self,
        store: Store | None,
        settings: Callable[[], Traces],
        redactors: Callable[[], list[Redactor]],
        metrics: Metrics,
        writer: WriterProcess | None = None,
    ) -> None:
        """`writer` masks, caps and stores the batches in a process of its own (else the loop does)."""
        self.store = store
        self.writer = writer
        self._writer_down = False
        self.settings = settings
        self.redactors = redactors
        self.metrics = metrics
        self._waiting: collections.deque[bytes | tuple[Any, ...]] = collections.deque()
        """Finished runs, packed: as JSON, they hold no references for the garbage collector to chase."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_prune: float | None = None

    def recorder(self, pipeline: Any) -> Recorder | None:
        """A recorder for one run of `pipeline`, or None when it is not traced."""
        if self.store is None or not pipeline.trace or not self.settings().enabled:
            return None
        return Recorder()

    def finish(self, finished: Finished) -> None:
        """A traced run ended: keep its raw document for the next write (never blocks, never raises)."""
        try:
            data = pack(finished)
        except Exception:  # noqa: BLE001 - an odd trace is dropped, never the event
            log.exception("cannot record the trace of %s", finished.event_id)
            self.metrics.traces.labels("dropped").inc()
            return
        waiting = self._waiting
        if len(waiting) >= self.settings().buffer:
            waiting.popleft()
            self.metrics.traces.labels("dropped").inc()
        waiting.append(data)
        if len(waiting) >= BATCH:
            self._wake.set()

    def record(
        self,
        recorder: Recorder,
        generation: Any,
        pipeline: str,
        source: str,
        event_id: str,
        received: datetime,
        event: Any,
        outcome: Outcome,
        *,
        attempt: int | None = None,
        then: str | None = None,
        verify_first: bool = False,
        refuse_unprotected: bool = False,
    ) -> None:
        """A traced run of `pipeline` in `generation` ended with `outcome`; `verify_first` and
        `refuse_unprotected` as the run was given them."""
        self.finish(
            Finished(
                new_id(),
                pipeline,
                generation.project.pipelines[pipeline].binding,
                generation.version,
                source,
                event_id,
                received,
                event,
                outcome.status,
                outcome.body,
                outcome.error,
                outcome.skipped,
                outcome.duration,
                recorder,
                attempt,
                then,
                outcome.now,
                verify_first,
                refuse_unprotected,
            )
        )

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        """Start writing and pruning in the background."""
        if self.store is not None and not self._tasks:
            self._tasks = [
                asyncio.create_task(self._write_loop(), name="traces-write"),
                asyncio.create_task(self._prune_loop(), name="traces-prune"),
            ]

    async def stop(self) -> None:
        """Write what is waiting, then stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while self._waiting:
            if not await self.flush():
                break
        if self.writer is not None:
            await self.writer.close()

    async def flush(self) -> bool:
        """Write one batch of waiting traces; False when the store failed (that batch is dropped)."""
        if self.store is None or not self._waiting:
            return True
        batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
        limit = self.settings().max_body_bytes
        secrets = sorted(set().union(*(redactor.secrets for redactor in self.redactors())))
        try:
            written, dropped = await self._write(limit, secrets, batch)
        except asyncio.CancelledError:  # stopping: `stop` writes it; stored twice, the id keeps one
            self._waiting.extendleft(reversed(batch))
            raise
        except StoreError as exc:
            return self._lost(len(batch), str(exc))
        except Exception:  # noqa: BLE001 - traces are a diagnosis: never stop writing them
            log.exception("cannot write %d trace(s)", len(batch))
            return self._lost(len(batch), None)
        self.metrics.traces.labels("written").inc(written)
        if dropped:
            self.metrics.traces.labels("dropped").inc(dropped)
        return True

    async def _write(self, limit: int, secrets: list[str], batch: list[Any]) -> tuple[int, int]:
        """Store a batch through the writer process, or here when there is none or it is down."""
        assert self.store is not None
        if self.writer is not None:
            try:
                found = await self.writer.write(limit, secrets, batch)
            except WriterUnavailable as exc:
                if not exc.pausing:
                    log.warning("%s; the service writes its traces itself until it is back", exc)
            else:
                if self._writer_down:
                    log.info("the trace writer process is back")
                self._writer_down = False
                return found
            self._writer_down = True
        rows, dropped = stored_rows(limit, secrets, batch)
        await self.store.add_traces(rows)
        return len(rows), dropped

    def _lost(self, count: int, reason: str | None) -> bool:
        if reason is not None:
            log.warning("cannot write %d trace(s): %s", count, reason)
        self.metrics.traces.labels("dropped").inc(count)
        return False

    async def prune(self) -> int:
        """Delete the traces retention no longer keeps; how many."""
        if self.store is None:
            return 0
        settings = self.settings()
        removed = await self.store.prune_traces(settings.keep_hours * 3600.0, settings.keep_count)
        self.last_prune = time.time()
        if removed:
            log.info("pruned %d trace(s)", removed)
        return removed

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
            self._wake.clear()
            while self._waiting:
                if not await self.flush() or len(self._waiting) < BATCH:
                    break  # a failing store is tried again at the next interval, not in a loop

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except StoreError as exc:
                log.warning("cannot prune traces: %s", exc)
            await asyncio.sleep(PRUNE_INTERVAL)
