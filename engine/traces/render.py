"""A trace as a readable tree: the run, its steps nested as in the YAML, each step's calls under it.

3f2a9c1e0b7d4a55  erp.report  failed 422  12.4 ms
  event    webhook  erp.report:ev-17  received 2026-12-01T10:00:00+00:00  config 9408e85642fb
  error    business: erp answered HTTP 400: the quantity exceeds what is left to report
  ├─ steps[0] call before                              ok      3.1 ms
  │  └─ erp GET /reports  $filter=…                    200     2.9 ms
  └─ steps[1] call report                              failed  5.0 ms
     └─ erp POST /reports                              400     4.8 ms
  reply    422 {"message": "…"}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render", "tree"]

_WIDTH = 100
_COLUMN = 64
"""Where the status column starts, whatever the depth."""


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f} ms"


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _parents(step_id: str) -> list[str]:
    """Where a step may sit, nearest first: `steps[1].cases.add[0]` in `steps[1].cases`, `steps[1]`."""
    found = []
    while "." in step_id:
        step_id = step_id.rpartition(".")[0]
        found.append(step_id)
    return found


def tree(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps as nodes with children (nested steps and calls, in the order they happened)."""
    roots: list[dict[str, Any]] = []
    open_by_id: dict[str, dict[str, Any]] = {}
    for step in trace.get("steps", []):
        node = {"step": step, "children": [], "end": step["start"] + step["duration"]}
        holder = next((open_by_id[p] for p in _parents(step["id"]) if p in open_by_id), None)
        (holder["children"] if holder is not None else roots).append(node)
        open_by_id[step["id"]] = node  # a loop's next pass replaces its previous one
    nodes_by_id: dict[str, list[dict[str, Any]]] = {}
    for node in _walk(roots):
        nodes_by_id.setdefault(node["step"]["id"], []).append(node)
    for call in trace.get("calls", []):
        candidates = nodes_by_id.get(call.get("step") or "", [])
        started = [n for n in candidates if n["step"]["start"] <= call.get("end", 0.0) + 1e-6]
        target = started[-1] if started else (candidates[0] if candidates else None)
        entry = {"call": call}
        (target["children"] if target is not None else roots).append(entry)
    return roots


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for node in nodes:
        if "step" in node:
            found.append(node)
            found.extend(_walk(node["children"]))
    return found


def _step_line(step: dict[str, Any], width: int) -> str:
    label = f"{step['id']} {step['type']}" + (f" {step['name']}" if step.get("name") else "")
    status = step["status"]
    timing = "" if status == "skipped" else _ms(step["duration"])
    line = f"{label:<{width}} {status:<8} {timing}"
    if step.get("error") and status != "ok":
        line += f"  {_short(step['error'], 80)}"
    return line.rstrip()


def _call_line(call: dict[str, Any], width: int) -> str:
    query = "&".join(f"{k}={v}" for k, v in (call.get("query") or {}).items())
    target = f"{call['method']} {call['path']}" + (f"  {query}" if query else "")
    status = str(call["status"]) if call.get("status") is not None else (call.get("failure") or "error")
    notes = []
    if call.get("login"):
        notes.append("login")
    elif call.get("token_rejected"):
        notes.append("token rejected, sent again after a login")
    elif call.get("attempt", 1) > 1:
        notes.append(f"attempt {call['attempt']}")
    if call.get("failure"):
        notes.append(call["failure"].replace("_", " "))
    if call.get("error"):
        notes.append(_short(call["error"], 80))
    line = (
        f"{_short(call['connector'] + ' ' + target, width):<{width}} {status:<8} {_ms(call.get('latency'))}"
    )
    return (line + ("  " + ", ".join(notes) if notes else "")).rstrip()


def _lines(nodes: list[dict[str, Any]], prefix: str, bodies: bool) -> list[str]:
    out: list[str] = []
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        branch, inner = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if "step" in node:
            out.append(prefix + branch + _step_line(node["step"], _COLUMN - len(prefix)))
            out.extend(_lines(node["children"], prefix + inner, bodies))
            continue
        call = node["call"]
        out.append(prefix + branch + _call_line(call, _COLUMN - len(prefix)))
        if bodies:
            for label in ("request", "reply"):
                if call.get(label) is not None:
                    out.append(f"{prefix}{inner}   {label:<8} {_short(call[label], _WIDTH)}")
    return out


def render(trace: dict[str, Any], *, bodies: bool = True) -> str:
    """The trace as text: a heading, the event, the error, the step tree and the reply."""
    status = trace.get("status")
    head = f"{trace['id']}  {trace['pipeline']}  {trace['outcome']}" + (f" {status}" if status else "")
    lines = [f"{head}  {_ms(trace.get('duration'))}"]
    origin = f"{trace['source']}  {trace['event_id']}  received {trace['received']}"
    lines.append(f"  event    {origin}  config {trace['version']}")
    if trace.get("attempt") is not None:
        then = {"retry": ", to be retried", "dead": ", moved to the dead letters"}.get(
            trace.get("then") or "", ""
        )
        lines.append(f"  attempt  {trace['attempt']}{then}")
    if bodies:
        lines.append(f"  payload  {_short(trace.get('event'), _WIDTH)}")
    error = trace.get("error")
    if error:
        lines.append(f"  error    {error['kind']}: {error['message']}")
    lines.extend(_lines(tree(trace), "  ", bodies))
    lines.append(f"  reply    {status} {_short(trace.get('reply'), _WIDTH)}")
    return "\n".join(lines)
