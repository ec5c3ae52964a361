"""Printing a `DiffReport`: text for people, JSON for tools, Markdown for a pull-request comment, and
GitHub Actions workflow commands.

Every format is drawn from one plain document (`report_document`), so they cannot disagree; secrets
are masked in it before anything is printed.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from engine.config.report import escape_data, escape_property
from engine.redaction import Redactor
from engine.testing.diff import MISSING, CallChange, Change
from engine.testing.replay import DiffReport, EventReport, PipelineSummary

__all__ = [
    "COMMENT_LIMIT",
    "MARKER",
    "format_github",
    "format_json",
    "format_markdown",
    "format_text",
    "report_document",
]

COMMENT_LIMIT = 65_536
"""GitHub refuses a pull-request comment longer than this many characters."""

MARKER = "<!-- mesbridge-diff -->"
"""The first line of the Markdown form: a workflow finds its earlier comment by it, to update it."""

_CELL = 240
_ORIGIN = {"base": "only in base's tests", "head": "only in head's tests"}


def _field(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = {"field": change.path or "(value)", "change": change.kind}
    if change.before is not MISSING:
        data["before"] = change.before
    if change.after is not MISSING:
        data["after"] = change.after
    return data


def _call(change: CallChange) -> dict[str, Any]:
    call = change.call
    data: dict[str, Any] = {
        "change": change.kind,
        "connector": call.connector,
        "method": call.method,
        "path": call.path,
        "number_before": change.number_before,
        "number_after": change.number_after,
        "mocked": call.matched,
    }
    if change.kind == "changed":
        data["fields"] = [_field(field) for field in change.fields]
        if change.before is not None and change.before.path != call.path:
            data["path_before"] = change.before.path
    else:
        shown = call.as_dict()
        data["request"] = {key: shown[key] for key in ("query", "body") if key in shown}
    return data


def _event(event: EventReport, head_root: Path) -> dict[str, Any]:
    sample = event.sample
    data: dict[str, Any] = {
        "pipeline": sample.pipeline,
        "name": sample.name,
        "source": sample.where,
        "origin": sample.origin,
        "status": event.status,
        "calls": [_call(call) for call in event.diff.changed_calls],
        "result": [_field(change) for change in event.diff.result],
    }
    if sample.line:
        data["line"] = sample.line
    if sample.origin in ("head", "both"):  # where an annotation goes: a file of the pull request
        data["file"] = Path(os.path.relpath(head_root / sample.where)).as_posix()
    elif sample.origin in ("cases", "events"):
        data["file"] = sample.where
    notes = [sample.note] if sample.note else []
    if not sample.responses:
        notes.append("no mocked responses: every call is answered 200 {}")
    if notes:
        data["note"] = "; ".join(notes)
    data["responses"] = len(sample.responses)
    return data


def _pipeline(summary: PipelineSummary) -> dict[str, Any]:
    return {
        "pipeline": summary.name,
        "status": summary.status,
        "events": summary.events,
        "changed": summary.changed,
        "edited": summary.edited,
    }


def report_document(
    report: DiffReport,
    *,
    base: tuple[str, str],
    head: tuple[str, str],
    head_root: Path,
    clock: str,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """The report as plain data: the roots (`(shown, version)`), the clock both runs read, the
    per-pipeline summary, and every event with its changed calls and result fields."""
    compared = [e for e in report.events if e.status in ("same", "changed")]
    document = {
        "base": {"root": base[0], "version": base[1]},
        "head": {"root": head[0], "version": head[1]},
        "clock": clock,
        "changed": report.changed,
        "summary": {
            "events": len(report.events),
            "compared": len(compared),
            "changed": len(report.changed_events),
            "pipelines": [_pipeline(p) for p in report.pipelines],
        },
        "events": [_event(event, head_root) for event in report.events],
    }
    return redactor.redact(document) if redactor is not None else document


def format_json(document: dict[str, Any]) -> str:
    """The document as JSON, keys sorted: stable for tools and for diffs of its own."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _show(value: Any, limit: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _numbers(call: dict[str, Any]) -> str:
    before, after = call["number_before"], call["number_after"]
    if before is None or after is None:
        return f"#{after if before is None else before}"
    return f"#{before}" if before == after else f"#{before}→#{after}"


def _call_title(call: dict[str, Any]) -> str:
    path = f"{call['path_before']} → {call['path']}" if "path_before" in call else call["path"]
    return f"call {_numbers(call)} {call['connector']} {call['method']} {path}"


def _count(number: int, word: str) -> str:
    return f"{number} {word}" + ("" if number == 1 else "s")


def _pipeline_line(pipeline: dict[str, Any]) -> str:
    events = pipeline["events"]
    if pipeline["status"] in ("added", "removed"):
        return f"pipeline {pipeline['status']} ({_count(events, 'event')} not compared)"
    if not events:
        return "definition edited, no event runs it" if pipeline["edited"] else "no events"
    text = f"{pipeline['changed']} of {_count(events, 'event')} changed"
    if pipeline["edited"] and not pipeline["changed"]:
        text += " (its definition is edited: no event shows a difference)"
    return text


def _headline(document: dict[str, Any]) -> str:
    summary = document["summary"]
    base, head = document["base"]["root"], document["head"]["root"]
    compared = _count(summary["compared"], "event")
    if not document["changed"]:
        return f"no changes: {compared} behave the same in {base} and {head}"
    return f"{summary['changed']} of {compared} changed from {base} to {head}"


def _listed(document: dict[str, Any], *, always: bool = False) -> list[dict[str, Any]]:
    """The pipelines a summary lists: those with events, added, removed or edited; unless `always`,
    none when nothing changed."""
    quiet = not document["changed"] and not any(p["edited"] for p in document["summary"]["pipelines"])
    if quiet and not always:
        return []
    return [
        p
        for p in document["summary"]["pipelines"]
        if p["events"] or p["status"] in ("added", "removed") or p["edited"]
    ]


def _value_text(field: dict[str, Any]) -> str:
    before = _show(field["before"], 200) if "before" in field else "(absent)"
    after = _show(field["after"], 200) if "after" in field else "(absent)"
    return f"{before} → {after}"


def _event_title(event: dict[str, Any]) -> str:
    where = event["source"] + (f":{event['line']}" if event.get("line") else "")
    origin = f", {_ORIGIN[event['origin']]}" if event["origin"] in _ORIGIN else ""
    return f"{event['pipeline']} :: {event['name']} ({where}{origin})"


def _event_lines(event: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for call in event["calls"]:
        unmocked = (
            "" if call["mocked"] or not event["responses"] else " (no mocked response: answered 200 {})"
        )
        lines.append(f"{_call_title(call)}: {call['change']}{unmocked}")
        for field in call.get("fields", []):
            lines.append(f"    {field['field']}: {_value_text(field)}")
        for key, value in call.get("request", {}).items():
            lines.append(f"    {key}: {_show(value, 200)}")
    for field in event["result"]:
        lines.append(f"{field['field']}: {_value_text(field)}")
    return lines


def format_text(document: dict[str, Any]) -> str:
    """For the terminal: each changed event with its calls and fields, then the summary."""
    out: list[str] = []
    for event in document["events"]:
        if event["status"] != "changed":
            continue
        out.append(f"~ {_event_title(event)}")
        if "note" in event:
            out.append(f"  note: {event['note']}")
        out.extend("  " + line for line in _event_lines(event))
        out.append("")
    for pipeline in _listed(document):
        out.append(f"{pipeline['pipeline']}: {_pipeline_line(pipeline)}")
    out.append(_headline(document))
    return "\n".join(out)


def _code(value: str) -> str:
    """A table cell's code span that neither Markdown tables nor HTML misread."""
    return "<code>" + html.escape(value, quote=False).replace("|", "&#124;") + "</code>"


def _cell(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "&#124;")


def _value_cell(field: dict[str, Any], side: str) -> str:
    return _code(_show(field[side], _CELL)) if side in field else "—"


def _markdown_event(event: dict[str, Any]) -> str:
    rows: list[str] = []
    for call in event["calls"]:
        title = _code(_call_title(call))
        unmocked = "" if call["mocked"] or not event["responses"] else " (not mocked: 200 {})"
        if call["change"] == "changed":
            for field in call["fields"]:
                rows.append(
                    f"| {title} {_code(field['field'])} | {_value_cell(field, 'before')} "
                    f"| {_value_cell(field, 'after')} |"
                )
        else:
            request = _code(_show(call["request"], _CELL)) if call["request"] else ""
            made = f"call added{unmocked} {request}"
            before, after = ("—", made) if call["change"] == "added" else (f"call removed {request}", "—")
            rows.append(f"| {title} | {before} | {after} |")
    for field in event["result"]:
        rows.append(
            f"| {_code(field['field'])} | {_value_cell(field, 'before')} | {_value_cell(field, 'after')} |"
        )
    where = event["source"] + (f":{event['line']}" if event.get("line") else "")
    origin = f" · {_ORIGIN[event['origin']]}" if event["origin"] in _ORIGIN else ""
    summary = f"<b>{_cell(event['pipeline'])}</b> · {_cell(event['name'])} · {_code(where)}{_cell(origin)}"
    parts = [f"<details><summary>{summary}</summary>", ""]
    if "note" in event:
        parts += [f"_{_cell(event['note'])}_", ""]
    parts += ["| field | before | after |", "|---|---|---|", *rows, "", "</details>", "", ""]
    return "\n".join(parts)


def format_markdown(document: dict[str, Any], limit: int = COMMENT_LIMIT) -> str:
    """For a pull-request comment: a heading, the summary table, a collapsible table per changed
    event; cut short with a note to stay within `limit` characters."""
    base, head = document["base"], document["head"]
    lines = [
        MARKER,
        f"### mesbridge diff: {_cell(_headline(document))}",
        "",
        f"base {_code(base['root'])} ({base['version']}) → head {_code(head['root'])} ({head['version']}); "
        f"clock {_code(document['clock'])}",
        "",
    ]
    pipelines = _listed(document, always=True)
    if pipelines:
        lines += ["| pipeline | events | changed |", "|---|---:|---|"]
        for p in pipelines:
            plain = p["status"] in ("same", "changed") and not (p["edited"] and not p["changed"])
            cell = str(p["changed"]) if plain else _cell(_pipeline_line(p))
            lines.append(f"| {_code(p['pipeline'])} | {p['events']} | {cell} |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    changed = [event for event in document["events"] if event["status"] == "changed"]
    for shown, event in enumerate(changed):
        section = _markdown_event(event)
        rest = len(changed) - shown
        note = (
            f"\n_{_count(rest, 'more changed event')} not shown: the comment would exceed {limit} "
            "characters; run `mesbridge diff` locally, or with `--format json`._\n"
        )
        if len(text) + len(section) + len(note) > limit:
            return text + note
        text += section
    return text


def _annotation(event: dict[str, Any]) -> str:
    properties = []
    if "file" in event:
        properties.append(f"file={escape_property(event['file'])}")
        if event.get("line"):
            properties.append(f"line={event['line']}")
    properties.append(f"title={escape_property('mesbridge diff: ' + event['pipeline'])}")
    what = [_count(len(event["calls"]), "call")] if event["calls"] else []
    what += ["the outcome"] if event["result"] else []
    message = [f"{event['name']}: {' and '.join(what)} changed"] + _event_lines(event)[:20]
    return f"::warning {','.join(properties)}::{escape_data(chr(10).join(message))}"


def format_github(document: dict[str, Any]) -> str:
    """GitHub Actions workflow commands: a warning per changed event (on its test case when the
    case is in head) and per added or removed pipeline, then a notice with the headline."""
    out = [_annotation(event) for event in document["events"] if event["status"] == "changed"]
    for p in document["summary"]["pipelines"]:
        if p["status"] in ("added", "removed"):
            title = escape_property(f"mesbridge diff: pipeline {p['status']}")
            out.append(f"::warning title={title}::{escape_data(p['pipeline'] + ': ' + _pipeline_line(p))}")
    out.append(f"::notice title={escape_property('mesbridge diff')}::{escape_data(_headline(document))}")
    return "\n".join(out)
