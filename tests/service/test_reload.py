"""Hot reload under load: an invalid edit is reported and the old config keeps serving."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from .conftest import Sims, running, url, wait_for, write_root


async def test_invalid_reload_under_load_keeps_serving(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    mapping = root / "mappings" / "test" / "workorders.yaml"
    original = mapping.read_text()
    async with running(root, sims, reload=True) as host, httpx.AsyncClient(timeout=10) as client:
        service = host.service
        assert service is not None
        version = service.generation.version
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:
            index = 0
            while not stop.is_set():
                index += 1
                event = {"workorderNumber": f"RL-{index:04d}", "sku": "S", "quantity": 1}
                response = await client.post(url(host.url, "/wo-sync"), json=event)
                statuses.append(response.status_code)

        traffic = asyncio.create_task(load())
        await asyncio.sleep(0.3)
        mapping.write_text(
            original.replace("call: mes\n        method: POST", "call: mess\n        method: POST")
        )
        assert await wait_for(lambda: service.metrics.reload_counts().get("invalid", 0) >= 1, 10)
        await asyncio.sleep(0.3)
        assert service.generation.version == version
        (root / "mappings" / "test" / "extra.yaml").write_text(
            "pipelines:\n  - name: extra.ping\n    source: {kind: webhook, path: /ping}\n"
            "    reply: {status: 200, body: {pong: true}}\n"
        )
        mapping.write_text(original)
        assert await wait_for(lambda: service.generation.version != version, 10)
        await asyncio.sleep(0.3)
        stop.set()
        await traffic
        assert len(statuses) > 10
        assert set(statuses) == {201}, statuses
        ping = await client.post(url(host.url, "/ping"), json={})
        assert ping.json() == {"pong": True}
        status = (await client.get(f"{host.url}/status")).json()
        assert status["version"] == service.generation.version
        assert status["reloads"]["invalid"] >= 1 and status["reloads"]["applied"] >= 1
        last = status["last_reload"]
        assert last["version"] == status["version"] and last["seconds"] >= 0
        assert last["result"] in ("applied", "unchanged")
        assert "extra.ping" in [p["name"] for p in status["pipelines"]]


async def test_schema_only_edit_is_applied(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims, reload=True) as host, httpx.AsyncClient(timeout=10) as client:
        service = host.service
        assert service is not None
        version = service.generation.version
        event = {"workorderNumber": "SC-1", "sku": "S", "quantity": 1}
        schema = json.loads((root / "schemas" / "wo.json").read_text())
        schema["properties"]["sku"]["minLength"] = 3
        (root / "schemas" / "wo.json").write_text(json.dumps(schema))
        assert await wait_for(lambda: service.generation.version != version, 10)
        refused = await client.post(url(host.url, "/wo-sync"), json=event)
        assert refused.status_code == 422 and "sku is shorter than 3" in refused.json()["message"]
