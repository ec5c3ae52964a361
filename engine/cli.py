"""The `mesbridge` command. Exit status: 0 fine, 1 findings or failures, 2 usage error.

Every module of `engine.commands` is one command (`dry_run.py` is `mesbridge dry-run`), and other
packages of the distribution add theirs through the `mesbridge.commands` entry-point group (the
simulators' `sandbox` and `demo`). A command's module is imported only when that command runs, so
`mesbridge check` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

import click

from engine import commands as _commands

__all__ = ["main"]


@cache
def _available() -> dict[str, str]:
    """Command name -> "module" (engine's own) or "module:attribute" (an entry point)."""
    found = {
        info.name.replace("_", "-"): f"{_commands.__name__}.{info.name}"
        for info in pkgutil.iter_modules(_commands.__path__)
        if not info.name.startswith("_")
    }
    for point in entry_points(group="mesbridge.commands"):
        found.setdefault(point.name, point.value)
    return found


def _load(name: str, target: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        command = getattr(module, attribute)
    else:
        commands = (value for value in vars(module).values() if isinstance(value, click.Command))
        command = next(value for value in commands if value.name == name)
    assert isinstance(command, click.Command)
    return command


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _available().get(cmd_name)
        return None if target is None else _load(cmd_name, target)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mesbridge", prog_name="mesbridge")
def main() -> None:
    """mesbridge: Next Plus MES <-> ERP bindings as YAML, run by one engine."""


if __name__ == "__main__":
    main()
