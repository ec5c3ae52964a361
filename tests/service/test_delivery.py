"""Durable delivery over real HTTP: outages, token expiry, throttling, business errors, polling."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.store import open_store
from sandbox import priority
from sandbox.priority import PAT
from sandbox.serve import serve_in_thread
from tests.connectors.test_transport import TLS, tls_server

from .conftest import CONNECTORS, Sims, running, url, wait_for, write_root


def _event(number: str, **extra: object) -> dict[str, object]:
    return {"eventId": f"ev-{number}", "workorderNumber": number, "sku": "SKU-1", "quantity": 2, **extra}


async def _dead(host: object) -> list[object]:
    return await host.store.list_dead()  # type: ignore[attr-defined]


async def test_erp_outage_mid_stream_loses_nothing(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        numbers = [f"OUT-{i:03d}" for i in range(30)]
        for index, number in enumerate(numbers):
            if index == 10:
                sims.faults("nextplus", down=True)
            response = await client.post(url(host.url, "/wo"), json=_event(number))
            assert response.status_code == 202, response.text
            assert response.json()["accepted"] is True
        await asyncio.sleep(1.0)  # workers meet the outage and schedule retries
        assert len(sims.workorders("OUT-")) < 30
        sims.faults("nextplus", down=False)
        assert await wait_for(lambda: len(sims.workorders("OUT-")) == 30, 20), sims.workorders("OUT-")
        assert sorted(sims.workorders("OUT-")) == numbers  # each exactly once
        assert await _dead(host) == []
        assert host.service is not None
        assert host.service.metrics.value("mesbridge_retries_total", pipeline="wo.create") > 0

        async def drained() -> bool:
            return (await client.get(f"{host.url}/status")).json()["queue_depth"] == 0

        assert await wait_for(drained, 10)


async def test_repeated_event_is_accepted_once(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        first = await client.post(url(host.url, "/wo"), json=_event("DUP-1"))
        second = await client.post(url(host.url, "/wo"), json=_event("DUP-1"))
        assert first.status_code == second.status_code == 202
        assert first.json()["eventId"] == second.json()["eventId"] == "wo.create:ev-DUP-1"
        assert await wait_for(lambda: sims.workorders("DUP-") == ["DUP-1"], 10)
        await asyncio.sleep(0.3)
        creates = [
            c for c in sims.sims["nextplus"].calls if c["method"] == "POST" and "Workorders" in c["path"]
        ]
        assert len(creates) == 1
        scraped = (await client.get(f"{host.url}/metrics")).text
        assert 'mesbridge_events_total{outcome="accepted",pipeline="wo.create"} 1.0' in scraped
        assert 'mesbridge_events_total{outcome="duplicate",pipeline="wo.create"} 1.0' in scraped


async def test_a_different_event_under_a_queued_idempotency_key_is_refused(
    tmp_path: Path, sims: Sims
) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        first = await client.post(url(host.url, "/wo"), json=_event("KEY-1"))
        assert first.status_code == 202, first.text
        other = await client.post(url(host.url, "/wo"), json={**_event("KEY-2"), "eventId": "ev-KEY-1"})
        assert other.status_code == 422, other.text
        assert other.json()["message"] == (
            'a different event had the idempotency key "ev-KEY-1" already; this event was not queued. '
            "Each event needs a key of its own (idempotency_key: eventId)"
        )
        assert await wait_for(lambda: sims.workorders("KEY-") == ["KEY-1"], 10)
        later = await client.post(url(host.url, "/wo"), json={**_event("KEY-3"), "eventId": "ev-KEY-1"})
        assert later.status_code == 422  # delivered since: still not the same event
        assert (await client.post(url(host.url, "/wo"), json=_event("KEY-1"))).status_code == 202
        await asyncio.sleep(0.3)
        assert sims.workorders("KEY-") == ["KEY-1"]
        assert host.service is not None
        assert (
            host.service.metrics.value("mesbridge_events_total", pipeline="wo.create", outcome="rejected")
            == 2
        )


async def test_token_expiry_mid_stream_fails_no_event(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    sims.faults("nextplus", token_ttl=1)
    sims.faults("nextup", token_ttl=0.6)
    sims.faults("nextx", token_ttl=0.6)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        for index in range(12):
            for route, body in (
                ("/wo", _event(f"TOK-{index:02d}")),
                ("/nu", {"n": index}),
                ("/nx", {"n": index}),
            ):
                response = await client.post(url(host.url, route), json=body)
                assert response.status_code == 202, response.text
            await asyncio.sleep(0.25)
        assert await wait_for(lambda: len(sims.workorders("TOK-")) == 12, 15)

        async def drained() -> bool:
            return not await host.store.queue_depth()  # type: ignore[union-attr]

        assert await wait_for(drained, 15)
        assert await _dead(host) == []
        metrics = host.service.metrics  # type: ignore[union-attr]
        assert metrics.value("mesbridge_events_total", pipeline="nu.articles", outcome="delivered") == 12
        assert metrics.value("mesbridge_events_total", pipeline="nx.branches", outcome="delivered") == 12
        assert metrics.value("mesbridge_retries_total", pipeline="nu.articles") == 0
    logins = {
        "nextplus": [c for c in sims.sims["nextplus"].calls if c["path"].endswith("/login")],
        "nextup": [
            c
            for c in sims.sims["nextup"].calls
            if isinstance(c["body"], dict) and c["body"].get("Method") == "GetAuthenticationToken"
        ],
        "nextx": [c for c in sims.sims["nextx"].calls if c["path"] == "/api/auth/token"],
    }
    for name, calls in logins.items():
        assert len(calls) >= 2, f"{name} never had to log in again"
    # each system said the token was dead in its own way, and no event failed for it
    assert any(c["status"] == 401 for c in sims.sims["nextplus"].calls)
    assert any(c["status"] == 401 for c in sims.sims["nextx"].calls)


async def test_throttled_erp_retry_after_is_honoured(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        sims.faults("nextplus", throttle=1, throttle_window=4)
        response = await client.post(url(host.url, "/wo"), json=_event("THR-1"))
        assert response.status_code == 202

        def throttled() -> list[dict[str, object]]:
            return [c for c in sims.sims["nextplus"].calls if c["status"] == 429]

        assert await wait_for(lambda: throttled(), 5)
        calls_at_429 = len(sims.sims["nextplus"].calls)
        await asyncio.sleep(1.5)
        # Retry-After (a few seconds here) is honoured: no call hammers the throttled system meanwhile
        assert len(sims.sims["nextplus"].calls) == calls_at_429
        assert await _dead(host) == []
        assert await host.store.queue_depth() == {"wo.create": 1}  # type: ignore[union-attr]
        assert sims.workorders("THR-") == []
        # once the system accepts calls again, the queued event is delivered, without a dead letter
        sims.faults("nextplus")
        assert await wait_for(lambda: sims.workorders("THR-"), 15), "not delivered after the throttle window"
        assert await _dead(host) == []


async def test_an_absurd_retry_after_schedules_a_retry_not_a_crash(
    tmp_path: Path, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    """A throttle answering Retry-After: 1e12 (31,700 years) is waited out for a day at most."""
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        sims.faults("nextplus", throttle=1, throttle_window=1e12)
        response = await client.post(url(host.url, "/wo"), json=_event("RA-1"))
        assert response.status_code == 202
        assert host.service is not None
        assert await wait_for(
            lambda: host.service.metrics.value("mesbridge_retries_total", pipeline="wo.create") > 0, 10
        )
        assert await host.store.queue_depth() == {"wo.create": 1}  # type: ignore[union-attr]
        assert await _dead(host) == []
    assert not [r for r in caplog.records if "crashed" in r.getMessage()]


async def test_business_error_goes_to_dead_letters_at_once(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url(host.url, "/wo"), json=_event("BAD-1", sku=None))
        assert response.status_code == 202
        ok = await client.post(url(host.url, "/wo"), json=_event("GOOD-1"))
        assert ok.status_code == 202

        async def one_dead() -> bool:
            return len(await _dead(host)) == 1

        assert await wait_for(one_dead, 10)
        (dead,) = await _dead(host)
        assert dead.pipeline == "wo.create"  # type: ignore[attr-defined]
        assert len(dead.attempts) == 1  # type: ignore[attr-defined]
        assert "sku" in dead.error  # type: ignore[attr-defined]
        creates = [
            c
            for c in sims.sims["nextplus"].calls
            if c["method"] == "POST" and c["body"] and c["body"].get("workorderNumber") == "BAD-1"
        ]
        assert len(creates) == 1  # never retried
        assert await wait_for(lambda: sims.workorders("GOOD-") == ["GOOD-1"], 10)
        metrics = host.service.metrics  # type: ignore[union-attr]
        assert metrics.value("mesbridge_dead_letters_total", pipeline="wo.create") == 1
        text = (await client.get(f"{host.url}/metrics")).text
        assert 'mesbridge_dead_letters_total{pipeline="wo.create"} 1.0' in text
        assert "mesbridge_erp_call_seconds_bucket" in text


async def test_a_failed_poll_round_shows_in_status_and_metrics(tmp_path: Path, sims: Sims) -> None:
    """An operator watching /status or the metrics, not the log, sees the ERP refuse the listing."""
    root = write_root(tmp_path, poll=True)
    sims.faults("nextplus", down=True)
    async with running(root, sims) as host, httpx.AsyncClient(timeout=10) as client:
        metrics = host.service.metrics  # type: ignore[union-attr]

        def rounds(result: str) -> float:
            return metrics.value("mesbridge_poll_rounds_total", pipeline="wo.poll", result=result)

        async def last_poll() -> dict[str, object] | None:
            status = (await client.get(f"{host.url}/status")).json()
            return next(p for p in status["pipelines"] if p["name"] == "wo.poll")["last_poll"]

        assert await wait_for(lambda: rounds("failed") >= 1, 10)
        failed = await last_poll()
        assert failed is not None and "503" in str(failed["error"]), failed
        assert failed["new"] == 0
        sims.faults("nextplus", down=False)
        assert await wait_for(lambda: rounds("ok") >= 1, 10)
        assert (await last_poll() or {})["error"] is None


async def test_a_cursor_field_no_record_has_is_warned_of(
    tmp_path: Path, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt cursor field leaves the cursor where it was, round after round: the log says so."""
    root = write_root(tmp_path, poll=True)
    poll = root / "mappings" / "test" / "poll.yaml"
    poll.write_text(poll.read_text().replace("field: createdAt,", "field: createdAtt,"))
    caplog.set_level(logging.WARNING, logger="mesbridge.poller")
    async with running(root, sims) as host:
        poller = host.pollers.running["wo.poll"]  # type: ignore[union-attr]
        assert await wait_for(lambda: poller.rounds >= 1, 10)
        assert await host.store.get_cursor("wo.poll") is None  # type: ignore[union-attr]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("none with a value at the cursor field 'createdAtt'" in m for m in warned), warned


SELLS_POLL = """\
pipelines:
  - name: nx.sells
    source:
      kind: poll
      connector: sells
      path: /api/sell/sell
      query: {branch_id: 1, from_date: "{{ cursor }}"}
      schedule: {every: 0.2}
      cursor: {field: transaction_date, initial: "2000-01-01", format: "%Y-%m-%d"}
      key: id
      overlap: 604800
    steps:
      - set: {shipping: "{{ event.shipping_status }}"}
"""


async def test_a_sell_edited_and_edited_back_is_delivered_each_time(tmp_path: Path, sims: Sims) -> None:
    """NextX's sell list has no change date: a sell's version is the hash of its row, re-read for a
    week. A sell shipped and then set back to what it was returns to a version polled before; that is
    a change too, and the last state delivered is the sell as it is."""
    root = write_root(tmp_path)
    (root / "mappings" / "test" / "sells.yaml").write_text(SELLS_POLL)
    sells_connector = CONNECTORS["nextx"].replace("{result: data, error:", "{error:")  # a bare list
    (root / "connectors" / "sells.yaml").write_text(sells_connector)
    sells = sims.sims["nextx"].store.sells
    sell = sells[min(sells)]
    before = sell["shipping_status"]
    store_path = tmp_path / "state.db"

    def delivered() -> list[tuple[str, str]]:
        """(event id, shipping status) of the sell's deliveries, in queue order."""
        with sqlite3.connect(store_path) as conn:
            rows = conn.execute(
                "SELECT event_id, payload FROM jobs WHERE pipeline = 'nx.sells' AND key = ? "
                "AND state = 'done' ORDER BY seq",
                (str(sell["id"]),),
            ).fetchall()
        return [(event_id, json.loads(payload)["event"]["shipping_status"]) for event_id, payload in rows]

    async with running(root, sims) as host:
        poller = host.pollers.running["nx.sells"]  # type: ignore[union-attr]
        assert await wait_for(lambda: len(delivered()) == 1, 10), delivered()
        sell["shipping_status"] = "delivered"
        assert await wait_for(lambda: len(delivered()) == 2, 10), delivered()
        sell["shipping_status"] = before
        assert await wait_for(lambda: len(delivered()) == 3, 10), delivered()
        rounds = poller.rounds
        assert await wait_for(lambda: poller.rounds >= rounds + 3, 10)  # re-read, unchanged, not again
    assert [status for _, status in delivered()] == [before, "delivered", before]
    first, _, returned = (event_id for event_id, _ in delivered())
    assert returned.startswith(first + "@")


async def test_poller_enqueues_each_record_once(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path, poll=True)
    seeded = len(sims.sims["nextplus"].workorders)
    async with running(root, sims) as host:
        poller = host.pollers.running["wo.poll"]  # type: ignore[union-attr]
        assert await wait_for(lambda: poller.rounds >= 3, 10)
        metrics = host.service.metrics  # type: ignore[union-attr]
        assert metrics.value("mesbridge_polled_records_total", pipeline="wo.poll", result="new") == seeded
        assert metrics.value("mesbridge_polled_records_total", pipeline="wo.poll", result="seen") >= seeded

        async def delivered() -> bool:
            return metrics.value("mesbridge_events_total", pipeline="wo.poll", outcome="delivered") == seeded

        assert await wait_for(delivered, 10)
        assert await host.store.get_cursor("wo.poll") is not None  # type: ignore[union-attr]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert await store.queue_depth() == {}
    finally:
        await store.close()


PRIORITY_POLL = """\
pipelines:
  - name: pr.poll
    source:
      kind: poll
      connector: priority
      path: /SERIAL
      query: {$filter: "UDATE gt {{ cursor | odata_date }}", $orderby: UDATE, $select: "SERIALNAME,QUANT,UDATE"}
      schedule: {every: 0.3}
      cursor: {field: UDATE, initial: "2000-01-01T00:00:00+00:00"}
      key: SERIALNAME
      version: UDATE
    steps:
      - set: {number: "{{ event.SERIALNAME }}"}
"""
PRIORITY = """\
base_url: ${PRIORITY_URL}
auth: {kind: basic, username: 7F3C2A9B1D4E4F6A8B0C2D4E6F8A0B1C, password: PAT}
pagination: {kind: offset, page_size: 5, items: value}
"""


async def test_a_listing_that_changes_while_it_is_paged_loses_no_record(tmp_path: Path, sims: Sims) -> None:
    """Between the first page and the second, an early work order changes: it moves to the end of the
    listing (ordered by UDATE), and the order behind the first page moves into it. Offset paging alone
    skips that order, and the cursor then passes it for good."""
    erp = priority.create_app(size=25, seed=3)
    simulator = erp.state.simulator
    pages = 0

    async def changing(scope: Any, receive: Any, send: Any) -> None:
        nonlocal pages
        if scope["type"] == "http" and b"skip" in scope["query_string"]:  # a page the poller asks for
            pages += 1
            if pages == 2:
                orders = simulator.store.tables["SERIAL"]
                early = sorted(orders, key=lambda order: order["UDATE"])[2]
                simulator.update("SERIAL", orders, early, {"QUANT": early["QUANT"] + 1}, None)
        await erp(scope, receive, send)

    root = write_root(tmp_path)
    (root / "connectors" / "priority.yaml").write_text(PRIORITY)
    (root / "mappings" / "test" / "priority.yaml").write_text(PRIORITY_POLL)
    with serve_in_thread(changing) as erp_url:
        sims.urls["priority"] = f"{erp_url}/odata/Priority/tabula.ini/demo"
        async with running(root, sims) as host, httpx.AsyncClient(auth=(PAT, "PAT")) as client:
            store = host.store
            assert store is not None

            async def every_order_read_at_its_version() -> bool:
                listing = await client.get(f"{sims.urls['priority']}/SERIAL", params={"$top": 100})
                orders = listing.json()["value"]
                assert len(orders) == 25
                seen = [await store.is_seen("pr.poll", o["SERIALNAME"], str(o["UDATE"])) for o in orders]
                return all(seen)

            assert await wait_for(every_order_read_at_its_version, 10), "a work order was never read"
            assert pages >= 3


SECURE = """\
pipelines:
  - name: tls.queue
    source: {kind: webhook, path: /tls-queue, mode: queue, idempotency_key: id}
    steps:
      - {name: sent, call: secure, method: POST, path: /records, body: {id: "{{ event.id }}"}}
  - name: tls.sync
    source: {kind: webhook, path: /tls-sync, mode: sync, deadline: 10, idempotency_key: id}
    steps:
      - {name: sent, call: secure, method: POST, path: /records, body: {id: "{{ event.id }}"}}
    reply: {body: {ok: true}}
"""


async def test_a_refused_tls_certificate_fails_at_once_and_replays_once_trusted(
    tmp_path: Path, sims: Sims
) -> None:
    """An ERP whose certificate a private CA signed: not retried until the deadline, not dead-lettered
    after 40 deliveries, but refused at once as not sent, saying what to set; after the fix the sync
    caller's repeat runs and the dead letter is replayed."""
    root = write_root(tmp_path)
    (root / "mappings" / "test" / "secure.yaml").write_text(SECURE)
    connector = root / "connectors" / "secure.yaml"
    received: list[str] = []
    with tls_server(received=received) as base:
        retry = "retry: {max_attempts: 5, backoff: {initial: 0.5, jitter: false}, deadline: 8}\n"
        connector.write_text(f"base_url: {base}\n{retry}")
        async with running(root, sims, reload=True) as host, httpx.AsyncClient(timeout=20) as client:
            store, service = host.store, host.service
            assert store is not None and service is not None
            said = (
                "cannot reach secure: the TLS certificate of 127.0.0.1 was refused: unable to get local "
                "issuer certificate. Nothing was sent, and it is not retried: a certificate a CA of your "
                "own signed needs tls_ca_file (a PEM file of that CA) in connector secure"
            )
            sync = await client.post(url(host.url, "/tls-sync"), json={"id": "S-1"})
            assert sync.status_code == 502 and sync.json()["message"].startswith(said), sync.text
            assert sync.elapsed.total_seconds() < 2  # once, not retried for the 8 s deadline
            queued = await client.post(url(host.url, "/tls-queue"), json={"id": "Q-1"})
            assert queued.status_code == 202

            async def dead() -> list[Any]:
                return await store.list_dead()

            assert await wait_for(dead, 5)
            [letter] = await dead()
            assert (letter.id, letter.kind, len(letter.attempts)) == ("tls.queue:Q-1", "not_sent", 1)
            assert letter.error.startswith(said) and received == []
            assert service.metrics.value("mesbridge_retries_total", pipeline="tls.queue") == 0

            version = service.generation.version
            connector.write_text(f"base_url: {base}\ntls_ca_file: {TLS / 'ca.pem'}\n{retry}")
            assert await wait_for(lambda: service.generation.version != version, 10)
            again = await client.post(url(host.url, "/tls-sync"), json={"id": "S-1"})
            assert again.status_code == 200 and again.json() == {"ok": True}  # the failure was not kept
            assert (await service.replay_dead("tls.queue:Q-1")).replayed
            assert await wait_for(lambda: len(received) == 2, 10), received


async def test_a_job_claimed_just_before_a_reload_took_its_pipeline_away_stays_queued(
    tmp_path: Path, sims: Sims
) -> None:
    """A worker claims by the config it serves, then a reload drops the pipeline before the job runs: the
    event is left queued for a replica that serves it, as a pipeline's events no replica serves are,
    not moved to the dead letters as if its delivery had failed."""
    async with running(write_root(tmp_path), sims) as host:
        store = host.store
        await store.enqueue("wo.retired", "K1", {"event": {"n": 1}}, event_id="wo.retired:1")
        [job] = await store.claim("w-before-reload", limit=1, lease_seconds=30, pipelines={"wo.retired"})
        assert host.workers is not None
        await host.workers.deliver(job)
        assert await store.list_dead() == []
        [queued] = await store.list_queued()
        assert queued.id == "wo.retired:1" and not queued.leased
        assert "is not in config version" in queued.history[-1].error


async def test_records_that_share_a_key_are_not_delivered_again_every_round(
    tmp_path: Path, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    """A `key` that names no single record (here every work order has the same one) reads one key at
    several versions each round. Taken at face value, each would be 'back at an earlier version' every
    round and delivered forever; the first read of a key in a round is taken, and the log says why."""
    root = write_root(tmp_path, poll=True)
    poll = root / "mappings" / "test" / "poll.yaml"
    text = poll.read_text().replace("key: id", "key: \"'same'\"").replace("version: updatedAt", "version: id")
    poll.write_text(text)
    caplog.set_level(logging.WARNING, logger="mesbridge.poller")
    async with running(root, sims) as host:
        poller = host.pollers.running["wo.poll"]  # type: ignore[union-attr]
        metrics = host.service.metrics  # type: ignore[union-attr]

        def new() -> float:
            return metrics.value("mesbridge_polled_records_total", pipeline="wo.poll", result="new")

        # as the cursor moves, the key's first read may be another record once: then it stays put
        assert await wait_for(lambda: poller.rounds >= 4, 10)
        settled, rounds = new(), poller.rounds
        assert await wait_for(lambda: poller.rounds >= rounds + 4, 10)
        assert new() == settled <= 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 key(s) read at two versions in one round ('same' at" in m for m in warned), warned
    assert any("`key` does not name one record" in m for m in warned)


async def test_a_round_that_lost_its_lease_queues_nothing_more(tmp_path: Path, sims: Sims) -> None:
    """Another replica took the lease while this round read the listing: what this round read is not
    queued after what the other replica's round reads, and the cursor stays where it was."""
    root = write_root(tmp_path, poll=True)
    async with running(root, sims) as host:
        store = host.store
        assert store is not None
        poller = host.pollers.running["wo.poll"]  # type: ignore[union-attr]
        assert await wait_for(lambda: poller.rounds >= 1, 10)
        cursor = await store.get_cursor("wo.poll")
        depth = await store.queue_depth()
        sims.sims["nextplus"].workorders["new-1"] = {
            **next(iter(sims.sims["nextplus"].workorders.values())),
            "id": "new-1",
            "workorderNumber": "LATE-1",
            "createdAt": "2099-01-01T00:00:00.000Z",
            "updatedAt": "2099-01-01T00:00:00.000Z",
        }
        real = store.acquire_lease
        calls = 0

        async def taken_during_the_round(name: str, holder: str, ttl: float) -> bool:
            nonlocal calls
            calls += 1
            return calls == 1 and await real(name, holder, ttl)  # the round starts, then it is gone

        store.acquire_lease = taken_during_the_round  # type: ignore[method-assign]
        poller.trigger()
        assert await wait_for(lambda: calls >= 2, 5)
        await asyncio.sleep(0.2)
        assert await store.queue_depth() == depth
        assert await store.get_cursor("wo.poll") == cursor
        last = host.service.activity.rounds["wo.poll"]  # type: ignore[union-attr]
        assert last.error is not None and "passed to another replica" in last.error
