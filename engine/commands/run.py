"""`mesbridge run`: serve a config root's webhooks, queue workers and pollers until SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from engine.commands._common import root_argument
from engine.errors import MesbridgeError, StartupError
from engine.service.server import ServiceHost


def _run_loop(host: ServiceHost) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(host.serve_forever())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(host.serve_forever())


@click.command("run")
@root_argument
@click.option("--host", default=None, help="Listen address (default: settings, MESBRIDGE_HOST, 127.0.0.1)")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Listen port (default: settings, MESBRIDGE_PORT, 8600)",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="State store URL: sqlite:///mesbridge.db (relative to the current folder) or postgresql://…",
)
@click.option("--no-reload", is_flag=True, help="Do not watch the config root for edits")
@click.option(
    "--root-path",
    default=None,
    help="The path prefix a reverse proxy serves mesbridge under and strips, e.g. /mesbridge "
    "(default: MESBRIDGE_ROOT_PATH, none); the console's links, redirects and cookies include it",
)
def run(
    root: Path,
    host: str | None,
    port: int | None,
    store_url: str | None,
    no_reload: bool,
    root_path: str | None,
) -> None:
    """Serve ROOT: webhooks, durable queue delivery, pollers, hot reload, /metrics and /status, and the
    operator console at /console when MESBRIDGE_CONSOLE_USERS (or _USERS_FILE) names its users."""
    service = ServiceHost(
        root,
        host=host,
        port=port,
        store_url=store_url,
        reload=False if no_reload else None,
        configure_logging=True,
        root_path=root_path,
    )
    try:
        _run_loop(service)
    except StartupError as exc:
        click.echo(f"mesbridge run: {exc}", err=True)
        raise SystemExit(1) from None
    except MesbridgeError as exc:
        click.echo(f"mesbridge run: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.exit(130)
