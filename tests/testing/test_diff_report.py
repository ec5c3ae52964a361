"""The report formats: a Markdown comment within GitHub's limit, workflow commands escaped by their
rules, and one document behind every format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.redaction import Redactor
from engine.testing.diff import Recorded, compare_runs
from engine.testing.diff_report import (
    MARKER,
    format_github,
    format_json,
    format_markdown,
    format_text,
    report_document,
)
from engine.testing.mock import RecordedCall
from engine.testing.replay import DiffReport, EventReport, PipelineSummary
from engine.testing.samples import Sample


def event(name: str, before: Any, after: Any, *, where: str = "mappings/erp/tests/a.yaml") -> EventReport:
    sample = Sample("erp.operation", name, where, "both", event={}, line=3)
    old = Recorded([RecordedCall("erp", "POST", "/x", {}, {}, before, True)], {"reply": {"status": 200}})
    new = Recorded([RecordedCall("erp", "POST", "/x", {}, {}, after, True)], {"reply": {"status": 200}})
    diff = compare_runs(old, new)
    return EventReport(sample, "changed" if diff.changed else "same", diff)


def document(*events: EventReport, redactor: Redactor | None = None) -> dict[str, Any]:
    changed = sum(e.status == "changed" for e in events)
    summary = PipelineSummary("erp.operation", "changed" if changed else "same", len(events), changed, True)
    return report_document(
        DiffReport(list(events), [summary]),
        base=("base", "aaa"),
        head=(".", "bbb"),
        head_root=Path("."),
        clock="2025-02-18T10:39:00.000Z",
        redactor=redactor,
    )


def test_markdown_stays_within_the_comment_limit_and_says_what_it_left_out() -> None:
    many = [event(f"case {n}", {"Lines": list(range(50))}, {"Lines": list(range(1, 51))}) for n in range(200)]
    text = format_markdown(document(*many), limit=20_000)
    assert len(text) <= 20_000
    shown = text.count("<details>")
    assert 0 < shown < 200
    assert f"_{200 - shown} more changed events not shown: the comment would exceed 20000 characters" in text
    assert text.startswith(MARKER + "\n")
    whole = format_markdown(document(*many))
    assert len(whole) <= 65_536


def test_markdown_cells_escape_pipes_and_html() -> None:
    text = format_markdown(document(event("a | b <i>", {"v": "x|y"}, {"v": "<b>&"})))
    assert "a &#124; b &lt;i&gt;" in text
    assert '<code>"x&#124;y"</code> | <code>"&lt;b&gt;&amp;"</code> |' in text


def test_github_escapes_data_and_properties() -> None:
    evil = event("50% off,\r\nnext: line", {"v": 1}, {"v": 2}, where="mappings/erp/tests/a,b:c.yaml")
    [warning, notice] = format_github(document(evil)).splitlines()
    properties, message = warning[len("::warning ") :].split("::", 1)
    assert properties == "file=mappings/erp/tests/a%2Cb%3Ac.yaml,line=3,title=mesbridge diff%3A erp.operation"
    assert message.startswith("50%25 off,%0D%0Anext: line: 1 call changed%0A")
    assert "\r" not in warning and "\n" not in warning
    assert notice == "::notice title=mesbridge diff::1 of 1 event changed from base to ."


def test_every_format_reads_the_same_document() -> None:
    data = document(event("a", {"QTY": 3}, {"QTY": "3"}), event("b", {"QTY": 1}, {"QTY": 1}))
    assert json.loads(format_json(data)) == data
    assert data["summary"]["changed"] == 1 and [e["status"] for e in data["events"]] == ["changed", "same"]
    assert 'body.QTY: 3 → "3"' in format_text(data)
    assert re.search(r"<code>body\.QTY</code> \| <code>3</code> \| <code>\"3\"</code>", format_markdown(data))
    assert 'body.QTY: 3 → "3"' in format_github(data)


def test_secrets_are_masked_in_the_document() -> None:
    data = document(
        event("a", {"key": "k"}, {"key": "sk-live-SECRET-9"}), redactor=Redactor(["sk-live-SECRET-9"])
    )
    assert "sk-live-SECRET-9" not in format_json(data)
