"""`mesbridge dlq`: list, show, replay and drop dead letters in the state store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from engine.commands._common import show_listing, store_options, store_url, with_store
from engine.config.root import load_project
from engine.service.dead_letters import Replay, replay_dead
from engine.store import DeadLetter, Store


def _as_json(dead: DeadLetter, full: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": dead.id,
        "pipeline": dead.pipeline,
        "key": dead.key,
        "kind": dead.kind,
        "error": dead.error,
        "attempts": len(dead.failures),
        "replays": len(dead.attempts) - len(dead.failures),
        "enqueued_at": dead.enqueued_at.isoformat(),
        "died_at": dead.died_at.isoformat(),
    }
    if full:
        data["history"] = [a.to_json() for a in dead.attempts]
        data["payload"] = dead.payload
    return data


@click.group("dlq")
def dlq() -> None:
    """Inspect and act on dead letters: events given up on, kept with every attempt's error."""


@dlq.command("list")
@store_options
@click.option("--pipeline", default=None, help="Only this pipeline's dead letters")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def list_(root: Path, store: str | None, pipeline: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first; says when there are more than --limit."""
    found = with_store(store_url(root, store), lambda s: s.list_dead(pipeline, limit + 1))
    show_listing(
        found,
        limit,
        "dead letter",
        (lambda dead: _as_json(dead, full=False)) if as_json else None,
        ("id", "pipeline", "key", "kind", "attempts", "died at", "error"),
        lambda dead: (
            dead.id,
            dead.pipeline,
            dead.key,
            dead.kind,
            str(len(dead.failures)),
            dead.died_at.strftime("%Y-%m-%d %H:%M:%S"),
            dead.error,
        ),
    )


@dlq.command("show")
@store_options
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def show(root: Path, store: str | None, event_id: str, as_json: bool) -> None:
    """Show one dead letter: its event, and the error of every attempt, across its replays."""
    dead = with_store(store_url(root, store), lambda s: s.get_dead(event_id))
    if dead is None:
        raise click.ClickException(f"no dead letter {event_id}")
    data = _as_json(dead)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    # what the event and the ERP wrote is text, not markup: `[/PART]` in an error prints as it is
    head = f"[bold]{escape(dead.id)}[/bold]  pipeline {escape(dead.pipeline)}  key {escape(dead.key)}"
    console.print(head, highlight=False)
    console.print(f"enqueued {data['enqueued_at']}, died {data['died_at']}", highlight=False)
    console.print(f"[red]error ({escape(dead.kind)}):[/red] {escape(dead.error)}", highlight=False)
    number = 0
    for attempt in dead.attempts:
        if attempt.replay:
            console.print(f"  {escape(attempt.error)} at {attempt.at.isoformat()}", highlight=False)
            continue
        number += 1
        console.print(
            f"  attempt {number} at {attempt.at.isoformat()}: {escape(attempt.error)}", highlight=False
        )
    console.print("event:")
    console.print_json(json.dumps(dead.payload.get("event", dead.payload), ensure_ascii=False))


@dlq.command("replay")
@store_options
@click.argument("event_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter (of --pipeline)")
@click.option("--pipeline", default=None)
@click.option(
    "--force",
    is_flag=True,
    help="Replay uncertain and partial dead letters even when a write could apply twice",
)
def replay(
    root: Path,
    store: str | None,
    event_ids: tuple[str, ...],
    replay_all: bool,
    pipeline: str | None,
    force: bool,
) -> None:
    """Queue dead letters again (same event id and key, fresh attempts, the earlier ones kept in their
    history); a running service delivers them.

    An uncertain one (the ERP may have applied it) or a partial one (it failed after a write of it had
    been applied) runs each write's verify lookup first; when a write of its pipeline has none and is
    not idempotent, it is replayed only with --force.
    """
    if not event_ids and not replay_all:
        raise click.UsageError("give the event id(s) to replay, or --all")
    url = store_url(root, store)
    project = load_project(root)

    async def go(s: Store) -> list[Replay]:
        targets = list(event_ids) or [d.id for d in await s.list_dead(pipeline, limit=100_000)]
        return [
            await replay_dead(s, project if project.ok else None, event_id, force=force)
            for event_id in targets
        ]

    results = with_store(url, go)
    for result in results:
        if result.replayed:
            click.echo(
                f"replayed {result.event_id}" + (" (each write looks first)" if result.verify_first else "")
            )
            if not result.served:
                click.echo(
                    f"  {result.pipeline} is not in the config at {root} (with its bindings): a replica "
                    "serving that config does not deliver it; it waits in the queue for one that serves "
                    f"{result.pipeline} (mesbridge queue list --not-served)",
                    err=True,
                )
    refused = [result for result in results if not result.replayed]
    for result in refused:
        click.echo(f"not replayed {result.event_id}: {result.reason}", err=True)
    if not results:
        click.echo("no dead letters")
    if refused:
        raise SystemExit(1)


@dlq.command("drop")
@store_options
@click.argument("event_ids", nargs=-1)
@click.option("--all", "drop_all", is_flag=True, help="Drop every dead letter (of --pipeline)")
@click.option("--pipeline", default=None)
def drop(
    root: Path, store: str | None, event_ids: tuple[str, ...], drop_all: bool, pipeline: str | None
) -> None:
    """Delete dead letters for good."""
    _act(root, store, event_ids, drop_all, pipeline, "drop")


def _act(
    root: Path, store: str | None, ids: tuple[str, ...], every: bool, pipeline: str | None, verb: str
) -> None:
    if not ids and not every:
        raise click.UsageError(f"give the event id(s) to {verb}, or --all")
    url = store_url(root, store)

    async def go(s: Store) -> list[tuple[str, bool]]:
        targets = list(ids) or [d.id for d in await s.list_dead(pipeline, limit=100_000)]
        return [(event_id, await s.drop_dead(event_id)) for event_id in targets]

    results = with_store(url, go)
    missing = [event_id for event_id, done in results if not done]
    for event_id, done in results:
        if done:
            click.echo(f"dropped {event_id}")
    if missing:
        raise click.ClickException(f"no dead letter {', '.join(missing)}")
    if not results:
        click.echo("no dead letters")
