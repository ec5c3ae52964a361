"""Fixtures for the console's HTTP tests: the service's application in-process, over httpx's ASGI
transport, with the console on, a SQLite store in `tmp_path` and the stack's config root.

Traces and dead letters are put into the store as the service would have written them, so each test
starts from a known state without running events. The browser tests use `tests/console/stack.py`
instead: `mesbridge run` as a process, with the simulators.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config.root import load_project
from engine.console.passwords import hash_password
from engine.service.app import Service, create_app
from engine.service.generation import Generation
from engine.service.tracer import stored
from engine.store import Store, open_store
from tests.console.stack import PASSWORD, SECRET, USER, WEBHOOK_TOKEN, write_root

OTHER = "bob"
OTHER_PASSWORD = "second-shift-pw"


@cache
def hashes() -> dict[str, str]:
    """One scrypt hash per test user, made once per session (each costs some 50 ms)."""
    return {USER: hash_password(PASSWORD), OTHER: hash_password(OTHER_PASSWORD)}


def users_variable() -> str:
    return ",".join(f"{user}:{hashed}" for user, hashed in hashes().items())


def environ(**extra: str) -> dict[str, str]:
    """The service's environment: connectors pointing nowhere (no test here calls them)."""
    return {
        "NEXTPLUS_URL": "http://api-user:url-password-123@127.0.0.1:9",
        "NEXTX_URL": "http://127.0.0.1:9",
        "MESBRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "MESBRIDGE_CONSOLE_USERS": users_variable(),
        "MESBRIDGE_CONSOLE_SECRET": SECRET,
        **extra,
    }


def trace_document(trace_id: str, *, number: str, outcome: str = "failed", **extra: Any) -> dict[str, Any]:
    """A trace document of `wo.create` as the tracer writes it: a lookup, then a create refused."""
    document: dict[str, Any] = {
        "id": trace_id,
        "pipeline": "wo.create",
        "binding": "shop",
        "version": "0123456789ab",
        "source": "queue",
        "event_id": f"wo.create:ev-{number}",
        "received": datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).isoformat(),
        "duration": 0.0124,
        "outcome": outcome,
        "status": 422 if outcome == "failed" else 200,
        "reply": {"message": "quantity must be positive"} if outcome == "failed" else {"ok": True},
        "error": {"message": "mes answered HTTP 422: quantity must be positive", "kind": "business"}
        if outcome == "failed"
        else None,
        "event": {"eventId": f"ev-{number}", "workorderNumber": number, "sku": "PUMP-200", "quantity": -1},
        "steps": [
            {
                "id": "steps[0]",
                "type": "call",
                "name": "existing",
                "start": 0.0,
                "duration": 0.003,
                "status": "ok",
            },
            {"id": "steps[1]", "type": "if", "start": 0.0031, "duration": 0.008, "status": "failed"},
            {
                "id": "steps[1].then[0]",
                "type": "call",
                "name": "created",
                "start": 0.0032,
                "duration": 0.0079,
                "status": "failed",
                "error": "mes answered HTTP 422: quantity must be positive",
            },
        ],
        "calls": [
            {
                "step": "steps[0]",
                "connector": "mes",
                "method": "GET",
                "path": "/api/Workorders",
                "query": {"filter": f'{{"where": {{"workorderNumber": "{number}"}}}}'},
                "request": None,
                "status": 200,
                "reply": [],
                "latency": 0.0029,
                "attempt": 1,
                "end": 0.0029,
            },
            {
                "step": "steps[1].then[0]",
                "connector": "mes",
                "method": "POST",
                "path": "/api/Workorders/",
                "query": {},
                "request": {"workorderNumber": number, "quantity": -1, "password": "***"},
                "status": 422,
                "reply": {"error": {"message": "quantity must be positive"}},
                "latency": 0.0075,
                "attempt": 1,
                "failure": "unapplied",
                "end": 0.011,
            },
        ],
        "attempt": 1,
        "then": "dead",
    }
    document.update(extra)
    return document


async def add_dead(store: Store, number: str, *, error: str = "", kind: str = "business") -> str:
    """A dead letter of `wo.create` for work order `number`, as the queue leaves one; its id."""
    event = {"eventId": f"ev-{number}", "workorderNumber": number, "sku": "PUMP-200", "quantity": 2}
    event_id = await store.enqueue("wo.create", number, {"event": event}, event_id=f"wo.create:ev-{number}")
    [job] = await store.claim("test-worker", limit=1)
    assert job.event_id == event_id
    await store.dead_letter(job, error or f"mes answered HTTP 422: work order {number} is locked", kind=kind)
    return event_id


@dataclass
class Console:
    """The application with a client, the service and its store."""

    client: httpx.AsyncClient
    service: Service
    store: Store
    root_path: str
    app: Any

    def path(self, page: str = "") -> str:
        """A console page's path as a request under the proxy's prefix carries it."""
        return f"{self.root_path}/console{page}"

    async def login_form(self) -> tuple[httpx.Response, str]:
        page = await self.client.get(self.path("/login"))
        assert page.status_code == 200, page.text
        return page, csrf_of(page.text)

    async def login(self, user: str = USER, password: str = PASSWORD, **headers: str) -> httpx.Response:
        _page, token = await self.login_form()
        return await self.client.post(
            self.path("/login"),
            data={"user": user, "password": password, "csrf": token},
            headers=headers,
        )

    async def csrf(self) -> str:
        """The CSRF token of the current session's forms (read off the overview)."""
        page = await self.client.get(self.path())
        assert page.status_code == 200, page.text
        return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


ConsoleFactory = Callable[..., Any]


@pytest.fixture
async def console_factory(tmp_path: Path) -> AsyncIterator[ConsoleFactory]:
    """Makes consoles: `await make(root_path="/mb", **environ)`; all are closed at the end."""
    made: list[Console] = []
    root = write_root(tmp_path)

    async def make(root_path: str = "", **extra: str) -> Console:
        env = environ(**extra)
        project = load_project(root, environ=env)
        assert project.ok, [str(d) for d in project.diagnostics]
        store = open_store(f"sqlite:///{tmp_path / f'console-{len(made)}.db'}")
        await store.migrate()
        service = Service(Generation(project, environ=env), environ=env, store=store)
        app = create_app(service)
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        console = Console(client, service, store, root_path, app)
        made.append(console)
        return console

    yield make
    for console in made:
        await console.client.aclose()
        await console.store.close()
        await console.service.generation.retire()


@pytest.fixture
async def console(console_factory: ConsoleFactory) -> Console:
    made: Console = await console_factory()
    return made


async def add_trace(store: Store, document: dict[str, Any]) -> None:
    await store.add_traces([stored(document)])
