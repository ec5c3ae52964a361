"""Fixtures for the service reliability tests: simulators over real HTTP and a tiny config root.

The connectors are told no token lifetime, so an expired token is met as the systems signal it (Next
Plus 401 INVALID_TOKEN, NextUp's HTTP 200 error body, NextX 401) rather than refreshed ahead.

The config root is written into `tmp_path` by each test, with connectors pointing at the Next Plus,
NextUp and NextX simulators, so these tests do not depend on the shipped bindings. The Next Plus
"ERP" write is made idempotent by the mapping itself: look the work order up by number, create it
only when absent. The simulator refuses a second work order with the same number (422), so a
duplicate delivery would surface as a dead letter, and every test asserts there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.service.server import ServiceHost
from sandbox import nextplus, nextup, nextx
from sandbox.serve import serve_in_thread

TOKEN = "service-test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]
MESBRIDGE = Path(sys.executable).with_name("mesbridge")
"""The `mesbridge` command of this interpreter's environment, as users run it."""

SETTINGS = """\
store: sqlite:///{store}
workers: 4
shutdown_grace: 5
log_level: {log_level}
webhook_auth: {{kind: shared_secret, in: query, name: token, secret: "${{MESBRIDGE_WEBHOOK_TOKEN}}"}}
max_body_bytes: 4096
delivery: {{max_attempts: 40, initial: 0.05, multiplier: 2, max: 0.4, jitter: true, lease: 3,
           deadline: 5, poll_interval: 0.1}}
"""

CONNECTORS = {
    "mes": """\
base_url: ${NEXTPLUS_URL}
auth:
  kind: login
  request: {method: POST, path: /api/Users/login, body: {username: api, password: api-secret}}
  token: id
  inject: {in: header, name: Authorization, format: "{token}"}
  relogin_when: {status: [401]}
envelope: {error: [error.message, message]}
retry: {max_attempts: 3, backoff: {initial: 0.05, multiplier: 2, max: 0.2, jitter: true}, deadline: 2}
pagination: {kind: none}
""",
    "nextup": """\
base_url: ${NEXTUP_URL}
content_type: text/plain
auth:
  kind: login
  request:
    method: POST
    path: /NextUpServices/Services/POST/
    body: {Method: GetAuthenticationToken, Params: {UserName: demo_user, Password: Demo1234, Database: "99999999"}}
  token: Result
  inject: {in: body, name: AuthenticationToken, format: "{token}"}
  relogin_when: {status: [401], body: "contains(Error || '', 'AuthenticationToken')"}
envelope: {success: Error == null, result: Result, error: [Error]}
retry: {max_attempts: 3, backoff: {initial: 0.05, multiplier: 2, max: 0.2, jitter: true}, deadline: 2}
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
  expires_in: "data.no_expiry_known"
  refresh_before: 0
  inject: {in: header, name: Authorization, format: "Bearer {token}"}
  relogin_when: {status: [401]}
envelope: {result: data, error: [meta.message, message]}
retry: {max_attempts: 3, backoff: {initial: 0.05, multiplier: 2, max: 0.2, jitter: true}, deadline: 2}
pagination: {kind: none}
""",
}

WORKORDERS = """\
pipelines:
  - name: wo.create
    description: Queued work orders, created once in Next Plus (looked up first, so redelivery is harmless)
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
            verify:         # what an uncertain create may have made: the same lookup
              path: /api/Workorders
              query: {filter: {where: {workorderNumber: "{{ event.workorderNumber }}"}, limit: 1}}
              result: "[0]"
    reply: {status: 200, body: {ok: true}}
  - name: wo.sync
    source: {kind: webhook, path: /wo-sync, mode: sync, deadline: 1.5, idempotency_key: requestId,
             schema: schemas/wo.json}
    steps:
      - name: created
        call: mes
        method: POST
        path: /api/Workorders/
        body: {workorderNumber: "{{ event.workorderNumber }}", sku: "{{ event.sku }}",
               quantity: "{{ event.quantity }}"}
    reply: {status: 201, body: {externalId: "{{ created.id }}"}}
  - name: nu.articles
    source: {kind: webhook, path: /nu, mode: queue}
    steps:
      - {name: articles, call: nextup, method: POST, path: /NextUpServices/Services/POST/,
         body: {Method: GetAllArticles, Params: {}}}
  - name: nx.branches
    source: {kind: webhook, path: /nx, mode: queue}
    steps:
      - {name: branches, call: nextx, method: GET, path: /api/branch/branch}
"""

POLL = """\
pipelines:
  - name: wo.poll
    source:
      kind: poll
      connector: mes
      path: /api/Workorders
      query: {filter: {where: {createdAt: {gte: "{{ cursor }}"}}, order: "createdAt ASC"}}
      schedule: {every: 0.3}
      cursor: {field: createdAt, initial: "2000-01-01T00:00:00Z"}
      key: id
      version: updatedAt
    steps:
      - set: {number: "{{ event.workorderNumber }}"}
"""

SCHEMA = {
    "type": "object",
    "required": ["workorderNumber", "sku", "quantity"],
    "properties": {
        "workorderNumber": {"type": "string", "minLength": 1},
        "sku": {"type": "string"},
        "quantity": {"type": "number"},
        "requestId": {"type": ["string", "null"]},
    },
}


@dataclass
class Sims:
    """Running simulators: base URLs and simulator objects."""

    urls: dict[str, str]
    sims: dict[str, Any]

    @property
    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "NEXTPLUS_URL": self.urls["nextplus"],
            "NEXTUP_URL": self.urls["nextup"],
            "NEXTX_URL": self.urls["nextx"],
            "MESBRIDGE_WEBHOOK_TOKEN": TOKEN,
            **({"PRIORITY_URL": self.urls["priority"]} if "priority" in self.urls else {}),
        }

    def faults(self, name: str, **faults: Any) -> None:
        """Replace a simulator's faults over its admin endpoint (real HTTP)."""
        response = httpx.put(f"{self.urls[name]}/_admin/faults", json=faults, timeout=5)
        response.raise_for_status()

    def workorders(self, prefix: str = "") -> list[str]:
        """Numbers of the Next Plus work orders starting with `prefix`, one entry per record."""
        records = self.sims["nextplus"].workorders.values()
        return [w["workorderNumber"] for w in records if str(w["workorderNumber"]).startswith(prefix)]


@pytest.fixture
def sims() -> Iterator[Sims]:
    apps = {
        "nextplus": nextplus.create_app(size=3, seed=2),
        "nextup": nextup.create_app(size=3, seed=2),
        "nextx": nextx.create_app(size=3, seed=2),
    }
    with contextlib.ExitStack() as servers:
        urls = {name: servers.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        yield Sims(urls, {name: app.state.simulator for name, app in apps.items()})


def write_root(
    path: Path, *, poll: bool = False, log_level: str = "info", settings: dict[str, Any] | None = None
) -> Path:
    """A config root in `path`: settings, three connectors, the test pipelines and their schema.

    `settings` replaces or adds top-level keys of `mesbridge.yaml` (values written as JSON, which is YAML).
    """
    root = path / "root"
    (root / "connectors").mkdir(parents=True)
    (root / "mappings" / "test").mkdir(parents=True)
    (root / "schemas").mkdir()
    lines = SETTINGS.format(store=path / "state.db", log_level=log_level).splitlines()
    for key, value in (settings or {}).items():
        lines = [line for line in lines if not line.startswith(f"{key}:")] + [f"{key}: {json.dumps(value)}"]
    (root / "mesbridge.yaml").write_text("\n".join(lines) + "\n")
    for name, text in CONNECTORS.items():
        (root / "connectors" / f"{name}.yaml").write_text(text)
    (root / "mappings" / "test" / "workorders.yaml").write_text(WORKORDERS)
    if poll:
        (root / "mappings" / "test" / "poll.yaml").write_text(POLL)
    (root / "schemas" / "wo.json").write_text(json.dumps(SCHEMA))
    return root


@contextlib.asynccontextmanager
async def running(root: Path, sims: Sims, *, reload: bool = False) -> AsyncIterator[ServiceHost]:
    """The service for `root`, in this event loop, on a free loopback port."""
    host = ServiceHost(root, port=0, host="127.0.0.1", environ=sims.environ, reload=reload)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def url(base: str, route: str, token: str | None = TOKEN) -> str:
    return f"{base}{route}" + (f"?token={token}" if token else "")


async def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` (sync or async) until true or `timeout` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(step)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Subprocess:
    """`mesbridge run ROOT` as a child process on a chosen loopback port.

    `root_arg` is the ROOT argument as typed (None: omitted) and `cwd` the folder it runs in, so
    `Subprocess(root, env, log, cwd=root, root_arg=".")` is `cd root && mesbridge run .`.
    """

    def __init__(
        self,
        root: Path,
        environ: dict[str, str],
        log: Path,
        *,
        cwd: Path = REPO,
        root_arg: str | None = "",
        reload: bool = False,
    ) -> None:
        self.root, self.environ, self.log = root, environ, log
        self.cwd = cwd
        self.root_arg = str(root) if root_arg == "" else root_arg
        self.reload = reload
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with self.log.open("ab") as out:
            self.process = self._spawn(out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mesbridge run exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"mesbridge run did not become ready: {self.log.read_text()[-2000:]}")

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        command = (
            [str(MESBRIDGE), "run"] if MESBRIDGE.exists() else [sys.executable, "-m", "engine.cli", "run"]
        )
        command += [] if self.root_arg is None else [self.root_arg]
        command += ["--port", str(self.port), "--host", "127.0.0.1"]
        command += [] if self.reload else ["--no-reload"]
        environ = {**self.environ, "PYTHONPATH": str(REPO)}  # `python -m engine.cli` from any cwd
        return subprocess.Popen(command, cwd=self.cwd, env=environ, stdout=out, stderr=out)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines skipped)."""
        records = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
