"""The caller's side of webhooks over real HTTP: refusals are 4xx with a message, never 5xx."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import Sims, running, url, write_root

GOOD = {"workorderNumber": "IN-1", "sku": "SKU-1", "quantity": 1}


async def test_bad_requests_get_a_clear_4xx(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        cases = [
            (
                "malformed",
                dict(content=b'{"workorderNumber": ', headers={"content-type": "application/json"}),
                "/wo-sync",
                400,
                "malformed JSON",
            ),
            (
                "empty",
                dict(content=b"", headers={"content-type": "application/json"}),
                "/wo-sync",
                400,
                "empty",
            ),
            ("oversized", dict(json={"blob": "x" * 5000}), "/wo-sync", 413, "over 4096 bytes"),
            (
                "wrong content type",
                dict(content=b"a=1", headers={"content-type": "text/csv"}),
                "/wo-sync",
                415,
                "application/json",
            ),
            ("not an object", dict(json=[1, 2]), "/wo-sync", 422, "JSON object"),
            (
                "wrong type",
                dict(json={**GOOD, "quantity": "many"}),
                "/wo-sync",
                422,
                "quantity must be number",
            ),
            (
                "missing field",
                dict(json={"sku": "S", "quantity": 1}),
                "/wo-sync",
                422,
                "workorderNumber is required",
            ),
            (
                "not UTF-8",
                dict(content=b'{"a": "\xff"}', headers={"content-type": "application/json"}),
                "/wo-sync",
                400,
                "UTF-8",
            ),
        ]
        for name, kwargs, route, status, text in cases:
            response = await client.post(url(host.url, route), **kwargs)
            assert response.status_code == status, (name, response.text)
            assert text in response.json()["message"], (name, response.text)
        unauthenticated = await client.post(url(host.url, "/wo-sync", token=None), json=GOOD)
        assert unauthenticated.status_code == 401
        assert "shared secret" in unauthenticated.json()["message"]
        wrong = await client.post(url(host.url, "/wo-sync", token="nope"), json=GOOD)
        assert wrong.status_code == 401
        assert (await client.get(url(host.url, "/wo-sync"))).status_code == 405
        assert (await client.post(url(host.url, "/nowhere"), json=GOOD)).status_code == 404
    assert not [c for c in sims.sims["nextplus"].calls if c["method"] == "POST"]  # nothing reached the ERP


async def test_a_different_event_under_a_used_idempotency_key_is_refused(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        event = {**GOOD, "requestId": "req-1"}
        first = await client.post(url(host.url, "/wo-sync"), json=event)
        assert first.status_code == 201, first.text
        # the same event, its keys in another order: the stored reply
        again = await client.post(url(host.url, "/wo-sync"), json=dict(reversed(event.items())))
        assert again.status_code == 201 and again.json() == first.json()
        other = await client.post(url(host.url, "/wo-sync"), json={**event, "workorderNumber": "IN-9"})
        assert other.status_code == 422, other.text
        assert other.json()["message"] == (
            'a different event had the idempotency key "req-1" already; this event was not run. '
            "Each event needs a key of its own (idempotency_key: requestId)"
        )
    creates = [c for c in sims.sims["nextplus"].calls if c["method"] == "POST" and "Workorders" in c["path"]]
    assert [c["body"]["workorderNumber"] for c in creates] == [GOOD["workorderNumber"]]


async def test_a_throttled_sync_call_is_answered_503_with_the_wait(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        signed_in = await client.post(url(host.url, "/wo-sync"), json={**GOOD, "requestId": "thr-0"})
        assert signed_in.status_code == 201, signed_in.text
        sims.faults("nextplus", throttle=1, throttle_window=30)
        allowed = {**GOOD, "workorderNumber": "IN-T", "requestId": "thr-1"}
        assert (await client.post(url(host.url, "/wo-sync"), json=allowed)).status_code == 201
        throttled = await client.post(url(host.url, "/wo-sync"), json={**GOOD, "requestId": "thr-2"})
        # the ERP is there and asks to wait past the deadline: 503 and how long, not a 504 timeout
        assert throttled.status_code == 503, throttled.text
        assert 25 <= int(throttled.headers["retry-after"]) <= 30
        message = throttled.json()["message"]
        assert "HTTP 429" in message and "passes the deadline" in message, message


async def test_sync_reply_idempotency_and_deadline(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        event = {**GOOD, "requestId": "req-1"}
        first = await client.post(url(host.url, "/wo-sync"), json=event)
        assert first.status_code == 201, first.text
        again = await client.post(url(host.url, "/wo-sync"), json=event)
        assert again.status_code == 201 and again.json() == first.json()
        creates = [
            c for c in sims.sims["nextplus"].calls if c["method"] == "POST" and "Workorders" in c["path"]
        ]
        assert len(creates) == 1  # the repeat got the stored reply
        scraped = (await client.get(f"{host.url}/metrics")).text
        assert 'mesbridge_events_total{outcome="ok",pipeline="wo.sync"} 1.0' in scraped
        assert 'mesbridge_events_total{outcome="duplicate",pipeline="wo.sync"} 1.0' in scraped

        refused = await client.post(url(host.url, "/wo-sync"), json={**GOOD, "requestId": "req-2"})
        assert refused.status_code == 422  # the work order number exists already: the ERP's own message
        assert "not unique" in refused.json()["message"]

        sims.faults("nextplus", latency=3.0)
        started = time.monotonic()
        slow_event = {**GOOD, "workorderNumber": "IN-2", "requestId": "req-3"}
        slow = await client.post(url(host.url, "/wo-sync"), json=slow_event)
        elapsed = time.monotonic() - started
        # the create was sent and no reply came within the deadline: it may be saved, so the caller is
        # told the outcome is unknown, and the same event is not sent blindly again
        assert slow.status_code == 502, slow.text
        assert slow.json()["message"].startswith("outcome unknown after POST /api/Workorders/")
        assert elapsed < 2.5
        sims.faults("nextplus")
        again = await client.post(url(host.url, "/wo-sync"), json=slow_event)
        assert again.status_code == 502 and again.json() == slow.json()

        sims.faults("nextplus", down=True)
        down = await client.post(url(host.url, "/wo-sync"), json={**GOOD, "workorderNumber": "IN-3"})
        assert down.status_code >= 500 and down.status_code != 500, down.text
        assert down.json()["message"]
        sims.faults("nextplus")
        # a transient failure is not stored: the caller's retry runs again and succeeds
        retry = await client.post(url(host.url, "/wo-sync"), json={**GOOD, "workorderNumber": "IN-3"})
        assert retry.status_code == 201, retry.text
