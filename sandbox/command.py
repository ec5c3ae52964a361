"""`mesbridge sandbox`: run the simulators on local ports until interrupted.

Every simulator module in `SIMULATORS` exposes `NAME`, `DEFAULT_PORT`, `CREDENTIALS` and
`create_app(*, size, seed, faults) -> Starlette`. All servers share one asyncio loop; SIGINT and
SIGTERM stop them all and the command exits 0.

`--fault NAME:SPEC` (or `--faults`, repeatable; several for one simulator add up) sets the faults of
one simulator at start, in `sandbox.base.Faults.parse` syntax, e.g.
`--fault priority:apply_then_error=0.2 --fault nextplus:latency=0.1,reset_after_body=0.05`. They can
be changed at run time with `PUT` or `PATCH /_admin/faults` on each simulator.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import socket
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import click

from sandbox.base import Faults
from sandbox.serve import QuietServer, bind_socket, make_server

__all__ = ["SIMULATORS", "load_simulators", "parse_faults", "sandbox"]

SIMULATORS = ("nextplus", "priority", "nextup", "nextx")


def load_simulators(names: tuple[str, ...] = SIMULATORS) -> dict[str, ModuleType]:
    """The simulator modules by name, in `SIMULATORS` order."""
    return {name: importlib.import_module(f"sandbox.{name}") for name in names}


@dataclass
class _Running:
    name: str
    url: str
    credentials: dict[str, Any]
    server: QuietServer
    sock: socket.socket


def parse_faults(specs: tuple[str, ...], names: list[str]) -> dict[str, Faults]:
    """`NAME:SPEC` options by simulator; the specs of one simulator are joined, a later key wins."""
    texts: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, text = spec.partition(":")
        if not sep or name not in names:
            raise click.BadParameter(
                f"{spec!r}: expected NAME:spec with NAME one of {', '.join(names)}", param_hint="--fault"
            )
        try:
            Faults.parse(text)
        except ValueError as exc:
            raise click.BadParameter(f"{spec!r}: {exc}", param_hint="--fault") from exc
        texts.setdefault(name, []).append(text)
    try:
        return {name: Faults.parse(",".join(parts)) for name, parts in texts.items()}
    except ValueError as exc:  # each spec is valid alone, not together (e.g. rates above 1 in sum)
        raise click.BadParameter(str(exc), param_hint="--fault") from exc


def _env(item: _Running) -> dict[str, str]:
    """The variable the shipped connector of a simulator takes its base URL from, set to it."""
    return {f"{item.name.upper()}_URL": item.url + item.credentials.get("path", "").rstrip("/")}


async def _serve(running: list[_Running], as_json: bool) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for item in running:
            item.server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(item.server.serve(sockets=[item.sock])) for item in running]
    while not all(item.server.started for item in running):
        if any(task.done() for task in tasks):
            stop()
            break
        await asyncio.sleep(0.01)
    else:
        for item in running:
            if as_json:
                line = json.dumps(
                    {"name": item.name, "url": item.url, "credentials": item.credentials, "env": _env(item)}
                )
            else:
                creds = " ".join(f"{k}={v}" for k, v in item.credentials.items())
                line = f"{item.name:<9} {item.url}  {creds}"
            click.echo(line)
        if not as_json:
            click.echo("# the shipped connectors read these; paste them where `mesbridge run` starts:")
            for item in running:
                for name, value in _env(item).items():
                    click.echo(f"export {name}={value}")
        sys.stdout.flush()
    await asyncio.gather(*tasks, return_exceptions=True)


@click.command("sandbox")
@click.option("--only", default="", help="Comma-separated simulators to run (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per simulator.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port-base", type=int, default=None, help="Ports from here on, in the order " + ", ".join(SIMULATORS)
)
@click.option(
    "--size", type=int, default=None, help="Size of the seeded data (default: each simulator's own)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated data.")
@click.option(
    "--fault",
    "--faults",
    "fault_specs",
    multiple=True,
    metavar="NAME:SPEC",
    help="Faults of one simulator, repeatable, e.g. priority:latency=0.2,error_rate=0.1,throttle=100 "
    "or priority:apply_then_error=0.2,apply_then_timeout=0.1,reset_after_body=0.1 (see sandbox/base.py).",
)
def sandbox(
    only: str,
    as_json: bool,
    host: str,
    port_base: int | None,
    size: int | None,
    seed: int,
    fault_specs: tuple[str, ...],
) -> None:
    """Start the Next Plus, Priority, NextUp and NextX simulators and print how to reach them."""
    wanted = [n.strip() for n in only.split(",") if n.strip()] or list(SIMULATORS)
    unknown = [n for n in wanted if n not in SIMULATORS]
    if unknown:
        raise click.BadParameter(
            f"unknown simulator(s) {', '.join(unknown)}; valid: {', '.join(SIMULATORS)}", param_hint="--only"
        )
    faults = parse_faults(fault_specs, wanted)
    running: list[_Running] = []
    try:
        modules = load_simulators(tuple(n for n in SIMULATORS if n in wanted))
        for name, module in modules.items():
            port = module.DEFAULT_PORT if port_base is None else port_base + SIMULATORS.index(name)
            options: dict[str, Any] = {"seed": seed, "faults": faults.get(name)}
            if size is not None:
                options["size"] = size
            app = module.create_app(**options)
            try:
                sock = bind_socket(host, port)
            except OSError as exc:
                raise click.ClickException(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from exc
            url = f"http://{host}:{sock.getsockname()[1]}"
            running.append(_Running(name, url, dict(module.CREDENTIALS), make_server(app), sock))
        asyncio.run(_serve(running, as_json))
    except KeyboardInterrupt:
        pass
    finally:
        for item in running:
            item.sock.close()


if __name__ == "__main__":
    sandbox()
