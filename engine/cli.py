"""The `mesbridge` command. Exit status: 0 fine, 1 findings or failures, 2 usage error.

Each command's module is imported only when that command runs, so `mesbridge check` starts fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("engine.commands.check", "check"),
    "test": ("engine.commands.test", "test"),
    "dry-run": ("engine.commands.dry_run", "dry_run"),
    "schema": ("engine.commands.schema", "schema"),
    "sandbox": ("sandbox.command", "sandbox"),
    "run": ("engine.commands.run", "run"),
    "demo": ("sandbox.demo", "demo"),
    "dlq": ("engine.commands.dlq", "dlq"),
}

_HELP = {
    "check": "Validate a config root offline.",
    "test": "Run the YAML test cases of a config root.",
    "dry-run": "Run one event through one pipeline without sending anything.",
    "schema": "Print the JSON Schema of the config files.",
    "sandbox": "Start the simulators of Next Plus and the ERPs.",
    "run": "Serve the pipelines: webhooks, queue workers, pollers.",
    "demo": "Play a shift through simulators and the engine, and summarise it.",
    "dlq": "Inspect and act on dead letters.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._available(name))

    @staticmethod
    def _available(name: str) -> bool:
        module, _ = _COMMANDS[name]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None or not self._available(cmd_name):
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mesbridge", prog_name="mesbridge")
def main() -> None:
    """mesbridge: Next Plus MES <-> ERP bindings as YAML, run by one engine."""


if __name__ == "__main__":
    main()
