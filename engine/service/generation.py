"""A generation: one loaded config version with its connectors and executors, swapped as a whole.

Hot reload builds a new generation beside the running one and swaps the reference atomically; a request
keeps the generation it started with, and an old generation closes its connectors once its last
in-flight request has finished.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from engine.config.root import PipelineEntry, Project
from engine.connectors.group import Connectors
from engine.pipeline.executor import Executor
from engine.pipeline.payload import PayloadSchema
from engine.pipeline.sources.webhook import WebhookSource
from engine.redaction import environment_redactor

YOUNG_COLLECTION = 20_000
"""Allocations between collections of the young generation (Python's default: 700). An event allocates
hundreds of objects that reference counting frees at once; collecting every few events walked what the
events in flight and the traces waiting to be written hold, again and again, for cycles it rarely found."""


def settle_heap() -> None:
    """Collect what earlier generations left, then keep everything live now (the config, templates,
    the libraries) out of the collector's passes, which otherwise walk all of it again and again
    while events come in. Called once a generation is serving; the next call frees this one's leftovers.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, 10, 10)


def live_connectors(
    project: Project,
    environ: Mapping[str, str] | None = None,
    *,
    on_call: Callable[[Any], None] | None = None,
    transport: Any = None,
) -> Connectors:
    """The connectors that really call the external systems (`transport`: a test's, else the default)."""
    environ = os.environ if environ is None else environ
    return Connectors(
        project.connector_configs,
        environ=environ,
        transport=transport,
        redactor=environment_redactor(environ),
        on_call=on_call,
    )


class Generation:
    """The executors and routes of one config version."""

    def __init__(
        self,
        project: Project,
        *,
        environ: Mapping[str, str] | None = None,
        transport: Any = None,
        on_call: Callable[[Any], None] | None = None,
    ) -> None:
        self.project = project
        self.version = project.version
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        """What `${VAR}` in templates and vars read, as the connectors do."""
        self.connectors: Connectors = live_connectors(project, environ, on_call=on_call, transport=transport)
        self.executors: dict[str, Executor] = {
            name: Executor(
                entry.pipeline, self.connectors, project.variables.get(entry.binding, {}), environ=environ
            )
            for name, entry in project.pipelines.items()
        }
        self.schemas: dict[str, PayloadSchema] = project.payload_schemas
        self.routes: dict[str, PipelineEntry] = {
            entry.pipeline.source.path: entry
            for entry in project.pipelines.values()
            if isinstance(entry.pipeline.source, WebhookSource)
        }
        self._in_flight = 0
        self._retired = False
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def use(self) -> Any:
        """Hold the generation for the length of one request or job."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
                if self._retired:
                    await self.connectors.aclose()

    async def retire(self) -> None:
        """No new work; close the connectors once the work in flight is done."""
        self._retired = True
        if self._in_flight == 0:
            await self.connectors.aclose()

    async def drained(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False when the timeout passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
