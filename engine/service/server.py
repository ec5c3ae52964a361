"""The running service: store, generation, workers, pollers, reloader and the HTTP server, together.

In-process use (tests, `mesbridge demo`, benchmarks)::

    host = ServiceHost(root, environ=env, port=0, store_url="sqlite:///state.db")
    await host.start()              # serving at host.url; raises StartupError with a clear message
    ...
    await host.stop()               # drain: stop accepting, finish in-flight work, keep the queue

or `async with ServiceHost(...) as host:`. `await host.serve_forever()` runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from engine.config.report import format_text
from engine.config.root import Project, load_project
from engine.config.unset import unloadable_ca_files, unset_references
from engine.console import ConsoleSettings
from engine.env import FILE_PREFIX
from engine.errors import MissingVariableError, SchemaFileError, StartupError, StoreError
from engine.pipeline.sources.webhook import WebhookSource
from engine.redaction import environment_redactor
from engine.service.app import Service, check_console_paths, create_app
from engine.service.generation import Generation, settle_heap
from engine.service.logging import setup_logging
from engine.service.metrics import Metrics
from engine.service.poller import Pollers
from engine.service.protocol import protocol_class
from engine.service.queue import WorkerPool
from engine.service.reload import Reloader
from engine.store import Store, open_store, safe_url
from engine.traces.writer import WriterProcess

log = logging.getLogger("mesbridge.service")

__all__ = ["ServiceHost", "check_caller_secrets", "normal_root_path"]


def normal_root_path(value: str | None) -> str:
    """The path prefix a reverse proxy serves mesbridge under (`/mesbridge`), or "" for none; a value
    that is not an absolute URL path raises StartupError."""
    text = (value or "").strip()
    if text in ("", "/"):
        return ""
    if not text.startswith("/") or any(c in text for c in "?#\\ ") or "//" in text:
        raise StartupError(
            f"root path {text!r} is not a URL path prefix such as /mesbridge (the prefix the reverse "
            "proxy forwards under, and strips)"
        )
    return text.rstrip("/")


def check_caller_secrets(project: Project, environ: Mapping[str, str]) -> None:
    """Every webhook's caller secret must resolve now, not at the first request (start and reload); a
    webhook that authenticates no caller, and does not say so with `auth: {kind: none}`, is warned of."""
    auths: list[tuple[str, Any]] = [("settings webhook_auth", project.settings.webhook_auth)]
    open_paths = []
    for name, entry in project.pipelines.items():
        source = entry.pipeline.source
        if isinstance(source, WebhookSource):
            auths.append((f"pipeline {name}", source.auth or project.settings.webhook_auth))
            if auths[-1][1] is None:
                open_paths.append(source.path)
    if open_paths:
        log.warning(
            "no caller authentication on webhook %s: any caller is let in (set its `auth` or the "
            "settings' `webhook_auth`; `auth: {kind: none}` says it is meant, behind a trusted network)",
            ", ".join(sorted(open_paths)),
            extra={"paths": sorted(open_paths)},
        )
    for where, auth in auths:
        if auth is None:
            continue
        for field in auth.secrets():
            try:
                auth.resolved(field, environ, where)
            except MissingVariableError as exc:
                path = exc.name.removeprefix(FILE_PREFIX)
                fix = (
                    f"Put the secret webhook callers send in the file {path}"
                    if exc.name.startswith(FILE_PREFIX)
                    else f"Set {exc.name} to the secret webhook callers send (e.g. `export {exc.name}=...`)"
                )
                raise StartupError(f"{exc}. {fix}.") from None


def check_config_variables(project: Project, environ: Mapping[str, str]) -> None:
    """Every `${VAR}` the served config reads (the connectors its pipelines use, the vars of their
    bindings, their templates) must resolve now, not at the first call or event that needs it (start
    and reload); StartupError lists each one that does not, located."""
    unset = unset_references(project, environ)
    if unset:
        raise StartupError(
            "the config uses environment variables that are not set (or files that cannot be read):\n"
            + format_text(unset)
            + "\nSet them (or give a default: ${VAR:-value})."
        )


def check_ca_files(project: Project, environ: Mapping[str, str]) -> None:
    """Every `tls_ca_file` of the connectors the pipelines use must load now, not fail each call (start
    and reload); StartupError names each file that does not, and why."""
    unloadable = unloadable_ca_files(project, environ)
    if unloadable:
        raise StartupError(
            "a connector's tls_ca_file cannot be loaded:\n"
            + format_text(unloadable)
            + "\nPut a readable PEM file of the CA certificates there (or fix tls_ca_file)."
        )


def check_generation(project: Project, environ: Mapping[str, str]) -> None:
    """What a reload is held to beyond `check`, as the start is: every webhook secret and config
    variable resolves, every used tls_ca_file loads, and with the console on no webhook sits under it.
    StartupError says what does not hold."""
    check_caller_secrets(project, environ)
    check_config_variables(project, environ)
    check_ca_files(project, environ)
    if ConsoleSettings.from_environ(environ) is not None:
        paths = [
            entry.pipeline.source.path
            for entry in project.pipelines.values()
            if isinstance(entry.pipeline.source, WebhookSource)
        ]
        check_console_paths(paths)


def _loop_options() -> dict[str, str]:
    """uvloop and httptools when installed, else asyncio and h11 (the HTTP protocol by name)."""
    options = {"loop": "asyncio", "http": "h11"}
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        options["http"] = "httptools"
    except ImportError:
        pass
    return options


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host drains in order on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServiceHost:
    """Runs `mesbridge run` for one config root inside the current event loop."""

    def __init__(
        self,
        root: Path | str,
        *,
        host: str | None = None,
        port: int | None = None,
        store_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        transport: Any = None,
        reload: bool | None = None,
        configure_logging: bool = False,
        sock: socket.socket | None = None,
        root_path: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        """Absolute, resolved once: `mesbridge run .` and the watcher's paths agree whatever the cwd."""
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._host, self._port, self._store_url = host, port, store_url
        self.transport = transport
        self._reload = reload
        self.configure_logging = configure_logging
        self._sock = sock
        self._root_path = root_path
        """The prefix a reverse proxy strips (None: MESBRIDGE_ROOT_PATH, else none)."""
        self.service: Service | None = None
        self.store: Store | None = None
        self.workers: WorkerPool | None = None
        self.pollers: Pollers | None = None
        self.reloader: Reloader | None = None
        self.server: _Server | None = None
        self.url = ""
        self._serve_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stopping = False
        self._reloads: set[asyncio.Task[None]] = set()
        """Reloads SIGHUP started, held until they end."""

    async def __aenter__(self) -> ServiceHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load and check the config, open the store, start workers, pollers, reloader and HTTP."""
        project = await asyncio.to_thread(load_project, self.root, environ=dict(self.environ))
        if not project.ok:
            raise StartupError(f"{self.root} has config errors:\n" + format_text(project.diagnostics))
        settings = project.settings
        if self.configure_logging:  # first: the checks below may warn
            early = environment_redactor(self.environ)
            setup_logging(
                settings.log_level,
                settings.log_format,
                lambda: [early] if self.service is None else self.service.redactors(),
            )
        check_caller_secrets(project, self.environ)
        check_config_variables(project, self.environ)
        check_ca_files(project, self.environ)
        root_path = normal_root_path(
            self._root_path if self._root_path is not None else self.environ.get("MESBRIDGE_ROOT_PATH")
        )
        ConsoleSettings.from_environ(self.environ)  # a wrong console setting stops the start here
        host = self._host or settings.host
        port = settings.port if self._port is None else self._port
        store_url = self._store_url or settings.store
        metrics = Metrics()
        store = open_store(store_url)
        try:
            await store.migrate()
        except (StoreError, OSError) as exc:
            await store.close()
            raise StartupError(f"cannot open the store {safe_url(store_url)}: {exc}") from None
        self.store = store
        if not store.shared:
            log.warning(
                "the store %s is in memory: queued events, replies, cursors and dead letters are lost "
                "when this process stops (use sqlite:////path/to/file.db or postgresql://…)",
                safe_url(store_url),
            )

        def on_call(record: Any) -> None:  # the service's hook, as reloaded generations have it
            service.on_call(record)

        try:
            generation = Generation(project, environ=self.environ, transport=self.transport, on_call=on_call)
        except SchemaFileError as exc:
            await store.close()
            raise StartupError(str(exc)) from None
        service = Service(
            generation,
            environ=self.environ,
            store=store,
            metrics=metrics,
            transport=self.transport,
            trace_writer=WriterProcess(store_url) if store.shared else None,
        )
        self.service = service
        self.workers = WorkerPool(service, store, settings.workers, settings.delivery)
        service.wake_workers = self.workers.wake
        self.workers.start()
        service.tracer.start()
        self.pollers = Pollers(service, store)
        await self.pollers.sync()
        self.reloader = Reloader(
            service,
            self.root,
            environ=dict(self.environ),
            on_swap=self.pollers.sync,
            check=check_generation,
        )
        if self._reload if self._reload is not None else settings.reload:
            self.reloader.start()
        settle_heap()
        options = _loop_options()
        try:
            app = create_app(service)
        except StartupError:
            await self._shutdown_background(0)
            raise
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            root_path=root_path,
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=max(math.ceil(settings.shutdown_grace), 1),
            loop=options["loop"],
            http=protocol_class(options["http"], settings.header_timeout),
        )
        self.server = _Server(config)
        sock = self._sock
        if sock is None:
            # proto IPPROTO_TCP: the asyncio loop sets TCP_NODELAY only on accepted sockets of that
            # proto; with 0, keep-alive replies after the first wait ~40 ms (Nagle + delayed ACK).
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                await self._shutdown_background(0)
                raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            self._sock = sock
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        self._serve_task = asyncio.create_task(self.server.serve(sockets=[sock]), name="http")
        while not self.server.started:
            if self._serve_task.done():
                await self._shutdown_background(0)
                raise StartupError(f"the HTTP server did not start on {host}:{port}")
            await asyncio.sleep(0.01)
        log.info(
            "serving %s at %s: config version %s, %d pipeline(s), store %s, %d worker(s)",
            self.root,
            self.url,
            generation.version,
            len(project.pipelines),
            safe_url(store_url),
            settings.workers,
        )
        console = app.state.console
        if console is not None:
            log.info(
                "operator console at %s/console%s for %d user(s)%s",
                self.url,
                f" (its links under the proxy's prefix {root_path})" if root_path else "",
                len(console.users),
                ""
                if console.shared_secret
                else "; sessions end when this process stops "
                "(set MESBRIDGE_CONSOLE_SECRET to share them between replicas and restarts)",
            )

    async def stop(self) -> None:
        """Drain: not ready, stop accepting, answer in-flight requests, finish in-flight jobs, close."""
        if self.service is None:
            return
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        service = self.service
        grace = service.settings.shutdown_grace
        service.ready = False
        log.info("stopping: draining in-flight work (up to %.0f s); the queue is kept", grace)
        if self.reloader is not None:
            await self.reloader.stop()
        await asyncio.gather(*self._reloads)  # a SIGHUP's reload ends before what it swaps is stopped
        if self.pollers is not None:
            await self.pollers.stop()
        if self.server is not None and self._serve_task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._serve_task), grace + 1.0)
        await self._shutdown_background(grace)
        log.info("stopped")
        self._stopped.set()

    async def _shutdown_background(self, grace: float) -> None:
        if self.workers is not None:
            await self.workers.stop(grace)
        if self.pollers is not None:
            await self.pollers.stop()
        if self.reloader is not None:
            await self.reloader.stop()
        if self.service is not None:
            await self.service.tracer.stop()
            await self.service.generation.retire()
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._sock is not None:
            self._sock.close()

    def _hang_up(self) -> None:
        """SIGHUP: load the config root again now, as an edit of its files would (also with reload off)."""
        if self.reloader is None or self._stopping:
            return
        log.info("SIGHUP received: reloading the config")
        task = asyncio.create_task(self.reloader.changed(set()), name="sighup-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def serve_forever(self) -> None:
        """Start, run until SIGTERM or SIGINT, then drain and stop."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._hang_up)
        assert self._serve_task is not None
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, self._serve_task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        log.info("signal received" if stop.is_set() else "HTTP server ended")
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, _exit_now, signum)
        await self.stop()


def _exit_now(signum: int) -> None:
    """A second SIGTERM or SIGINT while draining: exit at once, as a killed process would. Nothing is
    lost: queued events are in the store, and jobs in flight return to the queue after their lease."""
    log.warning(
        "%s received while draining: exiting now without waiting for work in flight; its jobs return "
        "to the queue after their lease (delivery.lease)",
        signal.Signals(signum).name,
    )
    logging.shutdown()
    os._exit(128 + signum)
