"""The ASGI application: one route per webhook pipeline of the current generation, plus health.

Routes are looked up in the current generation on every request, so a hot reload changes them without
rebuilding the application; a request keeps the generation it started with until it has answered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.errors import MissingVariableError
from engine.pipeline.models import WebhookSource
from engine.service.generation import Generation
from engine.service.inbound import Rejection, authenticate, parse_json, read_body

log = logging.getLogger("mesbridge.service")


class Service:
    """What the application serves: the current generation and the service settings."""

    def __init__(self, generation: Generation, *, environ: Mapping[str, str] | None = None) -> None:
        self.generation = generation
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.ready = True

    @property
    def settings(self) -> Any:
        return self.generation.project.settings

    async def swap(self, generation: Generation) -> Generation:
        """Serve `generation` from now on; the old one retires when its in-flight work is done."""
        old, self.generation = self.generation, generation
        await old.retire()
        return old


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def handle_webhook(service: Service, request: Request) -> Response:
    """Run the webhook pipeline routed at the request's path and answer per the reply contract."""
    generation = service.generation
    entry = generation.routes.get(request.url.path) or generation.routes.get(request.url.path.rstrip("/"))
    if entry is None:
        return _json(404, {"message": f"no pipeline at {request.url.path}"})
    if request.method != "POST":
        return _json(405, {"message": "webhooks accept POST only"}, {"Allow": "POST"})
    source = entry.pipeline.source
    assert isinstance(source, WebhookSource)
    try:
        body = await read_body(request, service.settings.max_body_bytes)
        authenticate(source.auth or service.settings.webhook_auth, request, body, service.environ)
        event = parse_json(request, body)
    except Rejection as rejection:
        return _json(rejection.status, {"message": rejection.message}, rejection.headers)
    except MissingVariableError as exc:
        log.error("webhook %s misconfigured: %s", request.url.path, exc)
        return _json(500, {"message": "webhook authentication is not configured on the server"})
    async with generation.use():
        outcome = await generation.executors[entry.pipeline.name].run(event, deadline=source.deadline)
    if outcome.error is not None:
        log.warning(
            "pipeline %s failed: %s",
            entry.pipeline.name,
            outcome.error.message,
            extra={"pipeline": entry.pipeline.name, "status": outcome.status},
        )
    return _json(outcome.status, outcome.body)


def create_app(service: Service) -> Starlette:
    """The Starlette application serving `service`."""

    async def webhook(request: Request) -> Response:
        return await handle_webhook(service, request)

    async def healthz(_request: Request) -> Response:
        return _json(200, {"status": "ok", "version": service.generation.version})

    async def readyz(_request: Request) -> Response:
        status = 200 if service.ready else 503
        return _json(status, {"ready": service.ready, "version": service.generation.version})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/{path:path}", webhook, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.service = service
    return app
