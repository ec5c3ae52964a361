"""`mesbridge demo`: the whole loop on one machine, no servers to install.

Starts the Next Plus simulator and the binding's ERP simulator on free loopback ports, and the engine
as `mesbridge run` would (SQLite in a temporary folder, the config root of this checkout or `--root`,
a random webhook token for the session). ERP work orders are polled into Next Plus, the Integration
Builder is configured with the engine's webhook URLs and the binding's work-order source, a scripted
operator shift is played over real HTTP, and a summary is printed: events by kind, the ERP records
written, the externalIds the MES kept, and every failure with the message the operator saw. The
traces of the events are copied into the SQLite store `mesbridge traces` reads in the current folder.
Exit status 0 when the loop ran, 1 when it could not (no work order arrived, nothing delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

BINDINGS = ("priority", "nextup", "nextx")
_ERP_ENV = {"priority": "PRIORITY_URL", "nextup": "NEXTUP_URL", "nextx": "NEXTX_URL"}
_ERP_SUFFIX = {"priority": "/odata/Priority/tabula.ini/demo", "nextup": "", "nextx": ""}
_KIND_OF_ROUTE = {
    "device": "device",
    "item-attach": "item_attach",
    "item_attach": "item_attach",
    "operation": "operation",
}
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TIME_LIMIT = 25.0


class DemoError(Exception):
    """The loop could not run; the message says why."""


def default_root() -> Path:
    """The config root: this checkout when run from one, else the current folder."""
    checkout = Path(__file__).resolve().parents[1]
    for candidate in (checkout, Path.cwd()):
        if (candidate / "connectors").is_dir() and (candidate / "mappings").is_dir():
            return candidate
    return Path.cwd()


@dataclass
class DemoReport:
    """What the demo saw, for the summary."""

    binding: str
    source: str
    root: Path
    erp_workorders: int = 0
    polled_workorders: int = 0
    second_poll_new: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    erp_writes: Counter[str] = field(default_factory=Counter)
    warnings: int = 0
    seconds: float = 0.0
    traces: int = 0
    traces_store: str | None = None
    """Where the demo's traces were kept (the store `mesbridge traces` reads here), if anywhere."""


class _Collector(logging.Handler):
    """Keeps the engine's log records instead of printing them over the summary."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[_Collector]:
    collector = _Collector()
    saved: list[tuple[logging.Logger, int, bool, list[logging.Handler]]] = []
    for name in ("mesbridge", "engine", "uvicorn", "uvicorn.error", "httpx"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate, list(logger.handlers)))
        logger.handlers = [collector]
        logger.propagate = False
        if name.startswith("uvicorn") or name == "httpx":
            logger.setLevel(logging.ERROR)
    try:
        yield collector
    finally:
        for logger, level, propagate, handlers in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)


def _form(path: str, base: str) -> str:
    """A readable name for an ERP write: the path without the base and without keys."""
    rest = path[len(base) :] if base and path.startswith(base) else path
    rest = re.sub(r"\([^)]*\)", "", rest)
    rest = re.sub(r"/[0-9a-fA-F-]{8,}|/\d+", "/{id}", rest)
    return rest or "/"


def _erp_writes(calls: list[dict[str, Any]], base: str) -> Counter[str]:
    counted: Counter[str] = Counter()
    for call in calls:
        if call["method"] not in _WRITES or call["status"] >= 400:
            continue
        name = f"{call['method']} {_form(call['path'], base)}"
        body = call.get("body")
        if isinstance(body, dict):
            method = next(
                (body[k] for k in ("Method", "method", "procedure") if isinstance(body.get(k), str)), None
            )
            if method:
                if method.startswith("Get"):
                    continue  # a JSON-RPC read, sent as a POST like every call
                name += f" {method}"
        counted[name] += 1
    return counted


async def _wait_for_workorders(simulator: Any, source: str, deadline: float) -> int:
    """Until the Next Plus work orders of `source` stop growing (or the deadline passes)."""
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sum(1 for w in simulator.workorders.values() if w.get("source") == source)
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > 0 and time.monotonic() - stable_since > 1.0:
            break
        await asyncio.sleep(0.1)
    return max(last, 0)


async def play(binding: str, root: Path, size: int, seed: int) -> DemoReport:
    """Run the loop for one binding and return what happened."""
    from engine.config.root import load_project
    from engine.errors import StartupError
    from engine.pipeline.sources.webhook import WebhookSource
    from engine.service.server import ServiceHost
    from sandbox import nextplus as nextplus_sim
    from sandbox.command import load_simulators
    from sandbox.serve import serve_in_thread

    started = time.monotonic()
    deadline = started + TIME_LIMIT
    token = secrets.token_urlsafe(24)
    erp_module = load_simulators((binding,))[binding]
    nextplus_app = nextplus_sim.create_app(size=0, seed=seed)
    erp_app = erp_module.create_app(size=size, seed=seed)
    with contextlib.ExitStack() as servers, tempfile.TemporaryDirectory(prefix="mesbridge-demo-") as tmp:
        nextplus_url = servers.enter_context(serve_in_thread(nextplus_app))
        erp_url = servers.enter_context(serve_in_thread(erp_app))
        environ = {
            **os.environ,
            "NEXTPLUS_URL": nextplus_url,
            _ERP_ENV[binding]: erp_url + _ERP_SUFFIX[binding],
            "MESBRIDGE_WEBHOOK_TOKEN": token,
            "MESBRIDGE_BINDINGS": binding,
        }
        for name in ("MESBRIDGE_HOST", "MESBRIDGE_PORT", "MESBRIDGE_STORE"):
            environ.pop(name, None)
        project = await asyncio.to_thread(load_project, root, environ=environ)
        if not project.ok:
            from engine.config.report import format_text

            raise DemoError(f"{root} has config errors:\n{format_text(project.diagnostics)}")
        variables = project.variables.get(binding)
        if variables is None:
            raise DemoError(f"{root} has no binding '{binding}' (mappings/{binding}/)")
        source = str(variables.get("source") or binding.upper())
        report = DemoReport(binding, source, root)
        routes: dict[str, str] = {}
        polls: list[str] = []
        for name, entry in project.pipelines.items():
            if entry.binding != binding:
                continue
            pipeline_source = entry.pipeline.source
            if isinstance(pipeline_source, WebhookSource):
                last = pipeline_source.path.rstrip("/").rsplit("/", 1)[-1]
                if last in _KIND_OF_ROUTE:
                    routes[_KIND_OF_ROUTE[last]] = pipeline_source.path
            elif pipeline_source.kind == "poll" and "workorder" in name.replace("_", "").replace("-", ""):
                polls.append(name)
        if not polls:
            raise DemoError(f"binding '{binding}' has no work-order poll pipeline")
        host = ServiceHost(
            root,
            host="127.0.0.1",
            port=0,
            store_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
            environ=environ,
            reload=False,
        )
        try:
            await host.start()
        except StartupError as exc:
            raise DemoError(str(exc)) from None
        try:
            nextplus = nextplus_app.state.simulator
            erp = erp_app.state.simulator
            report.erp_workorders = _count_erp_workorders(erp)
            report.polled_workorders = await _wait_for_workorders(nextplus, source, deadline - 12)
            if report.polled_workorders == 0:
                raise DemoError(f"no {binding} work order reached Next Plus through {', '.join(polls)}")
            # A second round: everything is already delivered, so nothing new arrives.
            assert host.pollers is not None
            before = len(nextplus.workorders)
            for name in polls:
                poller = host.pollers.running.get(name)
                if poller is not None:
                    report.second_poll_new += await poller.poll_once()
            await _wait_for_workorders(nextplus, source, min(deadline - 10, time.monotonic() + 2))
            report.second_poll_new = max(report.second_poll_new, len(nextplus.workorders) - before)
            urls = {kind: f"{host.url}{path}?token={token}" for kind, path in routes.items()}
            erp.calls.clear()
            async with httpx.AsyncClient(timeout=max(5.0, deadline - time.monotonic())) as client:
                configured = await client.put(
                    f"{nextplus_url}/_admin/integration", json={"source": source, "urls": urls}
                )
                configured.raise_for_status()
                shift = await client.post(
                    f"{nextplus_url}/_admin/shift",
                    json={"seed": seed, "extra": _over_report(nextplus.workorders.values(), source)},
                )
                shift.raise_for_status()
            played = shift.json()
            report.deliveries = played["deliveries"]
            report.refused = played["refused"]
            report.erp_writes = _erp_writes(list(erp.calls), _ERP_SUFFIX[binding])
        finally:
            await host.stop()
        report.traces, report.traces_store = await _keep_traces(f"sqlite:///{Path(tmp) / 'demo.db'}")
    report.seconds = time.monotonic() - started
    return report


async def _keep_traces(demo_store: str) -> tuple[int, str | None]:
    """Copy the demo's traces into the store `mesbridge traces` reads here, when that is a SQLite
    file: the demo's queue, cursors and replies stay in its own temporary store. Never written into
    a PostgreSQL store, which may be a factory's."""
    from engine.config.root import load_project
    from engine.errors import StoreError
    from engine.service.tracer import stored
    from engine.store import TraceQuery, open_store

    target = str(load_project(Path(".")).settings.store)
    if not target.lower().startswith("sqlite:"):
        return 0, None
    source, destination = open_store(demo_store), open_store(target)
    try:
        await source.migrate()
        summaries = await source.list_traces(TraceQuery(limit=100_000))
        documents = [await source.get_trace(summary.id) for summary in summaries]
        rows = [stored(document) for document in reversed(documents) if document is not None]
        await destination.migrate()
        await destination.add_traces(rows)
    except (StoreError, OSError) as exc:
        logging.getLogger("mesbridge.demo").warning("the demo's traces were not kept: %s", exc)
        return 0, None
    finally:
        await source.close()
        await destination.close()
    return len(rows), target


def _over_report(workorders: Any, source: str) -> list[dict[str, Any]]:
    """One report on the last operation of far more units than the work order holds, so the refusal
    shows as the operator sees it (the last one: a binding may book only finished goods)."""
    for wo in sorted(workorders, key=lambda w: w["workorderNumber"]):
        steps = sorted(wo.get("_actions") or [], key=lambda a: a.get("position") or 0)
        if wo.get("source") == source and steps:
            params = {"actCode": steps[-1]["actCode"], "validQty": int(wo["quantity"]) * 100, "invalidQty": 0}
            return [{"kind": "report_operation", "workorder": wo["workorderNumber"], "params": params}]
    return []


def _count_erp_workorders(erp: Any) -> int:
    store = getattr(erp, "store", None)
    tables = getattr(store, "tables", None)
    if isinstance(tables, dict) and "SERIAL" in tables:
        try:
            return len(tables["SERIAL"])
        except TypeError:
            return 0
    for attribute in ("orders", "workorders", "production_orders"):
        value = getattr(erp, attribute, None)
        if isinstance(value, dict | list):
            return len(value)
    return 0


def summarise(report: DemoReport, console: Any) -> None:
    """The summary tables."""
    from rich.table import Table

    deliveries = report.deliveries
    ok = sum(1 for d in deliveries if d["ok"])
    failed = [d for d in deliveries if not d["ok"]]
    console.print(
        f"[bold]mesbridge demo[/bold] binding [cyan]{report.binding}[/cyan] "
        f"(work-order source {report.source}), config root {report.root}"
    )
    console.print(
        f"work orders: {report.polled_workorders} polled from {report.binding} into Next Plus; "
        f"second poll delivered {report.second_poll_new} new"
    )

    events = Table(title="Integration Builder events", title_justify="left")
    for column in ("kind", "type", "sent", "ok", "failed"):
        events.add_column(column, justify="right" if column in ("sent", "ok", "failed") else "left")
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in deliveries:
        grouped.setdefault((d["kind"], d["type"]), []).append(d)
    for (kind, type_), items in sorted(grouped.items()):
        good = sum(1 for d in items if d["ok"])
        events.add_row(kind, type_, str(len(items)), str(good), str(len(items) - good))
    events.add_row("total", "", str(len(deliveries)), str(ok), str(len(failed)), style="bold")
    console.print(events)

    writes = Table(title=f"{report.binding} records written", title_justify="left")
    writes.add_column("call")
    writes.add_column("count", justify="right")
    for name, count in sorted(report.erp_writes.items()):
        writes.add_row(name, str(count))
    console.print(writes)

    ids = Table(title="externalIds kept by Next Plus (first of each kind)", title_justify="left")
    for column in ("kind", "type", "work order", "externalId"):
        ids.add_column(column)
    shown: set[tuple[str, str]] = set()
    for d in deliveries:
        key = (d["kind"], d["type"])
        if d["ok"] and d.get("external_id") and key not in shown:
            shown.add(key)
            ids.add_row(d["kind"], d["type"], d["workorder_number"], str(d["external_id"]))
    console.print(ids)

    if failed:
        failures = Table(title="failures, as the operator saw them", title_justify="left")
        for column in ("kind", "type", "work order", "status", "message"):
            failures.add_column(column, overflow="fold")
        for d in failed:
            failures.add_row(
                d["kind"], d["type"], d["workorder_number"], str(d["status"]), d["message"] or ""
            )
        console.print(failures)
    console.print(
        f"demo {report.binding}: {len(deliveries)} events, {ok} ok, {len(failed)} failed; "
        f"{sum(report.erp_writes.values())} {report.binding} writes; {report.seconds:.1f} s"
    )
    if report.traces_store is not None:
        console.print(
            f"{report.traces} traces kept in {report.traces_store}: `mesbridge traces list --outcome failed` "
            "lists the refused events; `mesbridge traces show ID` opens one"
        )


@click.command("demo")
@click.option(
    "--binding",
    type=click.Choice(BINDINGS),
    default="priority",
    show_default=True,
    help="The ERP binding to play.",
)
@click.option(
    "--size",
    type=click.IntRange(1, 200),
    default=8,
    show_default=True,
    help="Work orders in the ERP simulator.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the data and the shift.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Config root (default: this checkout).",
)
def demo(binding: str, size: int, seed: int, root: Path | None) -> None:
    """Play an operator shift through the simulators and the engine, and summarise it."""
    from rich.console import Console

    console = Console(width=max(120, Console().width), highlight=False)
    config_root = (root or default_root()).resolve()
    with _quiet_logs() as logs:
        try:
            report = asyncio.run(play(binding, config_root, size, seed))
        except DemoError as exc:
            click.echo(f"mesbridge demo: {exc}", err=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            sys.exit(130)
    report.warnings = len(logs.records)
    summarise(report, console)
    if not any(d["ok"] for d in report.deliveries):
        click.echo("mesbridge demo: no event was delivered to the ERP", err=True)
        raise SystemExit(1)
