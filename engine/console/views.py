"""The console's routes: login and logout, the overview, events and their traces, dead letters, the queue.

Every page but the login form needs a session; without one a GET is sent to the login form (and back
after it), a POST is refused. Every POST carries the CSRF token of its session (the login form: of its
own cookie); a missing or wrong token is a 403 and nothing is done. Acting on a dead letter does what
`mesbridge dlq` does (`engine.service.dead_letters`, the store's `drop_dead`), and acting on a queued
event what `mesbridge queue drop|dead` does (the store's `drop_queued`, `dead_letter_queued`: never to
one a worker holds); each writes an audit line to the service's log: user, action, id, result.

Bad input (an unknown id, a query that is not one the pages make) is a 400 or 404 page, and a store
that does not answer a 503 page, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.console.overview import overview
from engine.console.pages import PREFIX, Pages, is_https, prefix
from engine.console.passwords import PasswordHash, hash_password
from engine.console.sessions import LOGIN_COOKIE, LOGIN_SECONDS, SESSION_COOKIE, Session, Sessions
from engine.console.settings import ConsoleSettings
from engine.console.throttle import LoginThrottle
from engine.errors import StoreError
from engine.store import TraceQuery
from engine.traces.document import OUTCOMES, SOURCES
from engine.traces.render import tree as trace_tree

if TYPE_CHECKING:
    from engine.service.app import Service

log = logging.getLogger("mesbridge.console")

__all__ = ["PREFIX", "console_routes"]

MAX_FORM_BYTES = 16 * 1024
_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
_TRACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_TEXT = 200
_MAX_ID = 1000
_QUEUE_ACTIONS = {"drop": "dropped", "dead": "dead-lettered"}
"""What the queue page can do to a queued event, and what it says was done."""
_DUMMY = PasswordHash.parse(hash_password("not a password of anyone"))
"""Checked when the user name is unknown, so that a wrong name takes as long as a wrong password."""

Handler = Callable[[Request], Awaitable[Response]]


class _Refused(Exception):
    """A request the console answers with a problem page (400, 403, 404, 409, 413, 415)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _text(request: Request, name: str, *, limit: int = _MAX_TEXT) -> str | None:
    """A query parameter, stripped; None when absent or empty; 400 when too long."""
    value = request.query_params.get(name, "").strip()
    if len(value) > limit:
        raise _Refused(400, "Bad request", f"The {name} is longer than {limit} characters.")
    return value or None


def _choice(request: Request, name: str, choices: Any) -> str | None:
    value = _text(request, name)
    if value is not None and value not in choices:
        listed = ", ".join(choices)
        raise _Refused(400, "Bad request", f"The {name} {value!r} is not one of: {listed}.")
    return value


def _limit(request: Request, default: int, most: int) -> int:
    value = _text(request, "limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise _Refused(400, "Bad request", f"The limit must be a whole number from 1 to {most}.")
    return int(value)


async def _form(request: Request) -> dict[str, str]:
    """The fields of a posted form (URL-encoded, at most `MAX_FORM_BYTES`)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise _Refused(415, "Unsupported form", "The console takes forms sent by its own pages only.")
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise _Refused(413, "Form too large", "The form sent is larger than the console takes.")
    except ClientDisconnect:
        raise _Refused(400, "Bad request", "The form was not sent whole.") from None
    text = body.decode("utf-8", "replace")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        raise _Refused(400, "Bad request", "The form holds too many fields.") from None
    return dict(pairs)


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


class Console:
    """The console of one service."""

    def __init__(self, service: Service, settings: ConsoleSettings) -> None:
        self.service = service
        self.settings = settings
        self.sessions = Sessions(settings)
        self.throttle = LoginThrottle()
        self.pages = Pages()

    # -- plumbing ----------------------------------------------------------------------------------

    def _cookie(self, request: Request, response: Response, name: str, value: str, seconds: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(seconds),
            path=prefix(request) + PREFIX,
            secure=is_https(request),
            httponly=True,
            samesite="strict",
        )

    def _forget(self, request: Request, response: Response, name: str) -> None:
        response.delete_cookie(
            name, path=prefix(request) + PREFIX, secure=is_https(request), httponly=True, samesite="strict"
        )

    def _redirect(self, request: Request, path: str, **query: Any) -> RedirectResponse:
        return RedirectResponse(self.pages.url(request, path, **query), status_code=303)

    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(SESSION_COOKIE))

    def audit(
        self,
        request: Request,
        user: str,
        action: str,
        result: str,
        subject: str | None,
        *,
        kind: str = "dead_letter",
    ) -> None:
        """One line in the service's log per action an operator took; `subject` is the id of what it
        acted on, logged under `kind` (`dead_letter`, `queued_event`)."""
        log.info(
            "console: %s %s%s: %s",
            user,
            action,
            f" {subject}" if subject else "",
            result,
            extra={
                "user": user,
                "action": action,
                kind: subject,
                "result": result,
                "address": _address(request),
            },
        )

    def page(
        self, handler: Callable[[Request, Session], Awaitable[Response]], *, post: bool = False
    ) -> Handler:
        """A handler behind the login (and, for a POST, the CSRF check), with its problem pages."""

        async def serve(request: Request) -> Response:
            session = self.session(request)
            user = None if session is None else session.user
            csrf = None if session is None else self.sessions.csrf(session)
            try:
                if session is None:
                    if post:
                        raise _Refused(403, "Not logged in", "Your session has ended; nothing was done.")
                    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return self._redirect(request, "/login", next=wanted)
                return await handler(request, session)
            except _Refused as refused:
                return self.pages.problem(
                    request, refused.status, refused.title, refused.message, user=user, csrf=csrf
                )
            except StoreError as exc:
                log.error("the console cannot reach the store: %s", exc)
                return self.pages.problem(
                    request,
                    503,
                    "The state store is not answering",
                    "The state store did not answer; nothing was done. Try again in a moment.",
                    user=user,
                    csrf=csrf,
                    headers={"Retry-After": "5"},
                )
            except Exception:  # noqa: BLE001 - a page, never a dropped connection
                log.exception("the console failed serving %s", request.url.path)
                return self.pages.problem(
                    request,
                    500,
                    "Internal error",
                    "mesbridge failed serving this page; see its log.",
                    user=user,
                    csrf=csrf,
                )

        return serve

    async def _checked(self, request: Request, session: Session) -> dict[str, str]:
        """The posted form, once its CSRF token is the session's."""
        form = await _form(request)
        if not self.sessions.csrf_ok(session, form.get("csrf")):
            page = request.url.path.rsplit(PREFIX + "/", 1)[-1]  # `queue/drop`, not `drop` alone
            self.audit(request, session.user, "post " + page.replace("/", " "), "csrf refused", None)
            raise _Refused(
                403,
                "Form refused",
                "This form did not carry this session's security token (it may be old, or sent from "
                "another site). Nothing was done. Reload the page and try again.",
            )
        return form

    def _store(self) -> Any:
        store = self.service.store
        if store is None:
            raise _Refused(503, "No state store", "This server runs without a state store.")
        return store

    # -- login -------------------------------------------------------------------------------------

    def _next(self, request: Request, wanted: str | None) -> str:
        """Where to go after the login: a console page of this server, else the overview."""
        base = prefix(request) + PREFIX
        if wanted and (wanted == base or wanted.startswith(base + "/")) and "\\" not in wanted:
            if not wanted.startswith((base + "/login", base + "/logout")):
                return wanted
        return base

    def _login_page(
        self,
        request: Request,
        *,
        status: int = 200,
        error: str | None = None,
        user: str = "",
        wanted: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        cookie, token = self.sessions.login_cookie()
        response = self.pages.render(
            request,
            "login.html",
            status=status,
            error=error,
            login_csrf=token,
            name=user,
            next=self._next(request, wanted),
            headers=headers,
        )
        self._cookie(request, response, LOGIN_COOKIE, cookie, LOGIN_SECONDS)
        return response

    async def login_form(self, request: Request) -> Response:
        if self.session(request) is not None:
            return RedirectResponse(self._next(request, request.query_params.get("next")), status_code=303)
        return self._login_page(request, wanted=request.query_params.get("next"))

    async def login(self, request: Request) -> Response:
        try:
            form = await _form(request)
        except _Refused as refused:
            return self.pages.problem(request, refused.status, refused.title, refused.message)
        user = form.get("user", "").strip()[:64]
        password = form.get("password", "")
        wanted = form.get("next")
        if not self.sessions.login_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            self.audit(request, user or "-", "login", "csrf refused", None)
            return self.pages.problem(
                request,
                403,
                "Login form refused",
                "This login form has expired or did not come from this console. Nothing was done. "
                "Open the login page again.",
            )
        address = _address(request)
        wait = self.throttle.attempt(user, address)
        if wait > 0:
            self.audit(request, user or "-", "login", "throttled", None)
            seconds = int(wait) + 1
            return self._login_page(
                request,
                status=429,
                error=f"Too many failed logins. Try again in {seconds} s.",
                user=user,
                wanted=wanted,
                headers={"Retry-After": str(seconds)},
            )
        known = self.settings.users.get(user)
        matches = await asyncio.to_thread((known or _DUMMY).matches, password)
        if known is None or not matches:
            self.audit(request, user or "-", "login", "refused", None)
            return self._login_page(
                request, status=401, error="Wrong user name or password.", user=user, wanted=wanted
            )
        self.throttle.succeeded(user, address)
        cookie, _session = self.sessions.issue(user)
        self.audit(request, user, "login", "ok", None)
        response = RedirectResponse(self._next(request, wanted), status_code=303)
        self._cookie(request, response, SESSION_COOKIE, cookie, self.settings.session_seconds)
        self._forget(request, response, LOGIN_COOKIE)
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        await self._checked(request, session)
        self.audit(request, session.user, "logout", "ok", None)
        response = self._redirect(request, "/login")
        self._forget(request, response, SESSION_COOKIE)
        return response

    # -- pages -------------------------------------------------------------------------------------

    def _render(self, request: Request, session: Session, template: str, **context: Any) -> Response:
        return self.pages.render(
            request, template, user=session.user, csrf=self.sessions.csrf(session), **context
        )

    async def overview(self, request: Request, session: Session) -> Response:
        return self._render(request, session, "overview.html", nav="overview", o=await overview(self.service))

    async def events(self, request: Request, session: Session) -> Response:
        text = _text(request, "q")
        pipeline = _text(request, "pipeline")
        outcome = _choice(request, "outcome", OUTCOMES)
        source = _choice(request, "source", SOURCES)
        since = _choice(request, "since", _SINCE)
        event_id = _text(request, "event_id", limit=_MAX_ID)
        limit = _limit(request, 50, 500)
        query = TraceQuery(
            pipeline=pipeline,
            outcome=outcome,
            source=source,
            event_id=event_id,
            since=None if since is None else datetime.now(UTC) - _SINCE[since],
            text=text,
            limit=limit,
        )
        found = await self._store().list_traces(query)
        pipelines = sorted(
            set(self.service.generation.project.pipelines) | ({pipeline} if pipeline else set())
        )
        return self._render(
            request,
            session,
            "events.html",
            nav="events",
            traces=found,
            filters={
                "q": text or "",
                "pipeline": pipeline or "",
                "outcome": outcome or "",
                "source": source or "",
                "since": since or "",
                "event_id": event_id or "",
                "limit": limit,
            },
            pipelines=pipelines,
            outcomes=OUTCOMES,
            sources=SOURCES,
            spans=list(_SINCE),
            more=len(found) == limit,
        )

    async def trace(self, request: Request, session: Session) -> Response:
        trace_id = str(request.path_params.get("trace_id", ""))
        store = self._store()
        document = await store.get_trace(trace_id) if _TRACE_ID.match(trace_id) else None
        if document is None:
            raise _Refused(404, "No such trace", f"There is no trace {trace_id} (old traces are pruned).")
        dead = await store.get_dead(document["event_id"]) if document.get("event_id") else None
        return self._render(
            request, session, "trace.html", nav="events", t=document, nodes=trace_tree(document), dead=dead
        )

    async def dead_letters(self, request: Request, session: Session) -> Response:
        pipeline = _text(request, "pipeline")
        limit = _limit(request, 100, 1000)
        found = await self._store().list_dead(pipeline, limit + 1)
        done = _choice(request, "done", ("replayed", "replayed-not-served", "dropped"))
        return self._render(
            request,
            session,
            "dead_letters.html",
            nav="dead",
            items=found[:limit],
            more=len(found) > limit,
            limit=limit,
            pipeline=pipeline or "",
            # the dead letters' own pipelines too: one this config does not serve (other bindings, a
            # pipeline renamed since) has dead letters to filter as well
            pipelines=sorted(
                set(self.service.generation.project.pipelines)
                | {dead.pipeline for dead in found}
                | ({pipeline} if pipeline else set())
            ),
            done=done,
            done_id=_text(request, "id", limit=_MAX_ID) if done else None,
            clean=self._clean,
        )

    async def _dead(self, event_id: str | None) -> Any:
        if not event_id:
            raise _Refused(400, "Bad request", "Which dead letter? The id is missing.")
        if len(event_id) > _MAX_ID:
            raise _Refused(400, "Bad request", f"A dead-letter id is at most {_MAX_ID} characters.")
        dead = await self._store().get_dead(event_id)
        if dead is None:
            raise _Refused(404, "No such dead letter", f"There is no dead letter {event_id}.")
        return dead

    def _clean(self, value: Any) -> Any:
        for redactor in self.service.redactors():
            value = redactor.redact(value)
        return value

    async def dead_letter(self, request: Request, session: Session) -> Response:
        dead = await self._dead(request.query_params.get("id"))
        return self._render(
            request,
            session,
            "dead_letter.html",
            nav="dead",
            dead=dead,
            error=self._clean(dead.error),
            attempts=[(a.at, self._clean(a.error), a.replay) for a in dead.attempts],
            event=self._clean(dead.payload.get("event", dead.payload)),
        )

    async def replay(self, request: Request, session: Session) -> Response:
        form = await self._checked(request, session)
        event_id = form.get("id", "")
        force = form.get("force") == "1"
        action = "replay --force" if force else "replay"
        try:
            await self._dead(event_id)
        except _Refused as refused:
            if refused.status == 404:
                self.audit(request, session.user, action, "no such dead letter", event_id)
            raise
        result = await self.service.replay_dead(event_id, force=force)
        if result.replayed:
            outcome = "replayed, each write looks first" if result.verify_first else "replayed"
            self.audit(request, session.user, action, outcome, event_id)
            done = "replayed" if result.served else "replayed-not-served"
            return self._redirect(request, "/dead-letters", done=done, id=event_id)
        self.audit(request, session.user, action, f"refused: {result.reason}", event_id)
        return self._render(
            request,
            session,
            "replay_refused.html",
            nav="dead",
            event_id=event_id,
            reason=self._clean(result.reason),
            status=409,
        )

    async def drop_form(self, request: Request, session: Session) -> Response:
        dead = await self._dead(request.query_params.get("id"))
        return self._render(
            request, session, "drop.html", nav="dead", dead=dead, error=self._clean(dead.error)
        )

    async def drop(self, request: Request, session: Session) -> Response:
        form = await self._checked(request, session)
        event_id = form.get("id", "")
        if not event_id or len(event_id) > _MAX_ID:
            raise _Refused(400, "Bad request", "Which dead letter? The id is missing or too long.")
        dropped = await self._store().drop_dead(event_id)
        self.audit(request, session.user, "drop", "dropped" if dropped else "no such dead letter", event_id)
        if not dropped:
            raise _Refused(404, "No such dead letter", f"There is no dead letter {event_id}.")
        return self._redirect(request, "/dead-letters", done="dropped", id=event_id)

    async def queue(self, request: Request, session: Session) -> Response:
        pipeline = _text(request, "pipeline")
        limit = _limit(request, 100, 1000)
        done = _choice(request, "done", _QUEUE_ACTIONS.values())
        found = await self._store().list_queued(None if pipeline is None else {pipeline}, limit + 1)
        served = set(self.service.generation.project.pipelines)
        now = datetime.now(UTC)
        return self._render(
            request,
            session,
            "queue.html",
            nav="queue",
            items=[(event, event.state(now), event.pipeline in served) for event in found[:limit]],
            more=len(found) > limit,
            limit=limit,
            pipeline=pipeline or "",
            pipelines=sorted(
                served | {event.pipeline for event in found} | ({pipeline} if pipeline else set())
            ),
            done=done,
            done_id=_text(request, "id", limit=_MAX_ID) if done else None,
            clean=self._clean,
        )

    async def queue_act(self, request: Request, session: Session, action: str) -> Response:
        """Drop a queued event, or move it to the dead letters, as `mesbridge queue drop|dead` does."""
        form = await self._checked(request, session)
        event_id = form.get("id", "")
        if not event_id or len(event_id) > _MAX_ID:
            raise _Refused(400, "Bad request", "Which queued event? The id is missing or too long.")
        store = self._store()
        if action == "drop":
            event = await store.drop_queued(event_id)
        else:
            error = f"moved from the queue to the dead letters (by {session.user}, console)"
            event = await store.dead_letter_queued(event_id, error, "operator")
        done = _QUEUE_ACTIONS[action]

        def audit(result: str) -> None:
            self.audit(request, session.user, f"queue {action}", result, event_id, kind="queued_event")

        if event is None:
            audit("no such queued event")
            message = f"There is no queued event {event_id} (delivered, a dead letter, or never queued)."
            raise _Refused(404, "No such queued event", message)
        if event.leased:
            audit("refused: a worker holds it")
            raise _Refused(409, "A worker holds this event", f"{event_id} was not {done}: {event.held()}.")
        uncertain = event.uncertain_because() if action == "dead" else ""
        audit(f"{done} as uncertain: {uncertain}" if uncertain else done)
        return self._redirect(request, "/queue", done=done, id=event_id)

    async def not_found(self, request: Request, session: Session) -> Response:
        raise _Refused(404, "Not found", "The console has no such page.")

    async def stylesheet(self, request: Request) -> Response:
        return self.pages.stylesheet()


def console_routes(service: Service, settings: ConsoleSettings) -> list[BaseRoute]:
    """The console's routes under `/console`, for the service's application."""
    console = Console(service, settings)
    page = console.page
    return [
        Route(PREFIX, page(console.overview), methods=["GET"]),
        Route(PREFIX + "/", page(console.overview), methods=["GET"]),
        Route(PREFIX + "/login", console.login_form, methods=["GET"]),
        Route(PREFIX + "/login", console.login, methods=["POST"]),
        Route(PREFIX + "/logout", page(console.logout, post=True), methods=["POST"]),
        Route(PREFIX + "/events", page(console.events), methods=["GET"]),
        Route(PREFIX + "/events/{trace_id}", page(console.trace), methods=["GET"]),
        Route(PREFIX + "/dead-letters", page(console.dead_letters), methods=["GET"]),
        Route(PREFIX + "/dead-letters/show", page(console.dead_letter), methods=["GET"]),
        Route(PREFIX + "/dead-letters/replay", page(console.replay, post=True), methods=["POST"]),
        Route(PREFIX + "/dead-letters/drop", page(console.drop_form), methods=["GET"]),
        Route(PREFIX + "/dead-letters/drop", page(console.drop, post=True), methods=["POST"]),
        Route(PREFIX + "/queue", page(console.queue), methods=["GET"]),
        Route(
            PREFIX + "/queue/drop",
            page(partial(console.queue_act, action="drop"), post=True),
            methods=["POST"],
        ),
        Route(
            PREFIX + "/queue/dead",
            page(partial(console.queue_act, action="dead"), post=True),
            methods=["POST"],
        ),
        Route(PREFIX + "/static/console.css", console.stylesheet, methods=["GET"]),
        Route(
            PREFIX + "/{rest:path}",
            page(console.not_found),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
