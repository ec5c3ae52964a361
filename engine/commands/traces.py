"""`mesbridge traces`: list, show and export the traces of the events the service handled."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.commands._common import store_options, store_url, with_store
from engine.config.diagnostic import Diagnostic
from engine.config.report import format_text
from engine.config.root import load_project
from engine.config.yamlsource import LoadedYaml, load_yaml
from engine.store import Store, TraceQuery
from engine.testing.runner import run_case
from engine.traces.document import OUTCOMES, SOURCES
from engine.traces.export import as_case, dump_cases, merge_cases, splice_cases
from engine.traces.render import render

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SHOWN = 3  # config errors shown when the root keeps exported cases from being tried


class _Moment(click.ParamType):
    """A time: `30m`, `2h`, `7d` ago, or an ISO-8601 date-time (UTC unless it says otherwise)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        span = _SPAN.match(text)
        try:
            if span:
                return datetime.now(UTC) - timedelta(**{_UNITS[span.group(2)]: float(span.group(1))})
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(
                    f"{text!r} is neither a span such as 30m, 2h or 7d nor an ISO-8601 date-time", param, ctx
                )
            # in UTC here: the store compares UTC times, and a time near the ends of the calendar has none
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            self.fail(f"{text!r} is out of range: a time falls in the years 1 to 9999 (UTC)", param, ctx)


@click.group("traces")
def traces() -> None:
    """What the service did with each event: its steps, every ERP call and the reply."""


@traces.command("list")
@store_options
@click.option("--pipeline", default=None, help="Only this pipeline's traces")
@click.option("--outcome", type=click.Choice(OUTCOMES), default=None, help="Only runs that ended so")
@click.option("--source", type=click.Choice(SOURCES), default=None, help="Only events that came so")
@click.option("--since", type=_Moment(), default=None, help="Received at or after: 30m, 2h, 7d or ISO-8601")
@click.option("--until", type=_Moment(), default=None, help="Received before: 30m, 2h, 7d or ISO-8601")
@click.option("--search", "text", default=None, help="Text in the event, its id, the reply or the error")
@click.option("--event-id", default=None, help="Only this event's runs (every attempt of it)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def list_(
    root: Path,
    store: str | None,
    pipeline: str | None,
    outcome: str | None,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
    text: str | None,
    event_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List traces, newest first."""
    query = TraceQuery(pipeline, outcome, source, event_id, since, until, text, limit)
    found = with_store(store_url(root, store), lambda s: s.list_traces(query))
    if as_json:
        rows = [{**dataclasses.asdict(t), "received": t.received.isoformat()} for t in found]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("no traces match")
        return
    table = Table(
        title=f"{len(found)} trace(s), newest first" + (" (--limit reached)" if len(found) == limit else "")
    )
    table.add_column("id", no_wrap=True)
    for column in ("received", "pipeline", "source", "outcome", "status", "ms", "event id"):
        table.add_column(column, overflow="fold")
    colour = {"ok": "green", "skipped": "cyan", "failed": "red", "uncertain": "yellow"}
    for t in found:
        table.add_row(
            t.id,
            t.received.strftime("%Y-%m-%d %H:%M:%S"),
            escape(t.pipeline),
            t.source,
            f"[{colour[t.outcome]}]{t.outcome}[/]" if t.outcome in colour else t.outcome,
            str(t.status or ""),
            f"{t.duration * 1000:.1f}",
            escape(t.event_id),  # a caller's idempotency key: text, not markup
        )
    Console(width=max(Console().width, 120)).print(table)


def _documents(root: Path, store: str | None, ids: tuple[str, ...]) -> list[dict[str, Any]]:
    async def fetch(s: Store) -> list[dict[str, Any] | None]:
        return [await s.get_trace(trace_id) for trace_id in ids]

    found = with_store(store_url(root, store), fetch)
    missing = [trace_id for trace_id, document in zip(ids, found, strict=True) if document is None]
    if missing:
        raise click.ClickException(
            f"no trace {', '.join(missing)} (see `mesbridge traces list`; old traces are pruned)"
        )
    return [document for document in found if document is not None]


@traces.command("show")
@store_options
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="The whole trace as JSON")
@click.option("--no-bodies", is_flag=True, help="Leave out the event and the bodies")
def show(root: Path, store: str | None, trace_id: str, as_json: bool, no_bodies: bool) -> None:
    """Show one trace: its steps, calls and timings as a tree."""
    [document] = _documents(root, store, (trace_id,))
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(render(document, bodies=not no_bodies))


@traces.command("export")
@store_options
@click.argument("trace_ids", nargs=-1, required=True)
@click.option(
    "--as-test",
    "as_test",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the traces as YAML test cases into this file (cases of the same name are replaced)",
)
@click.option("--json", "as_json", is_flag=True, help="Print the traces as JSON")
def export(
    root: Path, store: str | None, trace_ids: tuple[str, ...], as_test: Path | None, as_json: bool
) -> None:
    """Export traces: as test cases (--as-test FILE) or as JSON (--json)."""
    if (as_test is not None) == as_json:
        raise click.UsageError("choose one of --as-test FILE or --json")
    existing: list[dict[str, Any]] = []
    description = None
    if as_test is not None:
        _check_folder(as_test)
        existing, description = _existing_cases(as_test)
    documents = _documents(root, store, tuple(dict.fromkeys(trace_ids)))
    if as_json:
        click.echo(json.dumps(documents, ensure_ascii=False, indent=2))
        return
    assert as_test is not None
    exported = [as_case(document) for document in documents]
    for document, item in zip(documents, exported, strict=True):
        for note in item.notes:
            click.echo(f"{document['id']}: {note}", err=True)
    names = [item.case["name"] for item in exported]
    _warn_of_one_name(as_test, [document["id"] for document in documents], names)
    new = [item.case for item in exported]
    cases = merge_cases(existing, new)
    versions = sorted({document["version"] for document in documents})
    header = (
        "Test cases recorded from production traces by `mesbridge traces export`.\n"
        f"Recorded with config version {', '.join(versions)}."
    )
    kept = as_test.read_bytes().decode("utf-8") if as_test.is_file() else ""
    crlf = "\r\n" in kept and "\n" not in kept.replace("\r\n", "")  # its line breaks stay CRLF
    spliced = splice_cases(kept.replace("\r\n", "\n") if crlf else kept, new) if existing else None
    if spliced is not None and crlf:
        spliced = spliced.replace("\n", "\r\n")
    if kept.strip() and spliced is None:
        click.echo(
            f"note: {as_test} was written whole, so its comments and layout were not kept (its `tests:` "
            "is not a block list of cases that new cases can be added to)",
            err=True,
        )
    _write(as_test, spliced if spliced is not None else dump_cases(cases, header, description))
    click.echo(f"wrote {len(set(names))} case(s) to {as_test}")
    _try(root, as_test, names, versions)


def _check_folder(file: Path) -> None:
    """A usage error when a folder on the way to `file` is a file."""
    for folder in file.parents:
        if folder.exists():
            if not folder.is_dir():
                raise click.BadParameter(f"{folder} is a file, not a folder", param_hint="'--as-test'")
            return


def _existing_cases(file: Path) -> tuple[list[dict[str, Any]], Any]:
    """The cases `file` holds already (none when it does not exist), and its `description:` (None when
    it has none); when it holds something else, or is not valid YAML, say where as `mesbridge check`
    does and exit 1, leaving it as it is."""
    if not file.is_file():
        return [], None
    loaded = load_yaml(file)
    problems = loaded.diagnostics if not loaded.ok else _not_cases(loaded)
    if problems:
        click.echo(f"mesbridge traces export: {file} was left as it is:", err=True)
        click.echo(format_text(problems, color=sys.stderr.isatty()), err=True)
        raise SystemExit(1)
    data = loaded.data or {}
    return list(data.get("tests") or []), data.get("description")


def _kind(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list", str: "a string", type(None): "empty"}
    return kinds.get(type(value), f"the value {value!r}")


def _not_cases(loaded: LoadedYaml) -> list[Diagnostic]:
    """What keeps a loaded file from being one `traces export` adds cases to: a mapping holding a
    `tests:` list of mappings (and maybe a `description:`), or nothing."""
    data = loaded.data
    if data is None:
        return []
    if not isinstance(data, dict):
        return [
            loaded.diagnostic(
                (), f"expected a mapping with a `tests:` list at the top of the file, found {_kind(data)}"
            )
        ]
    problems = [
        loaded.diagnostic(
            (key,), f"the file holds more than test cases (`{key}:`): export into a file of its own", key=True
        )
        for key in data
        if key not in ("tests", "description")
    ]
    tests = data.get("tests")
    if tests is not None and not isinstance(tests, list):
        found = f"`tests:` is {_kind(tests)}, not a list of test cases"
        problems.append(loaded.diagnostic(("tests",), found))
    elif tests:
        problems += [
            loaded.diagnostic(("tests", index), f"test case {index + 1} is {_kind(case)}, not a mapping")
            for index, case in enumerate(tests)
            if not isinstance(case, dict)
        ]
    return problems


def _warn_of_one_name(file: Path, ids: list[str], names: list[str]) -> None:
    """Warn when traces make cases of one name: the file keeps only the last of them."""
    by_name: dict[str, list[str]] = {}
    for trace_id, name in zip(ids, names, strict=True):
        by_name.setdefault(name, []).append(trace_id)
    for name, same in by_name.items():
        if len(same) > 1:
            click.echo(
                f"traces {', '.join(same[:-1])} and {same[-1]} make one case, {name!r}: "
                f"{file} keeps only the last, {same[-1]}",
                err=True,
            )


def _write(file: Path, text: str) -> None:
    """Write `file` whole or not at all (through a file beside it), making its folder if need be."""
    file = file.resolve() if file.is_symlink() else file  # write where it points, keep the link
    made: list[Path] = []  # the folders made for it, innermost first: removed if the write fails
    folder = file.parent
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    partial = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        for folder in reversed(made):
            folder.mkdir()
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text)
        if file.exists():
            shutil.copymode(file, partial)
        os.replace(partial, file)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(partial) else ""
        raise click.ClickException(f"cannot write {file}: {exc.strerror or exc}{where}") from None


def _try(root: Path, file: Path, names: list[str], versions: list[str]) -> None:
    """Run the exported cases against the config root, and say where `mesbridge test` finds them."""
    if not (root / "connectors").is_dir() and not (root / "mappings").is_dir():
        # the folder `mesbridge demo` ran in, say: the file is written; there is nothing to try it on
        click.echo(
            f"{root} is not a config root, so the cases were not tried: give the root as --root and "
            f"write the file under its mappings/<binding>/, e.g. mappings/<binding>/tests/",
            err=True,
        )
        return
    project = load_project(root)
    if not project.ok:
        _not_tried(root, file, [d for d in project.diagnostics if d.severity == "error"])
    try:
        relative = file.resolve().relative_to((root / "mappings").resolve())
    except ValueError:
        relative = None
    if relative is None or len(relative.parts) < 2:
        click.echo(
            f"mesbridge test reads cases under {root / 'mappings'}/<binding>/: move {file} there, "
            f"e.g. into mappings/<binding>/tests/, to run it with the others",
            err=True,
        )
        return
    entries = [
        entry
        for entry in project.tests
        if entry.source.path.resolve() == file.resolve() and entry.case.name in names
    ]
    if project.version not in versions:
        click.echo(
            f"the root is at config version {project.version}, not the recorded {', '.join(versions)}: "
            "a failing case may be a change of behaviour",
            err=True,
        )
    results = asyncio.run(_run(project, entries))
    failed = [result for result in results if not result.passed]
    for result in failed:
        click.secho(f"FAIL {result.title}", fg="red", err=True)
        for failure in result.failures:
            click.echo("  " + failure.replace("\n", "\n  "), err=True)
    click.echo(f"{len(results) - len(failed)} of {len(results)} exported case(s) pass against {root}")
    if failed:
        raise SystemExit(1)


def _not_tried(root: Path, file: Path, errors: list[Diagnostic]) -> NoReturn:
    """Say, briefly, which config errors kept the cases from being tried, and exit 1."""
    ours = [d for d in errors if (root / d.file).resolve() == file.resolve()]
    errors = ours + [d for d in errors if d not in ours]
    click.echo(f"{root} has config errors, so the cases were not tried:", err=True)
    for d in errors[:_SHOWN]:
        click.echo(f"  {d}", err=True)
    if len(errors) > _SHOWN:
        click.echo(f"  and {len(errors) - _SHOWN} more", err=True)
    if ours:
        click.echo(f"{len(ours)} of them in {file}, the file just written", err=True)
    click.echo(f"`mesbridge check {root}` shows them in full", err=True)
    raise SystemExit(1)


async def _run(project: Any, entries: list[Any]) -> list[Any]:
    return [await run_case(project, entry) for entry in entries]
