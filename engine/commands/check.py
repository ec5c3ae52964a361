"""`mesbridge check`: validate a config root offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine import env
from engine.commands._common import root_argument
from engine.config.diagnostic import sort_diagnostics
from engine.config.references import path_templates
from engine.config.report import format_github, format_json, format_text
from engine.config.root import load_project
from engine.config.unset import unloadable_ca_files, unset_references


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
@click.option(
    "--raw-paths",
    is_flag=True,
    help="Also list every URL path that inserts a value as written (`| path_raw`), not as data",
)
def check(root: Path, output: str, raw_paths: bool) -> None:
    """Validate schema, expressions, templates and references of ROOT. Exit 1 on findings."""
    project = load_project(root)
    # a warning: check runs where the secrets are not (CI); `mesbridge run` refuses to start instead
    unset = unset_references(project, env.current(), severity="warning")
    unset += unloadable_ca_files(project, env.current(), severity="warning")
    diags = sort_diagnostics([*project.diagnostics, *unset])
    if raw_paths and project.ok:
        _list_raw_paths(project)
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


def _list_raw_paths(project: Any) -> None:
    found = 0
    for source, loc, path in path_templates(project):
        if path.raw_lines:
            found += 1
            diagnostic = source.diagnostic(loc, f"inserts a value as written: {path.source}")
            click.echo(f"{diagnostic.file}:{diagnostic.line}:{diagnostic.col}: {diagnostic.message}")
    click.echo(f"{found} path(s) insert a value as written (| path_raw); every other value is data")
