"""What the overview page shows, read from what the service keeps: its generation (config version,
pipelines, connectors), its metrics (counts and recent rates), its activity (last errors, last calls,
poll rounds), its latest reload, and the store (queue depth, poll cursors, dead letters).

Every text that may hold a secret (errors, paths, URLs) passes the service's redactors; a connector's
token is never read, only whether one is held and until when.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from engine.errors import MesbridgeError, StoreError
from engine.pipeline.sources.poll import PollSource
from engine.pipeline.sources.webhook import WebhookSource

if TYPE_CHECKING:
    from engine.connectors.connector import Connector
    from engine.service.app import Service

log = logging.getLogger("mesbridge.console")

__all__ = ["Overview", "overview"]

DEAD_COUNTED = 100
"""Dead letters counted on the overview; past that it says "more than"."""
_ERRORS = ("failed", "dead", "rejected")
_DONE = ("ok", "delivered")


@dataclass
class PipelineRow:
    name: str
    binding: str
    source: str
    """`webhook /path (sync)`, `webhook /path (queue)` or `poll <connector>`."""
    per_minute: float
    recent: dict[str, int]
    totals: dict[str, int]
    done: int
    errors: int
    queued: int | None
    last_error: dict[str, Any] | None


@dataclass
class PollerRow:
    name: str
    connector: str
    schedule: str
    cursor: str | None
    leader: bool | None
    """True: this process polls; False: another replica holds the lease; None: not polling here."""
    last_round: dict[str, Any] | None


@dataclass
class ConnectorRow:
    name: str
    base_url: str
    auth: str
    token: str
    token_expires: float | None
    """Epoch seconds after which the token is renewed, when it has a known lifetime."""
    logins: int | None
    calls: dict[str, int]
    recent: list[dict[str, Any]]


@dataclass
class Overview:
    version: str
    ready: bool
    started_at: float
    last_reload: dict[str, Any] | None
    reloads: dict[str, int]
    window: float
    """The seconds `per_minute` and the recent counts cover (at most five minutes)."""
    pipelines: list[PipelineRow] = field(default_factory=list)
    pollers: list[PollerRow] = field(default_factory=list)
    connectors: list[ConnectorRow] = field(default_factory=list)
    queue_depth: int | None = None
    not_served: dict[str, int] = field(default_factory=dict)
    """Queued events per pipeline this config does not serve: they wait for a replica that does."""
    dead_letters: int | None = None
    """How many dead letters (at most `DEAD_COUNTED` + 1: then "more than")."""
    store_error: str | None = None


def _clean(service: Service, value: Any) -> Any:
    return service.redact(value)


def _source(entry: Any) -> str:
    source = entry.pipeline.source
    if isinstance(source, WebhookSource):
        return f"webhook {source.path} ({source.mode})"
    return f"{source.kind} {getattr(source, 'connector', '')}".strip()


def _schedule(source: PollSource) -> str:
    if source.schedule.cron:
        return f"cron {source.schedule.cron}"
    return f"every {source.schedule.every or 60:g} s"


def _base_url(service: Service, connector: Connector) -> str:
    """The connector's base URL, without any user or password in it."""
    try:
        url = str(connector.resolve(connector.config.base_url, "base_url"))
    except MesbridgeError as exc:
        return f"(not resolved: {_clean(service, str(exc))})"
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return str(_clean(service, connector.redactor.redact(url)))


def token_state(connector: Connector) -> tuple[str, float | None, int | None]:
    """(what the connector holds, epoch seconds it renews after, logins so far); never the token.

    Reads whether the token authenticator holds a token, and until when."""
    auth = connector.auth
    if auth.static:
        kind = connector.config.auth.kind
        return ("no authentication" if kind == "none" else "static credentials"), None, None
    if not auth.held:
        return "no token yet (logs in at the first call)", None, auth.logins
    expires = auth.expires_at
    if expires is None:
        return "token held, kept until the system rejects it", None, auth.logins
    left = expires - auth.ctx.clock()
    if left <= 0:
        return "token expired (renewed at the next call)", time.time() + left, auth.logins
    return "token held", time.time() + left, auth.logins


async def overview(service: Service) -> Overview:
    """Everything the overview page shows, now."""
    generation = service.generation
    project = generation.project
    metrics = service.metrics
    activity = service.activity
    window, recent = metrics.recent()
    totals = metrics.totals()
    found = Overview(
        version=generation.version,
        ready=service.ready,
        started_at=service.started_at,
        last_reload=service.last_reload,
        reloads=metrics.reload_counts(),
        window=window,
    )
    depth: dict[str, int] | None = None
    cursors: dict[str, str | None] = {}
    store = service.store
    if store is not None:
        try:
            depth = await store.queue_depth()
            found.queue_depth = sum(depth.values())
            found.not_served = {name: n for name, n in sorted(depth.items()) if name not in project.pipelines}
            found.dead_letters = len(await store.list_dead(None, DEAD_COUNTED + 1))
            for name, entry in project.pipelines.items():
                if isinstance(entry.pipeline.source, PollSource):
                    cursors[name] = await store.get_cursor(name)
        except StoreError as exc:
            log.error("the console cannot read the store: %s", exc)
            found.store_error = str(_clean(service, str(exc)))
    for name, entry in project.pipelines.items():
        counts = totals.get(name, {})
        lately = recent.get(name, {})
        failure = activity.failures.get(name)
        found.pipelines.append(
            PipelineRow(
                name=name,
                binding=entry.binding,
                source=_source(entry),
                per_minute=sum(lately.get(o, 0) for o in (*_DONE, "skipped", *_ERRORS)) * 60.0 / window,
                recent=lately,
                totals=counts,
                done=sum(counts.get(o, 0) for o in _DONE),
                errors=sum(counts.get(o, 0) for o in _ERRORS),
                queued=None if depth is None else depth.get(name, 0),
                last_error=None
                if failure is None
                else {
                    "at": failure.at,
                    "message": _clean(service, failure.message),
                    "kind": failure.kind,
                    "event_id": failure.event_id,
                    "status": failure.status,
                },
            )
        )
        source = entry.pipeline.source
        if isinstance(source, PollSource):
            last = activity.rounds.get(name)
            found.pollers.append(
                PollerRow(
                    name=name,
                    connector=source.connector,
                    schedule=_schedule(source),
                    cursor=cursors.get(name),
                    leader=activity.leading.get(name),
                    last_round=None
                    if last is None
                    else {
                        "at": last.at,
                        "new": last.new,
                        "seen": last.seen,
                        "seconds": last.seconds,
                        "error": None if last.error is None else _clean(service, last.error),
                    },
                )
            )
    calls = metrics.calls_by_status()
    for name, connector in generation.connectors.items():
        state, expires, logins = token_state(connector)
        found.connectors.append(
            ConnectorRow(
                name=name,
                base_url=_base_url(service, connector),
                auth=str(connector.config.auth.kind),
                token=state,
                token_expires=expires,
                logins=logins,
                calls=calls.get(name, {}),
                recent=[
                    {
                        "at": call.at,
                        "method": call.method,
                        "path": _clean(service, call.redactor.redact(call.path)),
                        "status": call.status,
                        "latency": call.latency,
                        "attempt": call.attempt,
                        "failure": call.failure,
                        "error": None if call.error is None else _clean(service, call.error),
                    }
                    for call in activity.recent_calls(name)
                ],
            )
        )
    return found
