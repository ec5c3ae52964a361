"""Several `mesbridge run` processes sharing one PostgreSQL database, over real HTTP.

Each test gets a database of its own (created and dropped here), the NextX and Next Plus simulators
served in-process on free ports, and a small config root written into `tmp_path`:

* `rep.customer`: a queue-mode webhook; each event becomes one NextX customer named after the event id
  (looked up first, so a redelivery after a crash does not create it twice). Events carry an order key.
* `rep.workorders`: polls NextX sells into Next Plus work orders (looked up first too).

Replicas are real processes (`mesbridge run`), killed with SIGKILL or stopped with SIGTERM by the tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from sandbox import nextplus, nextx
from sandbox.serve import serve_in_thread

PG_ADMIN = os.environ.get("MESBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "replica-test-token-0123456789"
MESBRIDGE = Path(sys.executable).parent / "mesbridge"

SETTINGS = """\
host: 127.0.0.1
log_level: info
log_format: json
workers: 4
shutdown_grace: 2
reload: false
poll_lease: {poll_lease}
webhook_auth: {{kind: shared_secret, in: header, name: X-Token, secret: "${{REPLICA_TOKEN}}"}}
delivery: {{lease: {lease}, max_attempts: 30, initial: 0.2, multiplier: 1.5, max: 1, poll_interval: 0.2}}
"""

NEXTX = """\
name: nextx
base_url: ${NEXTX_URL}
content_type: application/json
timeout: {connect: 2, read: 5}
auth:
  kind: oauth2_client_credentials
  token_url: /api/auth/token
  body: json
  client_id: mesbridge-demo
  client_secret: nextx-demo-secret
  scope: public.api
  token: data.access_token
  expires_in: data.expires_in
  inject: {in: header, name: Authorization, format: "Bearer {token}"}
  relogin_when: {status: [401]}
envelope: {success: null, result: "(meta && [data] || [@])[0]", error: [meta.message, message]}
retry:
  max_attempts: 3
  backoff: {initial: 0.1, multiplier: 2, max: 0.5, jitter: true}
  deadline: 5
  unapplied: [408, 429, 503]
  uncertain: [500, 502, 504]
pagination: {kind: page, page: page, size: pageLimit, first_page: 0, page_size: 100}
"""

NEXTPLUS = """\
name: nextplus
base_url: ${NEXTPLUS_URL}
content_type: application/json
timeout: {connect: 2, read: 5}
auth:
  kind: login
  request: {method: POST, path: /api/Users/login, body: {username: api, password: api-secret}}
  token: id
  expires_in: ttl
  inject: {in: header, name: Authorization, format: "{token}"}
  relogin_when: {status: [401]}
envelope: {success: null, result: null, error: [error.message, message]}
retry:
  max_attempts: 3
  backoff: {initial: 0.1, multiplier: 2, max: 0.5, jitter: true}
  deadline: 5
  unapplied: [408, 429, 503]
  uncertain: [500, 502, 504]
pagination: {kind: none}
"""

PIPELINES = """\
description: Replica tests
pipelines:
  - name: rep.customer
    description: One NextX customer per event, named after the event id
    source:
      kind: webhook
      path: /rep/customer
      mode: queue
      idempotency_key: event.id
      order_key: event.key
    steps:
      - name: found
        call: nextx
        method: GET
        path: /api/customer/customer
        query: {sttsearch: "{{ event.id }}"}
      - name: created
        when: "length(found) == `0`"
        call: nextx
        method: POST
        path: /api/customer/customer
        body: {name: "{{ event.id }}", mobile: "{{ event.key }}", type: customer, branch_id: 1}
        verify:   # a replica that takes over a dead one's job looks before it creates
          path: /api/customer/customer
          query: {sttsearch: "{{ event.id }}"}
          result: "[0]"
    reply:
      status: 200
      body: {externalId: "{{ event.id }}"}
"""

POLL_PIPELINE = """\
  - name: rep.workorders
    description: NextX sells to Next Plus work orders
    source:
      kind: poll
      connector: nextx
      path: /api/sell/sell
      query: {branch_id: 1, from_date: "{{ cursor }}"}
      schedule: {every: 0.5}
      cursor: {field: transaction_date, initial: "2000-01-01"}
      key: invoice_no
    steps:
      - name: existing
        call: nextplus
        method: GET
        path: /api/Workorders
        query: {filter: {where: {workorderNumber: "{{ event.invoice_no }}"}, limit: 1}}
      - name: created
        when: "length(existing) == `0`"
        call: nextplus
        method: POST
        path: /api/Workorders/
        body:
          workorderNumber: "{{ event.invoice_no }}"
          sku: "SELL-{{ event.id }}"
          quantity: 1
          source: NEXTX
    reply:
      status: 200
      body: {workorderNumber: "{{ event.invoice_no }}"}
"""


def write_root(path: Path, *, lease: float = 3.0, poll_lease: float = 2.0, poll: bool = False) -> Path:
    """A config root with the replica-test pipelines (the poll pipeline only when `poll`)."""
    (path / "connectors").mkdir(parents=True)
    (path / "mappings" / "rep").mkdir(parents=True)
    (path / "mesbridge.yaml").write_text(SETTINGS.format(lease=lease, poll_lease=poll_lease))
    (path / "connectors" / "nextx.yaml").write_text(NEXTX)
    (path / "connectors" / "nextplus.yaml").write_text(NEXTPLUS)
    (path / "mappings" / "rep" / "pipelines.yaml").write_text(PIPELINES + (POLL_PIPELINE if poll else ""))
    return path


def wait_for(
    condition: Callable[[], Any], timeout: float, message: Callable[[], str] | str, interval: float = 0.1
) -> Any:
    """Poll `condition` until it returns something truthy; fail with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            pytest.fail(f"after {timeout:g} s: {text}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    """One `mesbridge run` process."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def ready(self) -> bool:
        if not self.alive():
            pytest.fail(f"replica {self.name} exited with {self.process.returncode}:\n{self.tail()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(self.ready, timeout, lambda: f"replica {self.name} not ready:\n{self.tail()}", 0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, leases left behind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the drain; the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"replica {self.name} did not stop within {timeout:g} s after SIGTERM")


@dataclass
class Cluster:
    """Simulators, a database, a config root, and the replicas started on them."""

    root: Path
    store_url: str
    environ: dict[str, str]
    nextx: Any
    nextplus: Any
    logs: Path
    replicas: list[Replica] = field(default_factory=list)

    def start(self, count: int = 1, *, wait: bool = True) -> list[Replica]:
        """Start `count` replicas at once (the store URL through MESBRIDGE_STORE and --store alternately)."""
        started = []
        for _ in range(count):
            index = len(self.replicas)
            port = free_port()
            log = self.logs / f"replica-{index}.log"
            command = [str(MESBRIDGE), "run", str(self.root), "--port", str(port), "--no-reload"]
            env = {**os.environ, **self.environ}
            if index % 2:
                command += ["--store", self.store_url]
            else:
                env["MESBRIDGE_STORE"] = self.store_url
            with log.open("wb") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            replica = Replica(f"r{index}", port, log, process)
            self.replicas.append(replica)
            started.append(replica)
        if wait:
            for replica in started:
                replica.wait_ready()
        return started

    def customers(self) -> list[dict[str, Any]]:
        """NextX customers created by the tests (named `ev-…`), in creation order."""
        rows = self.nextx.store.customers.values()
        return sorted((c for c in rows if str(c["name"]).startswith("ev-")), key=lambda c: c["id"])

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.store_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def close(self) -> None:
        for replica in self.replicas:
            if replica.alive():
                replica.process.kill()
                replica.process.wait(10)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"mesbridge_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(PG_ADMIN)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_cluster(tmp_path: Path, database: str) -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(poll=False, lease=3, poll_lease=2)`: simulators, a config root and no replicas yet."""
    with contextlib.ExitStack() as stack:
        clusters: list[Cluster] = []

        def make(**options: Any) -> Cluster:
            nextx_app = nextx.create_app(size=int(options.pop("orders", 2)) * 4, seed=3)
            nextplus_app = nextplus.create_app(size=0, seed=3)
            urls = {
                "NEXTX_URL": stack.enter_context(serve_in_thread(nextx_app)),
                "NEXTPLUS_URL": stack.enter_context(serve_in_thread(nextplus_app)),
            }
            root = write_root(tmp_path / "root", **options)
            logs = tmp_path / "logs"
            logs.mkdir()
            cluster = Cluster(
                root=root,
                store_url=database,
                environ={**urls, "REPLICA_TOKEN": TOKEN},
                nextx=nextx_app.state.simulator,
                nextplus=nextplus_app.state.simulator,
                logs=logs,
            )
            clusters.append(cluster)
            return cluster

        try:
            yield make
        finally:
            for cluster in clusters:
                cluster.close()


def send(replica: Replica, client: httpx.Client, event: dict[str, Any]) -> str:
    """POST one event to a replica's queue webhook; the event id it was accepted under."""
    response = client.post(f"{replica.url}/rep/customer", json=event, headers={"X-Token": TOKEN})
    assert response.status_code == 202, f"{replica.name} answered {response.status_code}: {response.text}"
    event_id: str = response.json()["eventId"]
    return event_id
