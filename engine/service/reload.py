"""Hot reload: watch the config root, build and validate each edit beside the running config, swap.

A valid edit becomes a new generation swapped in atomically: requests in flight finish on the old one,
workers and pollers take the new executors for their next job. An edit is held to the rules of startup:
one with config errors, or that the startup check refuses (a webhook secret variable that is not set),
is logged and the old generation keeps serving. Results are counted as `applied`, `invalid`,
`unchanged` (same content hash) and `failed` (the new generation could not be built).

The watcher does not die: any failure in it is logged, and it watches again a second later, then
reloads once for what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchfiles import Change, awatch

from engine.config.root import load_project
from engine.errors import SchemaFileError, StartupError
from engine.service.generation import settle_heap

if TYPE_CHECKING:
    from engine.config.root import Project
    from engine.service.app import Service

log = logging.getLogger("mesbridge.reload")

__all__ = ["Reloader", "config_file_filter"]

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def config_file_filter(change: Change, path: str) -> bool:
    """Only config files count: YAML and JSON (schemas); never the SQLite store or editors' swap files."""
    name = Path(path).name
    return name.endswith(_CONFIG_SUFFIXES) and not name.startswith((".", "#", "~"))


AT_START = (
    "host",
    "port",
    "store",
    "workers",
    "delivery",
    "header_timeout",
    "log_level",
    "log_format",
    "reload",
)
"""The settings read once, at start (see docs/operations.md, Settings): a reload cannot change them."""


class Reloader:
    """Watches `root` and reloads the service on every change of a config file."""

    def __init__(
        self,
        service: Service,
        root: Path,
        *,
        environ: Mapping[str, str] | None = None,
        on_swap: Callable[[], Any] | None = None,
        check: Callable[[Project, Mapping[str, str]], None] | None = None,
        debounce_ms: int = 200,
    ) -> None:
        self.service = service
        self.root = root.resolve()
        """Absolute: watchfiles reports paths as it was given them."""
        self.environ = environ
        self.on_swap = on_swap
        self.check = check
        """The startup check (raises StartupError) each new config must also pass."""
        self.debounce_ms = debounce_ms
        self.started_with = service.settings
        """The settings the process started with: those of `AT_START` keep their values until a restart."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="config-reload")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        """Reload on each change of a config file until stopped. A failure here is logged and the
        watch starts again a second later; once it watches (its first tick), one reload catches up
        with what changed while it did not."""
        catch_up = False
        while not self._stop.is_set():
            try:
                async for changes in awatch(
                    self.root,
                    watch_filter=config_file_filter,
                    stop_event=self._stop,
                    debounce=self.debounce_ms,
                    step=50,
                    rust_timeout=1000,
                    yield_on_timeout=True,  # an empty tick each second: the watch is running
                    recursive=True,
                ):
                    if changes or catch_up:
                        catch_up = False
                        await self.changed(changes)
            except Exception:  # noqa: BLE001 - the watcher must outlive any failure
                log.exception("the config watcher failed; watching again in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                catch_up = True

    def _relative(self, path: str) -> str:
        absolute = Path(os.path.abspath(path))
        return absolute.relative_to(self.root).as_posix() if absolute.is_relative_to(self.root) else path

    async def changed(self, changes: set[tuple[Change, str]]) -> None:
        """Reload for `changes` (none after the watcher restarted, or on SIGHUP); never raises."""
        try:
            files = sorted({self._relative(path) for _, path in changes})
            if files:
                log.info("config changed: %s", ", ".join(files), extra={"files": files})
            await self.reload()
        except Exception:  # noqa: BLE001 - a failed reload must not stop the watcher
            log.exception("reload failed; the running config keeps serving")
            self.service.metrics.reloads.labels("failed").inc()

    async def reload(self) -> str:
        """Load, validate and swap; return the result (`applied`, `invalid`, `unchanged`, `failed`).

        The result, its duration (load, validation, build and swap) and when it ended are kept in
        `service.last_reload` for `/status` and the console.
        """
        async with self._lock:
            started = time.perf_counter()
            result = await self._reload(started)
            seconds = self._note(result, started)
            log.info("reload %s in %.3f s", result, seconds, extra={"result": result, "seconds": seconds})
            return result

    def _note(self, result: str, started: float, version: str | None = None) -> float:
        """Keep the reload's result in `service.last_reload`; its seconds so far."""
        seconds = round(time.perf_counter() - started, 4)
        self.service.last_reload = {
            "result": result,
            "seconds": seconds,
            "version": version or self.service.generation.version,
            "at": round(time.time(), 3),
        }
        return seconds

    async def _reload(self, started: float) -> str:
        metrics = self.service.metrics
        environ = dict(self.environ) if self.environ is not None else None
        project = await asyncio.to_thread(load_project, self.root, environ=environ)
        current = self.service.generation.version
        if not project.ok:
            errors = [str(d) for d in project.diagnostics if d.severity == "error"]
            log.error(
                "config version %s is invalid; still serving %s:\n%s",
                project.version,
                current,
                "\n".join(errors),
                extra={"errors": errors},
            )
            metrics.reloads.labels("invalid").inc()
            return "invalid"
        if self.check is not None:
            try:
                self.check(project, os.environ if self.environ is None else self.environ)
            except StartupError as exc:
                log.error(
                    "config version %s cannot be served: %s; still serving %s", project.version, exc, current
                )
                metrics.reloads.labels("invalid").inc()
                return "invalid"
        try:
            generation = self.service.build_generation(project)
        except (SchemaFileError, ValueError) as exc:
            log.error("config version %s cannot start: %s; still serving %s", project.version, exc, current)
            metrics.reloads.labels("failed").inc()
            return "failed"
        if generation.version == current:
            await generation.retire()
            metrics.reloads.labels("unchanged").inc()
            return "unchanged"
        pending = [  # said before the swap, which makes the new version visible
            name for name in AT_START if getattr(project.settings, name) != getattr(self.started_with, name)
        ]
        if pending:
            log.warning(
                "settings %s changed: they take effect at the next start; this process keeps those it "
                "started with",
                ", ".join(pending),
                extra={"settings": pending},
            )
        # noted as it is served: /status never shows the new version beside the previous reload
        self._note("applied", started, generation.version)
        await self.service.swap(generation)
        settle_heap()
        metrics.reloads.labels("applied").inc()
        metrics.set_version(generation.version)
        log.info(
            "now serving config version %s (was %s): %d pipeline(s)",
            generation.version,
            current,
            len(project.pipelines),
        )
        if self.on_swap is not None:
            result = self.on_swap()
            if asyncio.iscoroutine(result):
                await result
        return "applied"
