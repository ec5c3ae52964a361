"""`mesbridge queue` as an operator runs it, on SQLite and PostgreSQL: the events of a pipeline no replica
serves listed, dropped with an audit line or moved to the dead letters, never one a worker holds now."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.store import open_store
from tests.commands.test_store_commands import no_traceback
from tests.config.test_check import make_root
from tests.store.conftest import BACKENDS, empty_store_url, pg_database  # noqa: F401 - a fixture url uses

OPERATOR = {"LOGNAME": "alice"}


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each backend."""
    return empty_store_url(request, tmp_path)


def mesbridge(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--store", url], env=OPERATOR)


def fill(url: str) -> None:
    """demo.operation is served by the config root of `make_root`; old.operation by none. In queue order:
    ev-1 (old, leased by w1 now), ev-2 (old, waiting for a retry), ev-3 (old), ev-4 (demo)."""

    async def go() -> None:
        store = open_store(url)
        await store.migrate()
        for n, pipeline in enumerate(["old.operation"] * 3 + ["demo.operation"], 1):
            await store.enqueue(pipeline, f"WO-{n}", {"event": {"n": n}}, event_id=f"ev-{n}")
        [held] = await store.claim("w1", lease_seconds=600)
        [retried] = await store.claim("w2", lease_seconds=600)
        await store.retry(retried, "ERP unreachable", 600)
        await store.close()

    asyncio.run(go())


def queued(url: str) -> list[str]:
    listed = mesbridge(url, "queue", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return [event["id"] for event in json.loads(listed.stdout)]


def test_list_shows_each_event_and_whether_a_worker_holds_it(url: str) -> None:
    fill(url)
    result = mesbridge(url, "queue", "list", "--json")
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert [(e["id"], e["pipeline"], e["key"], e["state"], e["attempts"]) for e in events] == [
        ("ev-1", "old.operation", "WO-1", "leased", 1),
        ("ev-2", "old.operation", "WO-2", "waiting", 1),
        ("ev-3", "old.operation", "WO-3", "waiting", 0),
        ("ev-4", "demo.operation", "WO-4", "waiting", 0),
    ]
    assert events[0]["leased_by"] == "w1" and events[0]["lease_until"]
    assert (
        events[1]["last_error"] == "ERP unreachable" and events[1]["available_at"] > events[1]["enqueued_at"]
    )
    table = mesbridge(url, "queue", "list", "--pipeline", "old.operation", "--limit", "2")
    assert table.exit_code == 0, table.output
    assert "the oldest 2 of more than 2 queued events (use --limit)" in table.stdout
    assert "leased by w1 until" in table.stdout and "waiting (retry at" in table.stdout
    assert "ev-3" not in table.stdout and "ev-4" not in table.stdout


def test_list_not_served_names_the_pipelines_the_config_root_does_not_have(url: str, tmp_path: Path) -> None:
    fill(url)
    root = str(make_root(tmp_path / "root"))
    result = mesbridge(url, "queue", "list", "--not-served", "--root", root, "--json")
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in json.loads(result.stdout)] == ["ev-1", "ev-2", "ev-3"]
    served = mesbridge(url, "queue", "list", "--not-served", "--root", root, "--pipeline", "demo.operation")
    assert (served.exit_code, served.stdout) == (0, "no queued events\n")


def test_list_not_served_needs_a_config_root_that_loads(url: str, tmp_path: Path) -> None:
    fill(url)
    result = mesbridge(url, "queue", "list", "--not-served", "--root", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert f"--not-served needs the pipelines of the config root {tmp_path}, which does not load" in (
        result.output
    )
    assert "not a config root" in result.output
    no_traceback(result)


def test_drop_deletes_waiting_events_with_an_audit_line(url: str) -> None:
    fill(url)
    result = mesbridge(url, "queue", "drop", "ev-2", "ev-3")
    assert (result.exit_code, result.stdout) == (0, "dropped ev-2\ndropped ev-3\n"), result.output
    audit = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(a["logger"], a["message"]) for a in audit] == [
        ("mesbridge.queue", "queue: alice drop ev-2: dropped"),
        ("mesbridge.queue", "queue: alice drop ev-3: dropped"),
    ]
    assert {k: audit[0][k] for k in ("user", "action", "event_id", "pipeline", "key", "result")} == {
        "user": "alice",
        "action": "drop",
        "event_id": "ev-2",
        "pipeline": "old.operation",
        "key": "WO-2",
        "result": "dropped",
    }
    assert queued(url) == ["ev-1", "ev-4"]


def test_drop_refuses_an_event_a_worker_holds_and_one_not_queued(url: str) -> None:
    fill(url)
    result = mesbridge(url, "queue", "drop", "ev-1", "ev-3", "ev-9")
    assert result.exit_code == 1, result.output
    assert result.stdout == "dropped ev-3\n"
    refusals = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert refusals[0].startswith("not dropped ev-1: w1 holds it (leased until ")
    assert "may be writing it to the ERP; try again once its delivery has ended" in refusals[0]
    assert refusals[1] == "not dropped ev-9: no queued event ev-9 (delivered, a dead letter, or never queued)"
    assert queued(url) == ["ev-1", "ev-2", "ev-4"]
    no_traceback(result)


def test_drop_all_takes_one_pipeline_and_leaves_the_held_event(url: str) -> None:
    fill(url)
    result = mesbridge(url, "queue", "drop", "--all", "--pipeline", "old.operation")
    assert result.exit_code == 1, result.output
    assert result.stdout == "dropped ev-2\ndropped ev-3\n"
    assert "not dropped ev-1: w1 holds it" in result.stderr
    assert queued(url) == ["ev-1", "ev-4"]
    none = mesbridge(url, "queue", "drop", "--all", "--pipeline", "nothing.here")
    assert (none.exit_code, none.stdout) == (0, "no queued events\n")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all"],
        ["--pipeline", "old.operation"],
        ["ev-2", "--all", "--pipeline", "old.operation"],
        ["ev-2", "--pipeline", "old.operation"],
    ],
)
@pytest.mark.parametrize("action", ["drop", "dead"])
def test_drop_and_dead_take_ids_or_all_of_one_pipeline(url: str, action: str, args: list[str]) -> None:
    fill(url)
    result = mesbridge(url, "queue", action, *args)
    assert result.exit_code == 2, result.output
    assert f"give the event id(s) to {action}, or --all --pipeline P" in result.output
    assert queued(url) == ["ev-1", "ev-2", "ev-3", "ev-4"]
    no_traceback(result)


def test_dead_moves_events_to_the_dead_letters_where_dlq_acts_on_them(url: str) -> None:
    fill(url)
    result = mesbridge(
        url, "queue", "dead", "--all", "--pipeline", "old.operation", "--reason", "old.operation removed"
    )
    assert result.exit_code == 1, result.output  # ev-1 is held by w1
    assert result.stdout == "moved ev-2 to the dead letters\nmoved ev-3 to the dead letters\n"
    assert "not moved ev-1 to the dead letters: w1 holds it" in result.stderr
    audit = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(a["action"], a["event_id"], a["result"], a["reason"]) for a in audit] == [
        ("dead", "ev-2", "dead-lettered", "old.operation removed"),
        ("dead", "ev-3", "dead-lettered", "old.operation removed"),
    ]
    assert queued(url) == ["ev-1", "ev-4"]
    listed = mesbridge(url, "dlq", "list", "--json")
    dead = json.loads(listed.stdout)
    assert [(d["id"], d["kind"], d["error"], d["attempts"]) for d in dead] == [
        ("ev-2", "operator", "old.operation removed (by alice, mesbridge queue dead)", 2),
        ("ev-3", "operator", "old.operation removed (by alice, mesbridge queue dead)", 1),
    ]
    replayed = mesbridge(url, "dlq", "replay", "ev-3")
    assert (replayed.exit_code, replayed.stdout) == (0, "replayed ev-3\n")
    assert queued(url) == ["ev-1", "ev-4", "ev-3"]


def test_dead_makes_an_event_whose_worker_died_running_it_uncertain(url: str) -> None:
    """Its worker may have applied a write before it died: a replay must look first, or be forced."""

    async def abandon() -> None:
        store = open_store(url)
        await store.migrate()
        await store.enqueue("old.operation", "WO-1", {"event": {}}, event_id="ev-1")
        await store.claim("died", lease_seconds=0.01)
        await asyncio.sleep(0.05)
        await store.close()

    asyncio.run(abandon())
    listed = mesbridge(url, "queue", "list")
    assert "waiting (the lease of died expired" in listed.stdout, listed.output
    result = mesbridge(url, "queue", "dead", "ev-1")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout == "moved ev-1 to the dead letters as uncertain: the lease of died expired unfinished\n"
    )
    [dead] = json.loads(mesbridge(url, "dlq", "list", "--json").stdout)
    assert (dead["kind"], dead["attempts"]) == ("uncertain", 2)


def test_dead_says_a_replay_whose_writes_look_first_is_uncertain(url: str) -> None:
    """A replayed uncertain dead letter, waiting for a retry, may have been applied by its first delivery."""

    async def replay() -> None:
        store = open_store(url)
        await store.migrate()
        await store.enqueue("old.operation", "WO-1", {"event": {}}, event_id="ev-1")
        [job] = await store.claim("w1")
        await store.dead_letter(job, "outcome unknown after POST /x", kind="uncertain")
        assert await store.replay_dead("ev-1", verify_first=True)
        await store.enqueue("old.operation", "WO-2", {"event": {}}, event_id="ev-2")
        await store.close()

    asyncio.run(replay())
    result = mesbridge(url, "queue", "dead", "ev-1", "ev-2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "moved ev-1 to the dead letters as uncertain: it is a replay whose writes look first, as an "
        "earlier delivery may have applied them",
        "moved ev-2 to the dead letters",
    ]
    kinds = {dead["id"]: dead["kind"] for dead in json.loads(mesbridge(url, "dlq", "list", "--json").stdout)}
    assert kinds == {"ev-1": "uncertain", "ev-2": "operator"}
