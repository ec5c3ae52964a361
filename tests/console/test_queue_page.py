"""The console's queue page: queued events with their state, moved to the dead letters or dropped as
`mesbridge queue dead|drop` does them, never one a worker holds, each with an audit line."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.console.conftest import Console


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _audit(caplog: pytest.LogCaptureFixture) -> list[tuple[Any, ...]]:
    return [
        (r.user, r.action, r.queued_event, r.result) for r in caplog.records if hasattr(r, "queued_event")
    ]  # type: ignore[attr-defined]


async def _queue(console: Console, pipeline: str, number: str) -> str:
    event = {"eventId": f"ev-{number}", "workorderNumber": number}
    return await console.store.enqueue(pipeline, number, {"event": event}, event_id=f"{pipeline}:ev-{number}")


async def test_the_queue_lists_events_oldest_first_with_their_state_and_what_serves_them(
    console: Console,
) -> None:
    held = await _queue(console, "wo.create", "WO-1")
    waiting = await _queue(console, "wo.create", "WO-2")
    retired = await _queue(console, "wo.retired", "WO-3")
    [job] = await console.store.claim("worker-7", limit=1)
    assert job.event_id == held
    await console.login()
    page = await console.client.get(console.path("/queue"))
    assert page.status_code == 200, page.text
    text = _text(page.text)
    assert text.index(held) < text.index(waiting) < text.index(retired)
    assert "leased by worker-7 until" in text and "3 queued event(s), oldest first." in text
    assert text.count("not served here") == 1  # wo.retired: this config has no such pipeline
    assert page.text.count('action="/console/queue/drop"') == 2  # none for the event a worker holds
    only = _text((await console.client.get(console.path("/queue"), params={"pipeline": "wo.retired"})).text)
    assert retired in only and held not in only and waiting not in only
    assert 'aria-current="page">Queue' in page.text


async def test_moving_and_dropping_act_as_the_command_does_with_an_audit_line(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    moved = await _queue(console, "wo.retired", "WO-4")
    dropped = await _queue(console, "wo.retired", "WO-5")
    await console.login()
    token = await console.csrf()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        dead = await console.client.post(console.path("/queue/dead"), data={"id": moved, "csrf": token})
        drop = await console.client.post(console.path("/queue/drop"), data={"id": dropped, "csrf": token})
        again = await console.client.post(console.path("/queue/drop"), data={"id": dropped, "csrf": token})
    assert dead.status_code == 303
    assert dead.headers["location"] == "/console/queue?" + urlencode({"done": "dead-lettered", "id": moved})
    assert drop.status_code == 303 and again.status_code == 404
    assert "There is no queued event" in _text(again.text)
    assert await console.store.list_queued() == []
    [letter] = await console.store.list_dead()
    assert letter.id == moved and letter.kind == "operator"
    assert letter.error == "moved from the queue to the dead letters (by alice, console)"
    assert _audit(caplog) == [
        ("alice", "queue dead", moved, "dead-lettered"),
        ("alice", "queue drop", dropped, "dropped"),
        ("alice", "queue drop", dropped, "no such queued event"),
    ]
    done = await console.client.get(dead.headers["location"])
    assert f"{moved} was moved to the dead letters." in _text(done.text)


async def test_an_event_a_worker_holds_is_neither_moved_nor_dropped(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    held = await _queue(console, "wo.create", "WO-6")
    await console.store.claim("worker-7", limit=1)
    await console.login()
    token = await console.csrf()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        for action in ("dead", "drop"):
            reply = await console.client.post(
                console.path(f"/queue/{action}"), data={"id": held, "csrf": token}
            )
            assert reply.status_code == 409, reply.text
            assert "worker-7 holds it" in _text(reply.text) and "may be writing it to the ERP" in _text(
                reply.text
            )
    assert [event.id for event in await console.store.list_queued()] == [held]
    assert await console.store.list_dead() == []
    assert [line[3] for line in _audit(caplog)] == ["refused: a worker holds it"] * 2


async def test_an_event_whose_lease_expired_unfinished_becomes_an_uncertain_dead_letter(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    """Its worker may have died mid-write: the dead letter says it may have been applied."""
    abandoned = await _queue(console, "wo.create", "WO-7")
    await console.store.claim("worker-7", limit=1, lease_seconds=0.05)
    await asyncio.sleep(0.2)
    await console.login()
    page = _text((await console.client.get(console.path("/queue"))).text)
    assert "waiting (the lease of worker-7 expired" in page
    token = await console.csrf()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        reply = await console.client.post(console.path("/queue/dead"), data={"id": abandoned, "csrf": token})
    assert reply.status_code == 303
    [letter] = await console.store.list_dead()
    assert letter.kind == "uncertain"
    assert _audit(caplog) == [
        (
            "alice",
            "queue dead",
            abandoned,
            "dead-lettered as uncertain: the lease of worker-7 expired unfinished",
        )
    ]


async def test_a_queue_form_without_the_session_token_does_nothing(console: Console) -> None:
    event_id = await _queue(console, "wo.create", "WO-8")
    await console.login()
    for action in ("dead", "drop"):
        reply = await console.client.post(console.path(f"/queue/{action}"), data={"id": event_id})
        assert reply.status_code == 403 and "Form refused" in reply.text
    assert [event.id for event in await console.store.list_queued()] == [event_id]
    for path, status in [("/queue?limit=0", 400), ("/queue?done=exploded", 400)]:
        assert (await console.client.get(console.path(path))).status_code == status


async def test_a_refused_queue_form_is_audited_as_the_queue_action_it_was(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    """A form refused for its CSRF token was audited by the last segment of its path alone: a refused
    `/queue/drop` read `post drop`, as a refused dead-letter drop does."""
    event_id = await _queue(console, "wo.create", "WO-9")
    await console.login()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        for path in ("/queue/drop", "/queue/dead", "/dead-letters/drop"):
            reply = await console.client.post(console.path(path), data={"id": event_id, "csrf": "wrong"})
            assert reply.status_code == 403
    refused = [(r.action, r.result) for r in caplog.records if getattr(r, "result", None) == "csrf refused"]
    assert [action for action, _ in refused] == [
        "post queue drop",
        "post queue dead",
        "post dead-letters drop",
    ]
