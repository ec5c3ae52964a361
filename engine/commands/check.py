"""`mesbridge check`: validate a config root offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.commands._common import root_argument
from engine.config.report import format_github, format_json, format_text
from engine.config.root import load_project


@click.command("check")
@root_argument
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: workflow annotations on the changed lines of a pull request",
)
def check(root: Path, output: str) -> None:
    """Validate schema, expressions, templates and references of ROOT. Exit 1 on findings."""
    project = load_project(root)
    diags = project.diagnostics
    if output == "json":
        click.echo(format_json(diags))
    elif output == "github":
        text = format_github(diags)
        if text:
            click.echo(text)
    elif diags:
        click.echo(format_text(diags, color=sys.stdout.isatty()))
    if output == "text" and project.ok:
        click.echo(
            f"ok: {len(project.connectors)} connector(s), {len(project.pipelines)} pipeline(s), "
            f"{len(project.tests)} test(s) in {root} (version {project.version})"
        )
    raise SystemExit(0 if project.ok else 1)
