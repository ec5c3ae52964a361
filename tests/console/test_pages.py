"""What the console shows and does: the overview, events and traces, dead letters, bad input, audit."""

from __future__ import annotations

import html
import logging
import re

import pytest

from engine.connectors.connector import CallRecord
from engine.redaction import Redactor
from tests.console.conftest import Console, add_dead, add_trace, trace_document
from tests.console.stack import SECRET, WEBHOOK_TOKEN


def _text(page: str) -> str:
    """The page's text, tags left out, entities decoded, blanks squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


async def test_the_overview_shows_pipelines_pollers_connectors_and_what_they_did(console: Console) -> None:
    service = console.service
    service.metrics.event("wo.create", "delivered", 0.01)
    service.metrics.event("wo.create", "delivered", 0.01)
    service.metrics.event("wo.check", "ok", 0.01)
    service.metrics.event("wo.check", "failed", 0.01)
    service.activity.failed(
        "wo.check", f"Work order WO-5 is not in the MES ({WEBHOOK_TOKEN})", "fail", status=404
    )
    service.activity.polled("wo.poll", 3, 1, 0.012)
    service.activity.lease("wo.poll", True)
    await console.store.set_cursor("wo.poll", '"2026-12-01T10:00:00Z"')
    redactor = Redactor(["query-secret-xyz"])
    service.on_call(
        CallRecord("mes", "GET", "/api/Workorders?key=query-secret-xyz", 200, 0.0042, 1, redactor=redactor)
    )
    await add_dead(console.store, "WO-3")
    await console.login()
    page = await console.client.get(console.path())
    assert page.status_code == 200
    text = _text(page.text)
    assert service.generation.version in text
    for name in ("wo.create", "wo.check", "nx.branches", "wo.poll"):
        assert name in text
    assert "webhook /wo (queue)" in text and "poll mes" in text
    assert "Work order WO-5 is not in the MES (***)" in text and WEBHOOK_TOKEN not in page.text
    assert '"2026-12-01T10:00:00Z"' in text and "this replica polls" in text and "3 new, 1 seen" in text
    assert "GET /api/Workorders?key=***" in text and "query-secret-xyz" not in page.text
    assert "token" in text and "no token yet" in text
    # the connector's URL without the user and password it holds
    assert (
        "http://127.0.0.1:9" in text and "url-password-123" not in page.text and "api-user" not in page.text
    )
    assert re.search(r"Dead letters\s*1", text)
    assert "Per min" in text


async def test_the_overview_names_queued_events_of_pipelines_this_config_does_not_serve(
    console: Console,
) -> None:
    await console.store.enqueue("wo.create", "WO-1", {"event": {}}, event_id="wo.create:WO-1")
    for n in (1, 2):
        await console.store.enqueue("wo.retired", f"WO-{n}", {"event": {}}, event_id=f"wo.retired:WO-{n}")
    await console.login()
    text = _text((await console.client.get(console.path())).text)
    assert re.search(r"Queued\s*3", text)
    # the total counts them; no pipeline row does, so the overview says where they are
    assert "pipelines this config does not serve" in text and "wo.retired 2." in text
    assert "wo.create 1" not in text and "mesbridge queue list --not-served" in text


async def test_events_are_found_by_work_order_and_outcome_and_open_as_a_tree(console: Console) -> None:
    await add_trace(console.store, trace_document("00000000000000a1", number="WO-1042"))
    await add_trace(
        console.store, trace_document("00000000000000a2", number="WO-2000", outcome="ok", then=None)
    )
    await console.login()
    found = await console.client.get(console.path("/events"), params={"q": "wo-1042"})
    assert found.status_code == 200
    assert "/console/events/00000000000000a1" in found.text and "00000000000000a2" not in found.text
    failed = await console.client.get(console.path("/events"), params={"outcome": "failed"})
    assert "00000000000000a1" in failed.text and "00000000000000a2" not in failed.text
    both = await console.client.get(console.path("/events"), params={"pipeline": "wo.create", "since": "7d"})
    assert both.status_code == 200 and "a1" in both.text
    none = await console.client.get(console.path("/events"), params={"q": "WO-0"})
    assert "No traces match." in none.text
    trace = await console.client.get(console.path("/events/00000000000000a1"))
    assert trace.status_code == 200
    text = _text(trace.text)
    assert "wo.create failed 422" in text
    assert "business: mes answered HTTP 422: quantity must be positive" in text
    assert "steps[0] call existing" in text and "steps[1].then[0] call created" in text
    assert "mes GET /api/Workorders" in text and "mes POST /api/Workorders/" in text
    assert "7.5 ms" in text and "refused, not applied" in text and "2.9 ms" in text
    assert '"password": "***"' in text
    # the create sits under the `if` step that ran it, which sits at the top
    tree = trace.text[trace.text.index('<ul class="tree">') :]
    assert tree.index("steps[1]</span> if") < tree.index("steps[1].then[0]") < tree.index("POST</strong>")


async def test_a_trace_of_a_dead_letter_links_to_it(console: Console) -> None:
    dead_id = await add_dead(console.store, "WO-1042")
    await add_trace(console.store, trace_document("00000000000000b1", number="WO-1042"))
    await console.login()
    trace = await console.client.get(console.path("/events/00000000000000b1"))
    assert f'href="/console/dead-letters/show?id={dead_id.replace(":", "%3A")}"' in trace.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/events?outcome=exploded", 400),
        ("/events?source=fax", 400),
        ("/events?since=forever", 400),
        ("/events?limit=0", 400),
        ("/events?limit=lots", 400),
        ("/events?limit=99999", 400),
        ("/events?q=" + "x" * 201, 400),
        ("/events/0123456789abcdef", 404),
        ("/events/not%20an%20id", 404),
        ("/events/%00", 404),
        ("/dead-letters?limit=-1", 400),
        ("/dead-letters?done=exploded", 400),
        ("/dead-letters/show", 400),
        ("/dead-letters/show?id=", 400),
        ("/dead-letters/show?id=wo.create:nope", 404),
        ("/dead-letters/drop?id=wo.create:nope", 404),
        ("/no/such/page", 404),
    ],
)
async def test_bad_input_is_a_clear_page_never_a_500(console: Console, path: str, status: int) -> None:
    await console.login()
    reply = await console.client.get(console.path(path))
    assert reply.status_code == status, reply.text
    assert '<section class="problem">' in reply.text
    assert "Traceback" not in reply.text


async def test_bad_forms_are_refused_before_anything_is_done(console: Console) -> None:
    dead_id = await add_dead(console.store, "WO-11")
    await console.login()
    token = await console.csrf()
    replay = console.path("/dead-letters/replay")
    cases = [
        ({"content": b"id=x&csrf=" + token.encode(), "headers": {"content-type": "application/json"}}, 415),
        ({"data": {"id": dead_id, "csrf": token, "pad": "x" * 20_000}}, 413),
        (
            {
                "content": "&".join(f"f{i}=1" for i in range(60)) + f"&csrf={token}",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
        ),
        ({"data": {"id": "wo.create:nope", "csrf": token}}, 404),
        ({"data": {"id": "", "csrf": token}}, 400),
    ]
    for options, status in cases:
        reply = await console.client.post(replay, **options)  # type: ignore[arg-type]
        assert reply.status_code == status, (options, reply.text)
    drop = await console.client.post(
        console.path("/dead-letters/drop"), data={"id": "wo.create:nope", "csrf": token}
    )
    assert drop.status_code == 404 and "There is no dead letter wo.create:nope." in _text(drop.text)
    assert [dead.id for dead in await console.store.list_dead()] == [dead_id]


async def test_replay_queues_the_dead_letter_again_and_writes_an_audit_line(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    dead_id = await add_dead(console.store, "WO-21")
    woken: list[bool] = []
    console.service.wake_workers = lambda: woken.append(True)
    await console.login()
    listing = await console.client.get(console.path("/dead-letters"))
    assert dead_id in listing.text and "work order WO-21 is locked" in listing.text
    shown = await console.client.get(console.path("/dead-letters/show"), params={"id": dead_id})
    assert shown.status_code == 200 and '"workorderNumber": "WO-21"' in html.unescape(shown.text)
    token = await console.csrf()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        done = await console.client.post(
            console.path("/dead-letters/replay"), data={"id": dead_id, "csrf": token}
        )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/dead-letters?done=replayed&id=wo.create%3Aev-WO-21"
    assert await console.store.list_dead() == []
    assert await console.store.queue_depth() == {"wo.create": 1}
    assert woken == [True]
    [job] = await console.store.claim("w", limit=1)
    assert job.event_id == dead_id and job.payload["replayed"] is True
    await console.store.dead_letter(job, "mes answered HTTP 422: work order WO-21 is closed")
    shown = await console.client.get(console.path("/dead-letters/show"), params={"id": dead_id})
    again = _text(shown.text[shown.text.index("<h2>Attempts</h2>") :])
    locked, replayed, closed = (
        again.index(text) for text in ("WO-21 is locked", "replayed from the dead letters", "WO-21 is closed")
    )
    assert locked < replayed < closed  # every attempt, across the replay
    listed = await console.client.get(console.path("/dead-letters"))
    assert re.search(r'data-label="Attempts" class="num">2<', listed.text)
    [line] = [r for r in caplog.records if getattr(r, "action", None) == "replay"]
    assert (line.user, line.dead_letter, line.result) == ("alice", dead_id, "replayed")  # type: ignore[attr-defined]
    notice = await console.client.get(done.headers["location"])
    assert (
        "was queued again" in notice.text and "/console/events?event_id=wo.create%3Aev-WO-21" in notice.text
    )


async def test_a_replay_of_a_pipeline_this_replica_does_not_serve_says_no_worker_here_delivers_it(
    console: Console,
) -> None:
    await console.store.enqueue("wo.retired", "WO-7", {"event": {}}, event_id="wo.retired:WO-7")
    [job] = await console.store.claim("w", limit=1)
    await console.store.dead_letter(job, "mes answered HTTP 422: work order WO-7 is locked")
    await console.login()
    token = await console.csrf()
    done = await console.client.post(
        console.path("/dead-letters/replay"), data={"id": "wo.retired:WO-7", "csrf": token}
    )
    assert done.status_code == 303 and "done=replayed-not-served" in done.headers["location"]
    assert await console.store.queue_depth() == {"wo.retired": 1}
    notice = _text((await console.client.get(done.headers["location"])).text)
    assert "wo.retired:WO-7 was queued again, but this replica's config does not serve its pipeline" in notice
    assert "a worker delivers it now" not in notice
    listing = await console.client.get(console.path("/dead-letters"), params={"pipeline": "wo.retired"})
    assert '<option value="wo.retired" selected>' in listing.text  # its filter is the one shown
    # an uncertain one is refused, and the reason fits the console as well as the command
    [job] = await console.store.claim("w", limit=1)
    await console.store.complete(job)  # a replica that serves it delivered it
    await console.store.enqueue("wo.retired", "WO-8", {"event": {}}, event_id="wo.retired:WO-8")
    [job] = await console.store.claim("w", limit=1)
    await console.store.dead_letter(job, "mes did not answer", kind="uncertain")
    refused = await console.client.post(
        console.path("/dead-letters/replay"), data={"id": "wo.retired:WO-8", "csrf": token}
    )
    assert refused.status_code == 409
    assert "is not in the config (a replica serving other bindings" in _text(refused.text)
    listing = await console.client.get(console.path("/dead-letters"))
    assert '<option value="wo.retired">' in listing.text  # a pipeline of a dead letter is a filter


async def test_an_uncertain_dead_letter_with_an_unprotected_write_needs_force(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    event = {"workorderNumber": "WO-31"}
    await console.store.enqueue("wo.check", "WO-31", {"event": event}, event_id="wo.check:WO-31")
    [job] = await console.store.claim("w", limit=1)
    await console.store.dead_letter(job, "mes did not answer", kind="uncertain")
    # wo.check only reads: nothing it does can apply twice, so its uncertain replay looks first
    await console.login()
    token = await console.csrf()
    done = await console.client.post(
        console.path("/dead-letters/replay"), data={"id": "wo.check:WO-31", "csrf": token}
    )
    assert done.status_code == 303
    [job] = await console.store.claim("w", limit=1)
    assert job.payload.get("verify_first") is True
    await console.store.complete(job)
    # nx.branches has no write either; a write nobody protects is refused unless forced
    pipeline = console.service.generation.project.pipelines["wo.create"]
    step = pipeline.pipeline.steps[1].then[0]  # type: ignore[union-attr]
    step.verify = None
    await console.store.enqueue("wo.create", "WO-32", {"event": {}}, event_id="wo.create:WO-32")
    [job] = await console.store.claim("w", limit=1)
    await console.store.dead_letter(job, "mes did not answer", kind="uncertain")
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        refused = await console.client.post(
            console.path("/dead-letters/replay"), data={"id": "wo.create:WO-32", "csrf": token}
        )
        assert refused.status_code == 409 and "have no verify lookup" in refused.text
        assert 'name="force" value="1"' in refused.text
        assert [d.id for d in await console.store.list_dead()] == ["wo.create:WO-32"]
        forced = await console.client.post(
            console.path("/dead-letters/replay"), data={"id": "wo.create:WO-32", "csrf": token, "force": "1"}
        )
    assert forced.status_code == 303 and await console.store.list_dead() == []
    results = [(r.action, r.result) for r in caplog.records if hasattr(r, "dead_letter")]  # type: ignore[attr-defined]
    assert results[0][0] == "replay" and results[0][1].startswith("refused: its outcome is unknown")
    assert results[1] == ("replay --force", "replayed")


async def test_drop_asks_first_then_deletes_for_good_with_an_audit_line(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    dead_id = await add_dead(console.store, "WO-41")
    await console.login()
    confirm = await console.client.get(console.path("/dead-letters/drop"), params={"id": dead_id})
    assert confirm.status_code == 200 and "Drop it for good" in confirm.text
    assert len(await console.store.list_dead()) == 1
    token = await console.csrf()
    with caplog.at_level(logging.INFO, logger="mesbridge.console"):
        done = await console.client.post(
            console.path("/dead-letters/drop"), data={"id": dead_id, "csrf": token}
        )
        again = await console.client.post(
            console.path("/dead-letters/drop"), data={"id": dead_id, "csrf": token}
        )
    assert done.status_code == 303 and again.status_code == 404
    assert await console.store.list_dead() == []
    lines = [(r.user, r.action, r.dead_letter, r.result) for r in caplog.records if hasattr(r, "dead_letter")]  # type: ignore[attr-defined]
    assert lines == [("alice", "drop", dead_id, "dropped"), ("alice", "drop", dead_id, "no such dead letter")]


async def test_no_secret_is_ever_on_a_page(console: Console) -> None:
    error = f"mes refused the token {WEBHOOK_TOKEN}"
    dead_id = await add_dead(console.store, "WO-51", error=error)
    await console.login()
    seen = []
    for path in (
        "",
        "/events",
        "/dead-letters",
        f"/dead-letters/show?id={dead_id}",
        f"/dead-letters/drop?id={dead_id}",
    ):
        page = await console.client.get(console.path(path))
        assert page.status_code == 200, path
        seen.append(page.text)
    everything = "\n".join(seen)
    assert "mes refused the token ***" in everything
    for secret in (WEBHOOK_TOKEN, SECRET, "scrypt:", "url-password-123"):
        assert secret not in everything


async def test_a_store_that_fails_is_a_503_page(console: Console) -> None:
    await console.login()
    await console.store.close()
    reply = await console.client.get(console.path("/dead-letters"))
    assert reply.status_code == 503 and "The state store is not answering" in reply.text
