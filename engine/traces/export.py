"""Traces as YAML test cases: the recorded event, the ERP's recorded replies as mocked responses, and
the recorded calls and reply as expectations.

A case is stable and diff-friendly: object keys sorted, lists in the order they happened, and
volatile values left out. A value is volatile when it holds a timestamp or a generated id (a UUID, a
long hex string) that neither the event nor any recorded reply holds: the engine made it while it
ran (`now()`, a key), so another run makes another. A value the trace masked (a token the connector's
auth put in a body, say) is left out too: what it was is not in the trace, and test cases run without
auth. A body or query that loses a value is matched as a subset. Login calls are left out (test cases
run without auth), and so is an attempt the system refused for its token, which the connector sent
again after logging in (without auth nothing would send it again: its reply, mocked, would be the
pipeline's answer). An attempt that got no reply (the connection lost, a read timeout) or never
reached the system is mocked as such (`no_reply`, `not_sent`: the reason recorded), so the case
replays the unknown outcome and what the pipeline did about it; one abandoned at a deadline cannot be
mocked: `notes` says what was left out and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.config.yamlsource import load_yaml
from engine.redaction import MASK

from .document import TRUNCATED

__all__ = ["ExportedCase", "as_case", "dump_cases", "merge_cases", "splice_cases"]

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_GENERATED = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9a-f]{16,}"
)
_DROPPED = object()


@dataclass
class ExportedCase:
    """One trace as a test case, and what could not be kept."""

    case: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _strings(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            found.add(str(key))
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)
    return found


class _Known:
    """The strings a run was given (event, replies): a value made of them is not volatile."""

    def __init__(self, sources: list[Any]) -> None:
        self.strings: set[str] = set()
        for source in sources:
            _strings(source, self.strings)
        self.text = "\n".join(self.strings)

    def volatile(self, value: str) -> bool:
        """Made while the run ran, or masked in the trace (and so unknown)."""
        if MASK in value and value not in self.strings:
            return True
        for pattern in (_TIMESTAMP, _GENERATED):
            for match in pattern.finditer(value):
                if match.group(0) not in self.text:
                    return True
        return False


def _stable(value: Any, known: _Known) -> tuple[Any, bool]:
    """`value` without its volatile parts (dropped from objects; a list keeps its length), and whether
    anything was dropped."""
    if isinstance(value, str):
        return (_DROPPED, True) if known.volatile(value) else (value, False)
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        dropped = False
        for key in sorted(value, key=str):
            item, lost = _stable(value[key], known)
            dropped = dropped or lost
            if item is not _DROPPED:
                kept[key] = item
        return kept, dropped
    if isinstance(value, list):
        items = []
        dropped = False
        for element in value:
            item, lost = _stable(element, known)
            if item is _DROPPED:
                return _DROPPED, True  # a list cannot lose one element and keep its meaning
            dropped = dropped or lost
            items.append(item)
        return items, dropped
    return value, False


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _truncated(value: Any) -> bool:
    return isinstance(value, dict) and TRUNCATED in value


def as_case(trace: dict[str, Any], name: str | None = None) -> ExportedCase:
    """The test case of one trace (its name: `name`, else the pipeline, the event id and, for a queued
    delivery, its attempt: each attempt of a retried event is a case of its own)."""
    notes: list[str] = []
    calls = [
        call for call in trace.get("calls", []) if not call.get("login") and not call.get("token_rejected")
    ]
    replied = []
    for call in calls:
        if call.get("status") is not None or _unanswered(call) is not None:
            replied.append(call)
        else:
            notes.append(
                f"{call['method']} {call['path']} (attempt {call['attempt']}) got no reply "
                f"({call.get('failure') or 'error'}): it cannot be mocked and is left out"
            )
    known = _Known([trace.get("event")] + [call.get("reply") for call in replied])
    responses = []
    expected = []
    for call in replied:
        reply = call.get("reply")
        response: dict[str, Any] = {
            "connector": call["connector"],
            "method": call["method"],
            "path": call["path"],
            "status": call["status"],
        }
        unanswered = _unanswered(call)
        if unanswered is not None:  # sent and never answered, or never sent: played as such
            del response["status"]
            response[unanswered[0]] = unanswered[1]
        elif _truncated(reply):
            notes.append(
                f"the reply to {call['method']} {call['path']} was cut at {len(reply['head'])} of "
                f"{reply[TRUNCATED]} bytes (traces.max_body_bytes): its mocked response is incomplete"
            )
            response["raw"] = reply["head"]
        elif isinstance(reply, str):
            response["raw"] = reply
        elif reply is not None:
            response["body"] = _sorted(reply)
        responses.append(response)
        wanted: dict[str, Any] = {
            "connector": call["connector"],
            "method": call["method"],
            "path": call["path"],
        }
        subset = False
        if call.get("query"):
            query, lost = _stable(call["query"], known)
            subset = subset or lost
            if query:
                wanted["query"] = query
        request = call.get("request")
        if _truncated(request):
            notes.append(f"the body of {call['method']} {call['path']} was cut in the trace: not expected")
            subset = True
        elif request is not None:
            body, lost = _stable(request, known)
            subset = subset or lost
            if body is not _DROPPED:
                wanted["body"] = body
        wanted["match"] = "subset" if subset else "exact"
        expected.append(wanted)
    reply_body, lost = _stable(trace.get("reply"), known)
    expect_reply: dict[str, Any] = {"status": trace.get("status")}
    if reply_body is not _DROPPED and not _truncated(trace.get("reply")):
        expect_reply["body"] = reply_body
    expect_reply["match"] = "subset" if lost else "exact"
    case: dict[str, Any] = {
        "name": name or _name(trace),
        "pipeline": trace["pipeline"],
    }
    if trace.get("now"):  # what the run's now() read: the case reads the same, today or next year
        case["now"] = trace["now"]
    for option in ("verify_first", "refuse_unprotected"):  # a cautious run: the case runs as cautiously
        if trace.get(option):
            case[option] = True
    case |= {
        "event": _sorted(trace.get("event")),
        "responses": responses,
        "expect": {"calls": expected, "calls_exact": True, "reply": expect_reply},
    }
    if _truncated(trace.get("event")):
        notes.append("the event was cut in the trace (traces.max_body_bytes): the case cannot replay it")
    return ExportedCase(case, notes)


def _unanswered(call: dict[str, Any]) -> tuple[str, str] | None:
    """How a mock plays an attempt that got no reply: (`no_reply` or `not_sent`, the reason the trace
    recorded), or None when it was answered or cannot be played (abandoned at a deadline)."""
    if call.get("status") is not None:
        return None
    error = call.get("error")
    if not isinstance(error, str):
        return None
    prefixes = {
        "no_reply": f"{call['connector']} did not answer: ",
        "not_sent": f"cannot reach {call['connector']}: ",
    }
    for kind, prefix in prefixes.items():
        if error.startswith(prefix):
            return kind, error[len(prefix) :]
    return None


def _name(trace: dict[str, Any]) -> str:
    attempt = trace.get("attempt")
    return f"{trace['pipeline']} {trace['event_id']}" + (f" attempt {attempt}" if attempt else "")


def merge_cases(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`existing` with each new case replacing the one of its name, else appended."""
    merged = list(existing)
    index = {case.get("name"): position for position, case in enumerate(merged)}
    for case in new:
        if case["name"] in index:
            merged[index[case["name"]]] = case
        else:
            index[case["name"]] = len(merged)
            merged.append(case)
    return merged


def dump_cases(cases: list[dict[str, Any]], header: str, description: Any = None) -> str:
    """A mapping file of `cases` (`tests:`), with `header` as its opening comment, and the file's
    `description:` first when it has one."""
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    data: dict[str, Any] = {} if description is None else {"description": description}
    body = yaml.safe_dump(
        {**data, "tests": cases}, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return comment + body


def splice_cases(text: str, new: list[dict[str, Any]]) -> str | None:
    """`text`, a test file, with each new case in place of the case of its name, else after its last
    case, and every other character kept: the integrator's comments, layout and quoting. None when the
    file's cases are not a non-empty block list, or the spliced text would not load (as `mesbridge test`
    loads it) to exactly `merge_cases` of its cases and `new`: then the file is written whole."""
    existing = _cases_in(text)
    try:
        items = _case_nodes(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    if existing is None or not items or len(items) != len(existing):
        return None
    where = {case.get("name"): node for case, node in zip(existing, items, strict=True)}
    edits: list[tuple[int, int, str]] = []  # (start, end, text) over the original text
    appended: list[dict[str, Any]] = []
    for case in new:
        node = where.get(case["name"])
        if node is None:
            appended.append(case)
        else:
            edits.append((node.start_mark.index, _end(text, node), _block(case, node.start_mark.column)))
    if appended:
        last = items[-1]
        line_start = text.rfind("\n", 0, last.start_mark.index) + 1
        dash = text.rfind("-", line_start, last.start_mark.index)
        if dash < 0:
            return None
        indent = " " * (dash - line_start)
        gap = " " * (last.start_mark.column - (dash - line_start) - 1)
        block = "".join(f"\n{indent}-{gap}{_block(case, last.start_mark.column)}" for case in appended)
        edits.append((_end(text, last), _end(text, last), block))
    spliced = text
    for start, end, replacement in sorted(edits, reverse=True):
        spliced = spliced[:start] + replacement + spliced[end:]
    return spliced if _cases_in(spliced) == merge_cases(existing, new) else None


def _cases_in(text: str) -> list[Any] | None:
    """The cases of a test file's text as `mesbridge test` loads them; None when it does not load."""
    if text.startswith("\ufeff"):  # the marks below count characters from the first
        return None
    loaded = load_yaml(Path("cases.yaml"), text)
    if not loaded.ok or not isinstance(loaded.data, dict) or not isinstance(loaded.data.get("tests"), list):
        return None
    cases: list[Any] = loaded.data["tests"]
    return cases


def _case_nodes(root: yaml.Node | None) -> list[yaml.MappingNode]:
    """The case nodes of a file's `tests:` block list; none when it is anything else."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "tests":
            if not isinstance(value, yaml.SequenceNode) or value.flow_style:
                return []
            items = value.value
            block = all(isinstance(item, yaml.MappingNode) and not item.flow_style for item in items)
            return items if block else []
    return []


def _end(text: str, node: yaml.Node) -> int:
    """Where a node's own text ends: a block collection's end mark lies past the comments after it,
    and a block scalar's past the line breaks after it."""
    while isinstance(node, yaml.CollectionNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end: int = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \n":
        end -= 1
    return end


def _block(case: dict[str, Any], column: int) -> str:
    """`case` dumped as the file's other cases are, its lines after the first indented to `column`."""
    lines = yaml.safe_dump(
        case, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    ).splitlines()
    return ("\n" + " " * column).join(lines)
