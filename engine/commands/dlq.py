"""`mesbridge dlq`: list, show, replay and drop dead letters in the state store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from engine.config.root import load_project
from engine.errors import StoreError
from engine.store import DeadLetter, Store, open_store

T = TypeVar("T")


def _store_url(root: Path, store: str | None) -> str:
    """--store, else the config root's settings (mesbridge.yaml, MESBRIDGE_STORE)."""
    if store:
        return store
    return str(load_project(root).settings.store)


def _with_store(url: str, action: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        store = open_store(url)
        try:
            await store.migrate()
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreError as exc:
        raise click.ClickException(f"store {url}: {exc}") from None


def _as_json(dead: DeadLetter, full: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": dead.id,
        "pipeline": dead.pipeline,
        "key": dead.key,
        "error": dead.error,
        "attempts": len(dead.attempts),
        "enqueued_at": dead.enqueued_at.isoformat(),
        "died_at": dead.died_at.isoformat(),
    }
    if full:
        data["history"] = [a.to_json() for a in dead.attempts]
        data["payload"] = dead.payload
    return data


_common = [
    click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        help="Config root whose settings name the store",
    ),
    click.option("--store", default=None, help="State store URL (overrides the config root's settings)"),
]


def _options(function: Any) -> Any:
    for option in reversed(_common):
        function = option(function)
    return function


@click.group("dlq")
def dlq() -> None:
    """Inspect and act on dead letters: events given up on, kept with every attempt's error."""


@dlq.command("list")
@_options
@click.option("--pipeline", default=None, help="Only this pipeline's dead letters")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def list_(root: Path, store: str | None, pipeline: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first."""
    url = _store_url(root, store)
    items = _with_store(url, lambda s: s.list_dead(pipeline, limit))
    if as_json:
        click.echo(json.dumps([_as_json(d, full=False) for d in items], ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("no dead letters")
        return
    table = Table(title=f"{len(items)} dead letter(s)")
    table.add_column("id", no_wrap=True)
    for column in ("pipeline", "key", "attempts", "died at", "error"):
        table.add_column(column, overflow="fold")
    for dead in items:
        table.add_row(
            dead.id,
            dead.pipeline,
            dead.key,
            str(len(dead.attempts)),
            dead.died_at.strftime("%Y-%m-%d %H:%M:%S"),
            dead.error,
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


@dlq.command("show")
@_options
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def show(root: Path, store: str | None, event_id: str, as_json: bool) -> None:
    """Show one dead letter: its event, and the error of every attempt."""
    dead = _with_store(_store_url(root, store), lambda s: s.get_dead(event_id))
    if dead is None:
        raise click.ClickException(f"no dead letter {event_id}")
    data = _as_json(dead)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    console.print(f"[bold]{dead.id}[/bold]  pipeline {dead.pipeline}  key {dead.key}", highlight=False)
    console.print(f"enqueued {data['enqueued_at']}, died {data['died_at']}", highlight=False)
    console.print(f"[red]error:[/red] {dead.error}", highlight=False)
    for number, attempt in enumerate(dead.attempts, 1):
        console.print(f"  attempt {number} at {attempt.at.isoformat()}: {attempt.error}", highlight=False)
    console.print("event:")
    console.print_json(json.dumps(dead.payload.get("event", dead.payload), ensure_ascii=False))


@dlq.command("replay")
@_options
@click.argument("event_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter (of --pipeline)")
@click.option("--pipeline", default=None)
def replay(
    root: Path, store: str | None, event_ids: tuple[str, ...], replay_all: bool, pipeline: str | None
) -> None:
    """Queue dead letters again (same event id and key, fresh attempts); a running service delivers them."""
    _act(root, store, event_ids, replay_all, pipeline, "replay")


@dlq.command("drop")
@_options
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
    url = _store_url(root, store)

    async def go(s: Store) -> list[tuple[str, bool]]:
        targets = list(ids) or [d.id for d in await s.list_dead(pipeline, limit=100_000)]
        results = []
        for event_id in targets:
            done = await (s.replay_dead(event_id) if verb == "replay" else s.drop_dead(event_id))
            results.append((event_id, done))
        return results

    results = _with_store(url, go)
    missing = [event_id for event_id, done in results if not done]
    for event_id, done in results:
        if done:
            click.echo(f"{'replayed' if verb == 'replay' else 'dropped'} {event_id}")
    if missing:
        raise click.ClickException(f"no dead letter {', '.join(missing)}")
    if not results:
        click.echo("no dead letters")
