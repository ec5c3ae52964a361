"""`mesbridge queue`: list queued events; drop them, or move them to the dead letters.

For the events of a pipeline no replica serves any more (renamed or removed from the bindings), which
wait in the queue for ever. An event a worker holds a live lease of is never acted on: it may be mid-write.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from engine.commands._common import load_or_exit, show_listing, store_options, store_url, with_store
from engine.service.logging import JsonFormatter
from engine.store import QueuedEvent, Store

_WHEN = "%Y-%m-%d %H:%M:%S"
_ALL = 100_000  # what --all reaches, as in `mesbridge dlq`


def _as_json(event: QueuedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "pipeline": event.pipeline,
        "key": event.key,
        "state": "leased" if event.leased else "waiting",
        "attempts": event.attempts,
        "enqueued_at": event.enqueued_at.isoformat(),
        "available_at": event.available_at.isoformat(),
        "leased_by": event.leased_by or None,
        "lease_until": event.lease_until.isoformat() if event.lease_until else None,
        "last_error": event.history[-1].error if event.history else None,
    }


@click.group("queue")
def queue() -> None:
    """Inspect and act on queued events: those of a pipeline no replica serves wait for ever."""


@queue.command("list")
@store_options
@click.option("--pipeline", default=None, help="Only this pipeline's events")
@click.option(
    "--not-served", is_flag=True, help="Only the events of pipelines the config root (--root) does not have"
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def list_(
    root: Path, store: str | None, pipeline: str | None, not_served: bool, limit: int, as_json: bool
) -> None:
    """List queued events in queue order (oldest first): leased (a worker runs it now) or waiting.

    Says when there are more than --limit.
    """
    url = store_url(root, store)
    served = None
    if not_served:
        title = f"--not-served needs the pipelines of the config root {root}, which does not load:"
        served = set(load_or_exit(root, status=2, title=title).pipelines)

    async def go(s: Store) -> list[QueuedEvent]:
        only = None if pipeline is None else {pipeline}
        if served is not None:
            unserved = {name for name in await s.queue_depth() if name not in served}
            only = unserved if only is None else unserved & only
        return await s.list_queued(only, limit + 1)

    found = with_store(url, go)
    now = datetime.now(UTC)
    show_listing(
        found,
        limit,
        "queued event",
        _as_json if as_json else None,
        ("id", "pipeline", "key", "enqueued at", "attempts", "state", "last error"),
        lambda event: (
            event.id,
            event.pipeline,
            event.key,
            event.enqueued_at.strftime(_WHEN),
            str(event.attempts),
            event.state(now),
            event.history[-1].error if event.history else "",
        ),
    )


@queue.command("drop")
@store_options
@click.argument("event_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Drop every queued event of --pipeline")
@click.option("--pipeline", default=None, help="The pipeline whose events --all drops")
def drop(
    root: Path, store: str | None, event_ids: tuple[str, ...], every: bool, pipeline: str | None
) -> None:
    """Delete queued events for good, each with an audit line on stderr.

    One a worker holds now is not dropped (it may be mid-write): exit status 1.
    """
    _act(root, store, event_ids, every, pipeline, "drop", lambda s, event_id: s.drop_queued(event_id))


@queue.command("dead")
@store_options
@click.argument("event_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Move every queued event of --pipeline")
@click.option("--pipeline", default=None, help="The pipeline whose events --all moves")
@click.option("--reason", default="moved from the queue to the dead letters", help="The dead letter's error")
def dead(
    root: Path,
    store: str | None,
    event_ids: tuple[str, ...],
    every: bool,
    pipeline: str | None,
    reason: str,
) -> None:
    """Move queued events to the dead letters, where `mesbridge dlq` shows, replays and drops them.

    One whose worker's lease expired unfinished, or a replay whose writes look first, becomes an
    uncertain dead letter (it may have been applied), and the command says why. One a worker holds
    now is not moved (it may be mid-write): exit status 1.
    """
    error = f"{reason} (by {_user()}, mesbridge queue dead)"
    _act(
        root,
        store,
        event_ids,
        every,
        pipeline,
        "dead",
        lambda s, event_id: s.dead_letter_queued(event_id, error, "operator"),
        reason=reason,
    )


_SAID = {"drop": ("dropped", "dropped {}"), "dead": ("dead-lettered", "moved {} to the dead letters")}
"""Per action: the audit line's result, and what is printed of an event acted on."""


def _act(
    root: Path,
    store: str | None,
    ids: tuple[str, ...],
    every: bool,
    pipeline: str | None,
    action: str,
    act: Callable[[Store, str], Awaitable[QueuedEvent | None]],
    **audited: str,
) -> None:
    """Act on the events named, or on every queued event of `pipeline`; print what became of each."""
    if bool(ids) == every or every != (pipeline is not None):
        raise click.UsageError(f"give the event id(s) to {action}, or --all --pipeline P")
    url = store_url(root, store)

    async def go(s: Store) -> list[tuple[str, QueuedEvent | None]]:
        targets = ids if pipeline is None else [e.id for e in await s.list_queued({pipeline}, limit=_ALL)]
        return [(event_id, await act(s, event_id)) for event_id in targets]

    results = with_store(url, go)
    result, said = _SAID[action]
    refused = False
    for event_id, event in results:
        if event is None or event.leased:
            refused = True
            click.echo(f"not {said.format(event_id)}: {_why_not(event_id, event)}", err=True)
            continue
        click.echo(said.format(event_id) + (_uncertain(event) if action == "dead" else ""))
        _audit(action, result, event, **audited)
    if not results:
        click.echo("no queued events")
    if refused:
        raise SystemExit(1)


def _uncertain(event: QueuedEvent) -> str:
    why = event.uncertain_because()
    return f" as uncertain: {why}" if why else ""


def _why_not(event_id: str, event: QueuedEvent | None) -> str:
    if event is None:
        return f"no queued event {event_id} (delivered, a dead letter, or never queued)"
    return event.held()


def _user() -> str:
    """Who runs the command, as the system names them (an unnamed uid in a container: `uid <n>`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _audit(action: str, result: str, event: QueuedEvent, **extra: str) -> None:
    """One JSON line on stderr, as the service's log writes it, per event acted on."""
    user = _user()
    record = logging.makeLogRecord(
        {
            "name": "mesbridge.queue",
            "levelname": "INFO",
            "msg": f"queue: {user} {action} {event.id}: {result}",
            "user": user,
            "action": action,
            "event_id": event.id,
            "pipeline": event.pipeline,
            "key": event.key,
            "result": result,
            **extra,
        }
    )
    click.echo(JsonFormatter().format(record), err=True)
