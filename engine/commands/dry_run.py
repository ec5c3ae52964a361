"""`mesbridge dry-run`: one event through one pipeline; prints the calls it would make and the reply."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from engine.commands._common import load_or_exit, root_option
from engine.config.report import format_text
from engine.pipeline.models import MockResponse
from engine.redaction import environment_redactor
from engine.suggest import did_you_mean
from engine.testing.runner import run_pipeline_offline
from engine.testing.samples import load_responses


def _read_data(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise click.UsageError(f"cannot read {what} {path}: {exc}") from None


@click.command("dry-run")
@click.argument("pipeline")
@click.option("--event", "event_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--responses",
    "responses_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON list of mocked responses (as in test cases); others answer 200 {}",
)
@root_option
def dry_run(pipeline: str, event_path: Path, responses_path: Path | None, root: Path) -> None:
    """Run EVENT through PIPELINE without sending anything; print the calls and the reply."""
    project = load_or_exit(root)
    if pipeline not in project.pipelines:
        hint = did_you_mean(pipeline, project.pipelines)
        raise click.UsageError(f"unknown pipeline '{pipeline}'" + (f"; {hint}" if hint else ""))
    event = _read_data(event_path, "event")
    responses: list[MockResponse] = []
    if responses_path is not None:
        responses, problems = load_responses(responses_path, responses_path.as_posix())
        if any(d.severity == "error" for d in problems):
            click.echo("mesbridge dry-run: cannot read the responses:", err=True)
            click.echo(format_text(problems, color=sys.stderr.isatty()), err=True)
            raise SystemExit(click.UsageError.exit_code)
    outcome, backend = asyncio.run(
        run_pipeline_offline(project, pipeline, event, responses, fallback_status=200)
    )
    redactor = environment_redactor()
    report = {
        "pipeline": pipeline,
        "calls": [call.as_dict() | ({} if call.matched else {"mocked": False}) for call in backend.calls],
        "reply": {"status": outcome.status, "body": outcome.body},
    }
    if backend.pending:  # a mistyped path or method: its call was answered 200 {} instead
        report["unused_responses"] = [f"{r.connector} {r.method} {r.path}" for r in backend.pending]
    click.echo(yaml.safe_dump(redactor.redact(report), sort_keys=False, allow_unicode=True))
    raise SystemExit(0 if outcome.ok else 1)
