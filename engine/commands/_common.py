"""What the commands share: loading a config root and reporting its findings."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.config.report import format_text
from engine.config.root import Project, load_project
from engine.config.settings import SETTINGS_FILE, is_settings_finding
from engine.errors import StoreError, StoreMissingError
from engine.store import Store, open_store, safe_url

T = TypeVar("T")

ROOT_HELP = "Config root (default: the current folder)"


def _one_root(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """ROOT given as an argument and as --root must agree; the command sees one `root`."""
    if param.name == "root_option":
        given = ctx.params.pop("root", None)
        if value is not None and given is not None and Path(given) != value:
            raise click.UsageError(f"two config roots given: {given} and --root {value}")
        ctx.params["root"] = value or given or Path(".")
        return None
    return value


def root_argument(function: click.decorators.FC) -> click.decorators.FC:
    """The config root, as an optional ROOT argument or as `--root`, as every command takes it."""
    kind = click.Path(file_okay=False, path_type=Path)
    function = click.option(
        "--root",
        "root_option",
        type=kind,
        default=None,
        expose_value=False,
        callback=_one_root,
        help=ROOT_HELP,
    )(function)
    return click.argument("root", required=False, type=kind, callback=_one_root, is_eager=True)(function)


def root_option(function: click.decorators.FC) -> click.decorators.FC:
    """The config root as `--root` (commands whose arguments are something else)."""
    kind = click.Path(file_okay=False, path_type=Path)
    return click.option("--root", type=kind, default=Path("."), show_default=True, help=ROOT_HELP)(function)


def load_or_exit(root: Path, *, status: int = 1, title: str | None = None) -> Project:
    """Load a config root; on errors print them located (after `title`, if given) and exit `status`."""
    project = load_project(root)
    if not project.ok:
        if title is not None:
            click.echo(title, err=True)
        click.echo(format_text(project.diagnostics, color=sys.stderr.isatty()), err=True)
        raise SystemExit(status)
    return project


def store_options(function: Any) -> Any:
    """`--root` (whose settings name the store) and `--store` (a URL instead), as store commands take them."""
    function = click.option(
        "--store", default=None, help="State store URL (overrides the config root's settings)"
    )(function)
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        help="Config root whose settings name the store",
    )(function)


def store_url(root: Path, store: str | None) -> str:
    """--store, else the config root's settings (mesbridge.yaml, MESBRIDGE_STORE).

    Settings that cannot be read stop the command (exit 2): `load_project` falls back to the default
    settings then, whose store is another one. Errors in the root's other files do not: an operator
    lists dead letters while a mapping is broken."""
    if store:
        return store
    if not root.is_dir():
        raise click.UsageError(f"config root {root} is not a folder (give --root ROOT, or --store URL)")
    project = load_project(root)
    unreadable = [d for d in project.diagnostics if is_settings_finding(d) and d.severity == "error"]
    if unreadable:
        click.echo(
            f"the settings of {root} cannot be read, so the store they name is not known "
            "(fix them, or give --store URL):",
            err=True,
        )
        located = [
            dataclasses.replace(d, file=str(root / d.file)) if d.file == SETTINGS_FILE else d
            for d in unreadable
        ]
        click.echo(format_text(located, color=sys.stderr.isatty()), err=True)
        raise SystemExit(2)
    return str(project.settings.store)


def with_store(url: str, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run `action` on the store at `url`, which must exist at this version's schema: a store command
    creates and migrates nothing (only `mesbridge run` does). A store failure is a one-line error."""

    async def go() -> T:
        store = open_store(url)
        try:
            await store.check_schema()
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreMissingError as exc:
        raise click.ClickException(
            f"store {safe_url(url)} ({exc.where}) does not exist; `mesbridge run` creates it "
            "(a relative sqlite:/// path is taken from the current folder)"
        ) from None
    except StoreError as exc:
        raise click.ClickException(f"store {safe_url(url)}: {exc}") from None


def show_listing(
    found: Sequence[T],
    limit: int,
    noun: str,
    as_json: Callable[[T], dict[str, Any]] | None,
    columns: Sequence[str],
    row: Callable[[T], Sequence[str]],
) -> None:
    """Print up to `limit` of `found` (read with one more, which tells there are more), oldest first:
    as JSON when `as_json` is given, else as a table of `columns` (the first is the id). Says when
    there are more than `limit`; `noun` names one item ("dead letter")."""
    items, more = found[:limit], len(found) > limit
    if as_json is not None:
        click.echo(json.dumps([as_json(item) for item in items], ensure_ascii=False, indent=2))
        if more:
            click.echo(f"more than {limit} {noun}s: these are the oldest {limit} (use --limit)", err=True)
        return
    if not items:
        click.echo(f"no {noun}s")
        return
    title = (
        f"the oldest {limit} of more than {limit} {noun}s (use --limit)"
        if more
        else f"{len(items)} {noun}(s)"
    )
    table = Table(title=title)
    table.add_column(columns[0], no_wrap=True)
    for column in columns[1:]:
        table.add_column(column, overflow="fold")
    for item in items:  # as text: an ERP's `[/PART]` in an error is no markup (nor a MarkupError)
        table.add_row(*(escape(cell) for cell in row(item)))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
