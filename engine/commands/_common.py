"""What the commands share: loading a config root and reporting its findings."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.config.report import format_text
from engine.config.root import Project, load_project


def root_argument(function: click.decorators.FC) -> click.decorators.FC:
    """The optional ROOT argument: a config root, the current folder by default."""
    return click.argument(
        "root", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
    )(function)


def load_or_exit(root: Path) -> Project:
    """Load a config root; on errors print them located and exit 1."""
    project = load_project(root)
    if not project.ok:
        click.echo(format_text(project.diagnostics, color=sys.stderr.isatty()), err=True)
        raise SystemExit(1)
    return project
