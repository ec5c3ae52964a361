"""The end-to-end stack itself: simulators up, engine serving, webhook auth enforced."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import WEBHOOK_TOKEN, Stack


def test_engine_serves_health_and_refuses_unknown_routes(stack: Stack) -> None:
    health = httpx.get(f"{stack.engine_url}/healthz")
    assert health.status_code == 200
    assert health.json()["version"] == stack.project.version
    missing = httpx.post(f"{stack.engine_url}/no/such/route?token={WEBHOOK_TOKEN}", json={})
    assert missing.status_code == 404
    assert "no pipeline" in missing.json()["message"]
