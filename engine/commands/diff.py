"""`mesbridge diff`: the same events through two config roots, offline; what the change does."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from engine.commands._common import load_or_exit
from engine.config.diagnostic import Diagnostic
from engine.config.report import format_text
from engine.config.root import Project
from engine.helpers import iso8601
from engine.redaction import environment_redactor
from engine.testing.diff_report import (
    format_github,
    format_json,
    format_markdown,
    report_document,
)
from engine.testing.diff_report import format_text as format_report
from engine.testing.replay import compare_roots
from engine.testing.samples import Sample, samples_from_cases, samples_from_events, samples_from_tests

USAGE = click.UsageError.exit_code
_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _gather(
    base: Project, head: Project, from_tests: bool, folders: tuple[Path, ...], files: tuple[Path, ...]
) -> list[Sample]:
    pipelines = set(base.pipelines) | set(head.pipelines)
    samples: list[Sample] = []
    problems: list[Diagnostic] = []
    if from_tests:
        found, wrong = samples_from_tests(base, head)
        if not found and not wrong:  # --from-tests where neither root has a case compares nothing
            click.echo("mesbridge diff: --from-tests: neither root has a test case to compare", err=True)
            raise SystemExit(USAGE)
        samples += found
        problems += wrong
    for folder in folders:
        found, wrong = samples_from_events(folder, pipelines)
        samples += found
        problems += wrong
    for file in files:
        found, wrong = samples_from_cases(file, pipelines)
        if not found and not wrong:  # as an events folder without events is
            wrong = [Diagnostic(file.as_posix(), 0, 0, "no test cases: expected a top-level `tests:` list")]
        samples += found
        problems += wrong
    if any(d.severity == "error" for d in problems):
        click.echo("mesbridge diff: cannot read the events:", err=True)
        click.echo(format_text(problems, color=sys.stderr.isatty()), err=True)
        raise SystemExit(USAGE)
    return samples


@click.command("diff")
@click.argument("base", type=_FOLDER)
@click.argument("head", type=_FOLDER, default=Path("."), required=False)
@click.option("--from-tests", is_flag=True, help="Every YAML test case of either root")
@click.option(
    "--events",
    "folders",
    multiple=True,
    type=_FOLDER,
    help="A folder of JSON events: <pipeline>/<name>.json (responses in <name>.responses.yaml), or "
    '<name>.json holding {"pipeline", "event", "responses"}',
)
@click.option(
    "--from-traces",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file of test cases (a top-level tests: list, as `traces export --as-test` writes)",
)
@click.option("-k", "keyword", help="Only events whose name or pipeline contains this")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "markdown", "github"]),
    default="text",
    show_default=True,
    help="markdown: a pull-request comment; github: workflow annotations and the step summary",
)
@click.option(
    "--now",
    "moment",
    callback=_moment,
    help="The time now() reads on both sides, ISO 8601 (default: the current time)",
)
def diff(
    base: Path,
    head: Path,
    from_tests: bool,
    folders: tuple[Path, ...],
    files: tuple[Path, ...],
    keyword: str | None,
    output: str,
    moment: datetime,
) -> None:
    """Run the same events through BASE and HEAD (default: the current folder) offline, with the same
    mocked responses, and show what changes in the calls and the replies.

    Exit 0 when nothing changed, 1 when something did, 2 when the diff cannot be made (also when
    a source given, or -k, leaves no event to compare).
    """
    if not (from_tests or folders or files):
        raise click.UsageError("give the events to compare: --from-tests, --events DIR or --from-traces FILE")
    before = load_or_exit(base, status=USAGE, title=f"mesbridge diff: the base root {base} does not load:")
    after = load_or_exit(head, status=USAGE, title=f"mesbridge diff: the head root {head} does not load:")
    samples = _gather(before, after, from_tests, folders, files)
    if keyword is not None:
        samples = [s for s in samples if keyword in s.name or keyword in s.pipeline]
        if not samples:  # a mistyped filter must not pass as "no changes"
            click.echo(f"mesbridge diff: no event matches -k {keyword!r}: nothing was compared", err=True)
            raise SystemExit(USAGE)
    try:
        report = asyncio.run(compare_roots(before, after, samples, lambda: moment))
    except Exception as exc:  # never a traceback: say what failed, and that no diff was made
        click.echo(f"mesbridge diff: could not compare the roots: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(USAGE) from None
    document = report_document(
        report,
        base=(base.as_posix(), before.version),
        head=(head.as_posix(), after.version),
        head_root=head,
        clock=iso8601(moment) or "",
        redactor=environment_redactor(),
    )
    if output == "json":
        click.echo(format_json(document))
    elif output == "markdown":
        click.echo(format_markdown(document), nl=False)
    elif output == "github":
        click.echo(format_github(document))
        _step_summary(format_markdown(document))
    else:
        click.echo(format_report(document))
    raise SystemExit(1 if report.changed else 0)


def _step_summary(markdown: str) -> None:
    """Append the Markdown report to the job's summary page, when run in GitHub Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")
    except OSError as exc:
        click.echo(f"mesbridge diff: cannot write the step summary {target}: {exc}", err=True)
