"""End-to-end fixtures: the four simulators and the engine's webhook service, over real HTTP.

`stack` starts fresh simulators (Next Plus, Priority, NextUp, NextX) on free loopback ports, points the
connectors at them through environment variables, and serves the repository's config root with the
engine's ASGI app under uvicorn. Tests drive the Next Plus Integration Builder against `stack.webhook()`
URLs and assert the simulators' state; `stack.poll(pipeline)` runs a poll pipeline once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.config.root import Project, load_project
from engine.pipeline.executor import Executor, Outcome
from engine.pipeline.sources.poll import later, read_changes
from engine.service.app import Service, create_app
from engine.service.generation import Generation, live_connectors
from sandbox import nextplus, nextup, nextx, priority
from sandbox.serve import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TOKEN = "e2e-webhook-token-0123456789"


@dataclass
class Stack:
    """Running simulators and engine, with their URLs and state."""

    urls: dict[str, str]
    simulators: dict[str, Any]
    environ: dict[str, str]
    project: Project
    engine_url: str
    cursors: dict[str, Any] = field(default_factory=dict)

    def webhook(self, route: str) -> str:
        """The URL an Integration Builder is configured with for `route`."""
        return f"{self.engine_url}{route}?token={WEBHOOK_TOKEN}"

    async def poll(self, pipeline: str) -> list[Outcome]:
        """Run one poll of `pipeline` from its stored cursor; deliver each record; advance the cursor."""
        entry = self.project.pipelines[pipeline]
        source = entry.pipeline.source
        connectors = live_connectors(self.project, self.environ)
        variables = self.project.variables.get(entry.binding, {})
        executor = Executor(entry.pipeline, connectors, variables)
        outcomes: list[Outcome] = []
        cursor = self.cursors.get(pipeline)
        try:
            async for polled in read_changes(source, connectors, cursor, variables):
                outcomes.append(await executor.run(polled.record))
                if polled.cursor is not None:
                    cursor = later(cursor, polled.cursor)
        finally:
            await connectors.aclose()
        self.cursors[pipeline] = cursor
        return outcomes


@pytest.fixture
def stack() -> Iterator[Stack]:
    apps = {
        "nextplus": nextplus.create_app(size=6, seed=1),
        "priority": priority.create_app(size=30, seed=1),
        "nextup": nextup.create_app(size=6, seed=1),
        "nextx": nextx.create_app(size=10, seed=1),
    }
    with contextlib.ExitStack() as servers:
        urls = {name: servers.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        environ = {
            "NEXTPLUS_URL": urls["nextplus"],
            "PRIORITY_URL": urls["priority"] + "/odata/Priority/tabula.ini/demo",
            "NEXTUP_URL": urls["nextup"],
            "NEXTX_URL": urls["nextx"],
            "MESBRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }
        project = load_project(ROOT, environ=environ)
        assert project.ok, [str(d) for d in project.diagnostics]
        service = Service(Generation(project, environ=environ), environ=environ)
        engine_url = servers.enter_context(serve_in_thread(create_app(service), lifespan="on"))
        yield Stack(
            urls=urls,
            simulators={name: app.state.simulator for name, app in apps.items()},
            environ=environ,
            project=project,
            engine_url=engine_url,
        )
