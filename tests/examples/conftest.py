"""End-to-end fixtures for the example bindings: `mesbridge run examples/<name>` as a child process on
loopback, against the example's own simulator and the Next Plus simulator, each on a free port.

`example(name, erp_app)` starts both simulators in threads, then the service with its connectors
pointed at them through the variables the example's connectors read (`<ERP>_URL`, `NEXTPLUS_URL`),
its store in the test's folder and the webhook token set. The service polls once at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from engine.commands.dlq import dlq
from sandbox import nextplus
from sandbox.serve import serve_in_thread
from tests.service.conftest import REPO, Subprocess

TOKEN = "examples-webhook-token-0123456789"


@dataclass
class Example:
    """A running example: its service, the simulators and their URLs."""

    root: Path
    service: Subprocess
    erp: Any
    nextplus: Any
    urls: dict[str, str]
    environ: dict[str, str]

    def webhook(self, route: str) -> str:
        return f"{self.service.url}{route}?token={TOKEN}"

    def workorders(self) -> list[str]:
        """Numbers of the Next Plus work orders, one entry per record."""
        return [w["workorderNumber"] for w in list(self.nextplus.workorders.values())]

    def dead_letters(self) -> list[dict[str, Any]]:
        result = CliRunner(env=self.environ).invoke(dlq, ["list", "--root", str(self.root), "--json"])
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output))

    def drained(self) -> bool:
        return httpx.get(f"{self.service.url}/status", timeout=5).json()["queue_depth"] == 0

    def log(self) -> str:
        return self.service.log.read_text(encoding="utf-8", errors="replace")


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Callable[..., Example]]:
    """example(name, erp_app, url_variable, url_suffix="", **variables) -> a running Example, stopped
    after the test; `variables` are more environment variables for the service."""
    with contextlib.ExitStack() as stack:

        def start(
            name: str, erp_app: Starlette, url_variable: str, url_suffix: str = "", **variables: str
        ) -> Example:
            np_app = nextplus.create_app(size=0, seed=1)
            urls = {
                "erp": stack.enter_context(serve_in_thread(erp_app)),
                "nextplus": stack.enter_context(serve_in_thread(np_app)),
            }
            root = REPO / "examples" / name
            environ = {
                **{
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("ODOO_", "SERVICELAYER_", "MESBRIDGE_"))
                },
                url_variable: urls["erp"] + url_suffix,
                "NEXTPLUS_URL": urls["nextplus"],
                "MESBRIDGE_WEBHOOK_TOKEN": TOKEN,
                "MESBRIDGE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
                "MESBRIDGE_LOG_LEVEL": "info",
                **variables,
            }
            service = Subprocess(root, environ, tmp_path / "run.log")
            service.start()
            stack.callback(service.stop)
            return Example(root, service, erp_app.state.simulator, np_app.state.simulator, urls, environ)

        yield start
