"""A console to test and to photograph: `mesbridge run` as a process, with the console on, behind a
reverse proxy that serves it under a path prefix, and the Next Plus and NextX simulators.

    with console_stack(tmp_path) as stack:
        stack.page("/events")          # the console's URL as a browser behind the proxy opens it
        stack.post_event("/wo", {...}) # a webhook event, straight to mesbridge

The config root is written here: work orders queued for the MES (looked up first, created once), a
synchronous work-order check that refuses unknown numbers, NextX branches, and a poller of the MES's
work orders. The proxy strips its prefix and forwards the rest, as nginx's `proxy_pass .../;` does;
mesbridge runs with `--root-path` set to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from engine.console.passwords import hash_password
from engine.store import DeadLetter, open_store
from sandbox import nextplus, nextx
from sandbox.serve import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
MESBRIDGE = Path(sys.executable).with_name("mesbridge")
WEBHOOK_TOKEN = "console-test-webhook-token-0123"
PREFIX = "/mesbridge"
USER = "alice"
PASSWORD = "shop-floor-2026"
SECRET = "console-test-signing-secret-0123456789abcdef"

SETTINGS = """\
host: 127.0.0.1
store: sqlite:///{store}
workers: 2
shutdown_grace: 2
reload: false
log_level: info
log_format: json
webhook_auth: {{kind: shared_secret, in: query, name: token, secret: "${{MESBRIDGE_WEBHOOK_TOKEN}}"}}
delivery: {{max_attempts: 2, initial: 0.05, multiplier: 2, max: 0.2, jitter: false, lease: 5,
           deadline: 5, poll_interval: 0.1}}
"""

CONNECTORS = {
    "mes": """\
base_url: ${NEXTPLUS_URL}
auth:
  kind: login
  request: {method: POST, path: /api/Users/login, body: {username: api, password: api-secret}}
  token: id
  expires_in: ttl
  inject: {in: header, name: Authorization, format: "{token}"}
  relogin_when: {status: [401]}
envelope: {error: [error.message, message]}
retry: {max_attempts: 2, backoff: {initial: 0.05, multiplier: 2, max: 0.1, jitter: false}, deadline: 2}
pagination: {kind: none}
""",
    "nextx": """\
base_url: ${NEXTX_URL}
auth:
  kind: oauth2_client_credentials
  token_url: /api/auth/token
  body: json
  client_id: mesbridge-demo
  client_secret: nextx-demo-secret
  scope: public.api
  token: "data.access_token || access_token"
  expires_in: "data.expires_in || expires_in"
  inject: {in: header, name: Authorization, format: "Bearer {token}"}
  relogin_when: {status: [401]}
envelope: {result: data, error: [meta.message, message]}
retry: {max_attempts: 2, backoff: {initial: 0.05, multiplier: 2, max: 0.1, jitter: false}, deadline: 2}
pagination: {kind: none}
""",
}

PIPELINES = """\
pipelines:
  - name: wo.create
    description: Work orders from planning, created once in the MES (looked up first)
    source: {kind: webhook, path: /wo, mode: queue, order_key: workorderNumber, idempotency_key: eventId}
    steps:
      - name: existing
        call: mes
        method: GET
        path: /api/Workorders
        query: {filter: {where: {workorderNumber: "{{ event.workorderNumber }}"}, limit: 1}}
        result: "[0]"
      - if: "existing == null"
        then:
          - name: created
            call: mes
            method: POST
            path: /api/Workorders/
            body: {workorderNumber: "{{ event.workorderNumber }}", sku: "{{ event.sku }}",
                   quantity: "{{ event.quantity }}"}
            verify:
              path: /api/Workorders
              query: {filter: {where: {workorderNumber: "{{ event.workorderNumber }}"}, limit: 1}}
              result: "[0]"
    reply: {status: 200, body: {ok: true}}
  - name: wo.check
    description: The MES's id of a work order; an unknown number is refused
    source: {kind: webhook, path: /wo-check, mode: sync, deadline: 5}
    steps:
      - name: found
        call: mes
        method: GET
        path: /api/Workorders
        query: {filter: {where: {workorderNumber: "{{ event.workorderNumber }}"}, limit: 1}}
        result: "[0]"
      - fail: "Work order {{ event.workorderNumber }} is not in the MES"
        when: "found == null"
        status: 404
    reply: {status: 200, body: {id: "{{ found.id }}"}}
  - name: nx.branches
    description: The branches NextX knows
    source: {kind: webhook, path: /branches, mode: sync, deadline: 5}
    steps:
      - {name: branches, call: nextx, method: GET, path: /api/branch/branch}
    reply: {status: 200, body: {count: "{{ branches | length }}"}}
  - name: wo.poll
    description: Work orders created in the MES
    source:
      kind: poll
      connector: mes
      path: /api/Workorders
      query: {filter: {where: {createdAt: {gte: "{{ cursor }}"}}, order: "createdAt ASC"}}
      schedule: {every: 1}
      cursor: {field: createdAt, initial: "2000-01-01T00:00:00Z"}
      key: id
      version: updatedAt
    steps:
      - set: {number: "{{ event.workorderNumber }}"}
"""


def write_root(folder: Path) -> Path:
    """The stack's config root in `folder` (its store beside it)."""
    root = folder / "root"
    (root / "connectors").mkdir(parents=True)
    (root / "mappings" / "shop").mkdir(parents=True)
    (root / "mesbridge.yaml").write_text(SETTINGS.format(store=folder / "state.db"))
    for name, text in CONNECTORS.items():
        (root / "connectors" / f"{name}.yaml").write_text(text)
    (root / "mappings" / "shop" / "pipelines.yaml").write_text(PIPELINES)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_HOP = {b"host", b"content-length", b"connection", b"transfer-encoding", b"accept-encoding"}


def prefix_proxy(upstream: str, prefix: str = PREFIX) -> Any:
    """A reverse proxy (ASGI): `prefix/...` is forwarded to `upstream/...` with the prefix stripped,
    and `X-Forwarded-Proto`; every other path is a 404. Replies come back as they are (cookies,
    redirects), so what the browser sees is what mesbridge made of the prefix."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        if path != prefix and not path.startswith(prefix + "/"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not under the proxy's prefix"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = upstream + (path[len(prefix) :] or "/")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        headers.append((b"x-forwarded-proto", b"http"))
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.request(scope["method"], target, headers=headers, content=body)
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in reply.headers.multi_items()
            if k.lower().encode() not in _HOP and k.lower() != "content-encoding"
        ]
        out.append((b"content-length", str(len(reply.content)).encode()))
        await send({"type": "http.response.start", "status": reply.status_code, "headers": out})
        await send({"type": "http.response.body", "body": reply.content})

    return app


@dataclass
class Stack:
    """The running console: URLs, the simulators, the store and the service's log."""

    engine: str
    """mesbridge itself (webhooks go here, without the prefix)."""
    public: str
    """The proxy's URL of mesbridge, prefix included: what a browser opens."""
    sims: dict[str, str]
    simulators: dict[str, Any]
    store_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def page(self, path: str = "") -> str:
        """A console page's URL behind the proxy (`/events`, `/dead-letters`, "" for the overview)."""
        return f"{self.public}/console{path}"

    def post_event(self, route: str, event: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.engine}{route}?token={WEBHOOK_TOKEN}", json=event, timeout=10)

    def faults(self, name: str, **faults: Any) -> None:
        """Replace a simulator's faults (none given: all off)."""
        httpx.put(f"{self.sims[name]}/_admin/faults", json=faults, timeout=5).raise_for_status()

    def workorders(self, prefix: str = "") -> list[str]:
        records = self.simulators["nextplus"].workorders.values()
        return [w["workorderNumber"] for w in records if str(w["workorderNumber"]).startswith(prefix)]

    def dead_letters(self) -> list[DeadLetter]:
        async def read() -> list[DeadLetter]:
            store = open_store(self.store_url)
            try:
                await store.migrate()
                return await store.list_dead(None, 1000)
            finally:
                await store.close()

        # in a thread of its own: Playwright's sync API may hold an event loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, read()).result()

    def wait_dead(self, event_ids: set[str], timeout: float = 15.0) -> None:
        """Wait until each of `event_ids` is a dead letter (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if event_ids <= {dead.id for dead in self.dead_letters()}:
                return
            time.sleep(0.1)
        raise AssertionError(f"not dead-lettered within {timeout} s: {event_ids}\n{self.tail()}")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


def environ(sims: dict[str, str], users: str) -> dict[str, str]:
    return {
        **os.environ,
        "NEXTPLUS_URL": sims["nextplus"],
        "NEXTX_URL": sims["nextx"],
        "MESBRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "MESBRIDGE_CONSOLE_USERS": users,
        "MESBRIDGE_CONSOLE_SECRET": SECRET,
        "PYTHONPATH": str(REPO),
    }


@contextlib.contextmanager
def console_stack(folder: Path, *, prefix: str = PREFIX) -> Iterator[Stack]:
    """Simulators, `mesbridge run --root-path PREFIX` with the console on, and the proxy in front."""
    apps = {"nextplus": nextplus.create_app(size=3, seed=4), "nextx": nextx.create_app(size=3, seed=4)}
    with contextlib.ExitStack() as running:
        sims = {name: running.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        root = write_root(folder)
        port = free_port()
        command = (
            [str(MESBRIDGE), "run"] if MESBRIDGE.exists() else [sys.executable, "-m", "engine.cli", "run"]
        )
        command += [
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-reload",
            "--root-path",
            prefix,
        ]
        log = folder / "mesbridge.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                cwd=folder,
                env=environ(sims, f"{USER}:{hash_password(PASSWORD)}"),
                stdout=out,
                stderr=out,
            )
        running.callback(_stop, process)
        engine = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mesbridge run exited: {log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{engine}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mesbridge run did not become ready: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        proxy = running.enter_context(serve_in_thread(prefix_proxy(engine, prefix)))
        yield Stack(
            engine=engine,
            public=proxy + prefix,
            sims=sims,
            simulators={name: app.state.simulator for name, app in apps.items()},
            store_url=f"sqlite:///{folder / 'state.db'}",
            log=log,
            process=process,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
