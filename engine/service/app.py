"""The ASGI application: one route per webhook pipeline of the current generation, plus operations.

Routes are looked up in the current generation on every request, so a hot reload changes them without
rebuilding the application; a request keeps the generation it started with until it has answered.

A webhook request is refused with a 4xx naming the problem (size, content type, JSON, caller auth,
payload schema) before any pipeline runs. Then:

* `mode: sync` runs the pipeline under the source's deadline and answers its reply (>= 400 with
  `{"message"}` on failure, 504 past the deadline). With an `idempotency_key`, a repeated event gets the
  stored reply and causes no second ERP call; transient failures are not stored, so a retry by the
  caller runs again.
* `mode: queue` commits the event to the store, then answers 202 `{"accepted": true, "eventId"}`;
  workers deliver it. With an `idempotency_key`, a repeated event is accepted once.

A different event under an idempotency key that was used (its content differs) is refused with 422 in
both modes: neither run nor queued, and never answered as if it were the first.

Operations: `/healthz` (alive), `/readyz` (serving and not draining), `/status` (version, reloads,
pipelines, queue depth) and `/metrics` (Prometheus). The operator console (`engine.console`) is served
at `/console` when console users are configured; otherwise `/console` is an unknown path like any other.

Behind a reverse proxy that strips a path prefix, the ASGI `root_path` (`mesbridge run --root-path`)
is that prefix: routes are matched without it, and the console's links include it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from engine import wirejson
from engine.config.root import PipelineEntry, Project
from engine.console import PREFIX as CONSOLE_PREFIX
from engine.console import ConsoleSettings, console_routes
from engine.errors import EventConflict, MissingVariableError, RequestRejected, StartupError, StoreError
from engine.pipeline.executor import Outcome, new_event_id
from engine.pipeline.sources import fingerprint
from engine.pipeline.sources.webhook import WebhookSource
from engine.redaction import Redactor, environment_redactor
from engine.service.activity import Activity
from engine.service.dead_letters import Replay, replay_dead
from engine.service.generation import Generation
from engine.service.inbound import JsonLimits, authenticate, check_content_type, parse_json, read_body
from engine.service.logging import event_context
from engine.service.metrics import CONTENT_TYPE_LATEST, Metrics
from engine.service.tracer import Tracer
from engine.store import Store
from engine.traces.writer import WriterProcess

log = logging.getLogger("mesbridge.service")

__all__ = ["Service", "create_app", "handle_webhook"]


class Service:
    """What the application serves: the current generation, the store, metrics and the settings."""

    def __init__(
        self,
        generation: Generation,
        *,
        environ: Mapping[str, str] | None = None,
        store: Store | None = None,
        metrics: Metrics | None = None,
        transport: Any = None,
        trace_writer: WriterProcess | None = None,
    ) -> None:
        """`trace_writer` stores the traces from a process of its own (else the event loop does)."""
        self.generation = generation
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.store = store
        self.metrics = metrics or Metrics()
        self.transport = transport
        self.ready = True
        self.redactor = environment_redactor(self.environ)
        self.wake_workers: Callable[[], None] = lambda: None
        self.last_reload: dict[str, Any] | None = None
        """The latest hot reload: result, seconds (load, validate, build, swap), version served and
        when it ended (`at`, epoch seconds)."""
        self.started_at = time.time()
        self.activity = Activity()
        """The latest errors, calls and poll rounds, for the operator console."""
        self.metrics.set_version(generation.version)
        self.tracer = Tracer(store, lambda: self.settings.traces, self.redactors, self.metrics, trace_writer)

    @property
    def settings(self) -> Any:
        return self.generation.project.settings

    def build_generation(self, project: Project) -> Generation:
        """A generation of `project` wired to this service's metrics (raises on a bad schema file)."""
        return Generation(project, environ=self.environ, transport=self.transport, on_call=self.on_call)

    def on_call(self, record: Any) -> None:
        """Every HTTP attempt of a connector: metrics, the recent calls, and a debug log line."""
        self.metrics.on_call(record)
        self.activity.call(record)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.3f s",
                record.method,
                record.url,
                record.status,
                record.latency,
                extra={"connector": record.connector, "attempt": record.attempt, "error": record.error},
            )

    def redactors(self) -> list[Redactor]:
        """The redactors logs pass through: the environment's and the current connectors'."""
        return [self.redactor, self.generation.connectors.redactor]

    async def replay_dead(self, event_id: str, *, force: bool = False) -> Replay:
        """Replay a dead letter as `mesbridge dlq replay` does, checked against the config served now;
        the workers are woken to deliver it."""
        if self.store is None:
            raise StoreError("this server has no state store")
        result = await replay_dead(self.store, self.generation.project, event_id, force=force)
        if result.replayed:
            self.wake_workers()
        return result

    async def swap(self, generation: Generation) -> Generation:
        """Serve `generation` from now on; the old one retires when its in-flight work is done."""
        old, self.generation = self.generation, generation
        await old.retire()
        return old

    def redact(self, value: Any) -> Any:
        """`value` with every secret the service's redactors know masked."""
        for redactor in self.redactors():
            value = redactor.redact(value)
        return value

    def _last_poll(self, pipeline: str) -> dict[str, Any] | None:
        """This process's latest round of a poll pipeline (None before its first): a failed one with
        its error, for the operator who watches /status rather than the log."""
        latest = self.activity.rounds.get(pipeline)
        if latest is None:
            return None
        return {
            "at": round(latest.at, 3),
            "new": latest.new,
            "seen": latest.seen,
            "seconds": round(latest.seconds, 3),
            "error": self.redact(latest.error),
        }

    async def status(self) -> dict[str, Any]:
        """Version, reloads (counts and the latest), pipelines and queue depth."""
        generation = self.generation
        depth: dict[str, int] | None = None
        if self.store is not None:
            try:
                depth = await self.store.queue_depth()
                self.metrics.set_depth(depth)
            except StoreError as exc:
                log.error("cannot read the queue depth: %s", exc)
        pipelines = []
        for name, entry in generation.project.pipelines.items():
            source = entry.pipeline.source
            item: dict[str, Any] = {"name": name, "binding": entry.binding, "source": source.kind}
            if isinstance(source, WebhookSource):
                item.update(path=source.path, mode=source.mode)
            else:
                item.update(connector=source.connector, last_poll=self._last_poll(name))
            if depth is not None:
                item["queued"] = depth.get(name, 0)
            pipelines.append(item)
        return {
            "version": generation.version,
            "ready": self.ready,
            "reloads": self.metrics.reload_counts(),
            "last_reload": self.last_reload,
            "pipelines": pipelines,
            "queue_depth": sum(depth.values()) if depth is not None else None,
            # events waiting for a replica that serves their pipeline (another config version)
            "not_served": {n: c for n, c in (depth or {}).items() if n not in generation.project.pipelines},
        }


class JsonReply(Response):
    """A JSON reply that always encodes: a lone surrogate in what it quotes is written as its JSON
    escape (`\\ud800`), never an encoding error; a number JSON cannot carry (NaN, Infinity), which only
    an external system's data can hold here, makes the reply a 502 saying so."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return wirejson.dumps(content)
        except UnicodeEncodeError:  # a lone surrogate is written as its escape (a NaN raised before)
            text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
            return text.encode("utf-8", "backslashreplace")
        except ValueError:
            log.error("a reply holds a non-finite number; answered 502 instead: %r", content)
            self.status_code = 502
            return json.dumps({"message": _NON_FINITE}).encode("utf-8")


_NON_FINITE = "the reply holds a number JSON cannot carry (NaN or Infinity); see the mesbridge log"


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> JsonReply:
    return JsonReply(body, status_code=status, headers=headers)


def _key_value(expression: Any, event: Any, variables: Mapping[str, Any]) -> str | None:
    """An idempotency or order key: JMESPath over `{event, vars}`, else over the event itself."""
    if expression is None:
        return None
    value = expression.search({"event": event, "vars": variables})
    if value is None:
        value = expression.search(event)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else hashlib.sha256(text.encode()).hexdigest()


class _Unstored(Exception):
    """A transient failure: answered to the caller, not kept as the idempotent reply."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.body)
        self.outcome = outcome


def _path(request: Request) -> str:
    """The path routes are matched on: `request.url.path` without building the whole URL (the same text
    unless `?#\\` need escaping), less the ASGI `root_path` a proxy's prefix is served under."""
    scope = request.scope
    path: str = scope["path"]
    if "?" in path or "#" in path or "\\" in path:
        path = request.url.path
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        path = path[len(root) :] or "/"
    return path


async def handle_webhook(service: Service, request: Request) -> Response:
    """Run (or queue) the webhook pipeline routed at the request's path, per the reply contract."""
    generation = service.generation
    path = _path(request)
    entry = generation.routes.get(path) or generation.routes.get(path.rstrip("/"))
    if entry is None:
        return _json(404, {"message": f"no pipeline at {path}"})
    name = entry.pipeline.name
    if request.method != "POST":
        return _json(405, {"message": "webhooks accept POST only"}, {"Allow": "POST"})
    source = entry.pipeline.source
    assert isinstance(source, WebhookSource)
    settings = generation.project.settings
    with event_context(name):
        try:
            body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
            authenticate(source.auth or settings.webhook_auth, request, body, service.environ)
            check_content_type(request.headers.get("content-type"))
            event = parse_json(body, JsonLimits.of(settings))
            schema = generation.schemas.get(name)
            if schema is not None:
                event = schema.admit(event)
        except RequestRejected as rejection:
            return _refused(service, name, rejection)
        except ClientDisconnect:
            log.info("client disconnected before sending the whole body")
            return Response(status_code=400)  # never sent: the connection is gone
        except MissingVariableError as exc:
            log.error("webhook %s misconfigured: %s", path, exc)
            return _json(500, {"message": "webhook authentication is not configured on the server"})
        variables = generation.project.variables.get(entry.binding, {})
        if source.mode == "queue":
            return await _enqueue(service, entry, event, variables)
        return await _run_sync(service, generation, entry, event, variables)


def _refused(service: Service, name: str, rejection: RequestRejected) -> JsonReply:
    """The caller's request refused before the pipeline ran: counted, noted and answered."""
    service.metrics.event(name, "rejected")
    service.activity.failed(name, rejection.message, "rejected", status=rejection.status)
    log.info("refused: %s", rejection.message, extra={"status": rejection.status})
    return _json(rejection.status, {"message": rejection.message}, rejection.headers)


def _conflict(service: Service, entry: PipelineEntry, idem: str, undone: str) -> JsonReply:
    """422 for an event whose idempotency key a different event had: it is neither run nor queued,
    and never answered as if it had been (that would lose it without a word)."""
    source = entry.pipeline.source
    assert isinstance(source, WebhookSource) and source.idempotency_key is not None
    message = (
        f'a different event had the idempotency key "{idem}" already; this event was not {undone}. '
        f"Each event needs a key of its own (idempotency_key: {source.idempotency_key.source})"
    )
    return _refused(service, entry.pipeline.name, RequestRejected(422, message))


async def _enqueue(
    service: Service, entry: PipelineEntry, event: Any, variables: Mapping[str, Any]
) -> Response:
    name = entry.pipeline.name
    source = entry.pipeline.source
    assert isinstance(source, WebhookSource)
    if service.store is None:
        return _json(503, {"message": "the queue is not available on this server"})
    idem = _key_value(source.idempotency_key, event, variables)
    event_id = f"{name}:{idem}" if idem is not None else new_event_id()
    key = _key_value(source.order_key, event, variables) or idem or event_id
    payload: dict[str, Any] = {"event": event}
    try:
        if idem is not None:
            payload["fingerprint"] = digest = fingerprint(event)
            dead = await service.store.get_dead(event_id)
            if dead is not None:  # accepting it again would queue nothing: say where it is
                if dead.payload.get("fingerprint", digest) != digest:
                    return _conflict(service, entry, idem, "queued")
                message = (
                    f"event {event_id} is in the dead letters ({dead.kind}: {dead.error}); it is not "
                    "queued again: replay it with `mesbridge dlq replay` or the console"
                )
                return _json(409, {"message": message, "eventId": event_id})
        added = await service.store.enqueue_new(name, key, payload, event_id=event_id)
    except EventConflict:
        assert idem is not None
        return _conflict(service, entry, idem, "queued")
    except StoreError as exc:
        log.error("cannot queue the event: %s", exc)
        return _json(
            503, {"message": "the event could not be stored; send it again later"}, {"Retry-After": "5"}
        )
    if added:
        service.metrics.event(name, "accepted")
        service.wake_workers()
    else:  # the same event again: accepted once, so counted apart
        service.metrics.event(name, "duplicate")
    with event_context(name, event_id):
        log.info("accepted" if added else "accepted already: a repeat of this event", extra={"key": key})
    return _json(202, {"accepted": True, "eventId": event_id})


async def _run_sync(
    service: Service,
    generation: Generation,
    entry: PipelineEntry,
    event: Any,
    variables: Mapping[str, Any],
) -> Response:
    name = entry.pipeline.name
    source = entry.pipeline.source
    assert isinstance(source, WebhookSource)
    executor = generation.executors[name]
    idem = _key_value(source.idempotency_key, event, variables)

    async def run() -> Outcome:
        received = datetime.now(UTC)
        event_id = f"{name}:{idem}" if idem is not None else new_event_id()
        recorder = service.tracer.recorder(entry.pipeline)
        async with generation.use():
            outcome = await executor.run(
                event, deadline=source.deadline, event_id=event_id, recorder=recorder
            )
        if recorder is not None:
            service.tracer.record(recorder, generation, name, "webhook", event_id, received, event, outcome)
        return outcome

    if idem is None or service.store is None:
        return _answer(service, name, await run())

    digest = fingerprint(event)
    produced = False

    async def produce() -> dict[str, Any]:
        nonlocal produced
        produced = True
        outcome = await run()
        _answer(service, name, outcome)
        if outcome.error is not None and not outcome.error.settled and not outcome.applied:
            raise _Unstored(outcome)  # transient: the same event may be sent again; none was applied
        return {"status": outcome.status, "body": outcome.body, "fingerprint": digest}

    with event_context(name, idem):
        try:
            async with asyncio.timeout(source.deadline + 1.0):
                reply = await service.store.reply_once(name, idem, produce, ttl=source.deadline + 5.0)
        except _Unstored as unstored:
            return _json(unstored.outcome.status, unstored.outcome.body, _wait_header(unstored.outcome))
        except TimeoutError:
            message = f"no answer within {source.deadline:g} s; the same event is still being processed"
            return _json(504, {"message": message})
        except StoreError as exc:
            log.error("idempotency store failed: %s", exc)
            return _json(
                503, {"message": "the event could not be recorded; send it again later"}, {"Retry-After": "5"}
            )
    if reply.get("fingerprint", digest) != digest:  # a reply stored before fingerprints: the same
        return _conflict(service, entry, idem, "run")
    if not produced:  # the same event again, answered from the store
        service.metrics.event(name, "duplicate")
    return _json(int(reply["status"]), reply["body"])


def _answer(service: Service, name: str, outcome: Outcome) -> Response:
    if outcome.error is not None:
        service.metrics.event(name, "failed", outcome.duration)
        service.activity.failed(name, outcome.error.message, outcome.error.kind, status=outcome.status)
        log.warning(
            "failed: %s",
            outcome.error.message,
            extra={
                "status": outcome.status,
                "kind": outcome.error.kind,
                "connector": getattr(outcome.error, "connector", None) or None,
            },
        )
    else:
        service.metrics.event(name, "skipped" if outcome.skipped else "ok", outcome.duration)
        if log.isEnabledFor(logging.INFO):  # the hot path: no record, not even its fields, at warning
            log.info("answered", extra={"status": outcome.status, "seconds": round(outcome.duration, 4)})
    return _json(outcome.status, outcome.body, _wait_header(outcome))


def _wait_header(outcome: Outcome) -> dict[str, str] | None:
    """`Retry-After` for a 503 whose system asked to wait that long (a throttled call)."""
    wait = getattr(outcome.error, "retry_after", None)
    return {"Retry-After": str(math.ceil(wait))} if wait is not None and outcome.status == 503 else None


def create_app(service: Service) -> Starlette:
    """The Starlette application serving `service`; with console users configured in its environment,
    the operator console too (a console setting that is wrong raises StartupError saying which)."""
    console = ConsoleSettings.from_environ(service.environ)
    if console is not None:
        check_console_paths(service.generation.routes)

    async def webhook(request: Request) -> Response:
        try:
            return await handle_webhook(service, request)
        except Exception:  # noqa: BLE001 - answer, never drop the connection
            log.exception("unexpected failure serving %s", request.url.path)
            return _json(500, {"message": "internal error in mesbridge; see its log"})

    async def healthz(_request: Request) -> Response:
        return _json(200, {"status": "ok", "version": service.generation.version})

    async def readyz(_request: Request) -> Response:
        status = 200 if service.ready else 503
        return _json(status, {"ready": service.ready, "version": service.generation.version})

    async def status(_request: Request) -> Response:
        return _json(200, await service.status())

    async def metrics(_request: Request) -> Response:
        if service.store is not None:
            try:
                service.metrics.set_depth(await service.store.queue_depth())
            except StoreError:
                pass
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if console is not None:
        routes += console_routes(service, console)
    routes.append(Route("/{path:path}", webhook, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await service.generation.connectors.aclose()  # servers run with lifespan on close pooled sessions

    app = _ServiceApp(webhook, console is not None, routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.console = console
    return app


def _under_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def check_console_paths(paths: Iterable[str]) -> None:
    """With the console on, no webhook may sit under its prefix (at start, and in every reload):
    StartupError naming the first that does."""
    clash = sorted(path for path in paths if _under_console(path))
    if clash:
        raise StartupError(
            f"webhook path {clash[0]} is under the operator console's {CONSOLE_PREFIX}: "
            "move the webhook, or turn the console off (unset MESBRIDGE_CONSOLE_USERS)"
        )


class _ServiceApp(Starlette):
    """Starlette, with POST requests handed straight to the webhook handler.

    Every POST but the console's reaches the catch-all webhook route anyway (the operations routes are
    GET only), so skipping the middleware stack and the route matching changes no answer; it saves
    their cost on the hot path. Everything else (operations, the console, other methods, lifespan)
    goes through Starlette.
    """

    def __init__(
        self, webhook: Callable[[Request], Awaitable[Response]], console: bool, **options: Any
    ) -> None:
        super().__init__(**options)
        self._webhook = webhook
        self._console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not (self._console and _under_console(_path(Request(scope))))
        ):
            scope["app"] = self
            response = await self._webhook(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
