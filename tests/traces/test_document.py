"""A finished run made into its trace: outcome classes, secrets masked everywhere, bodies capped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from engine.connectors.connector import CallRecord
from engine.errors import BusinessError, UncertainError
from engine.recorder import Recorder
from engine.redaction import Redactor
from engine.traces.document import TRUNCATED, Finished, Masker, build, dumps, outcome_of, search_text

SECRET = "s3cr3t-token-value"


def _finished(recorder: Recorder, **overrides: object) -> Finished:
    values: dict[str, object] = {
        "id": "0123456789abcdef",
        "pipeline": "erp.report",
        "binding": "erp",
        "version": "v1",
        "source": "webhook",
        "event_id": "erp.report:ev-1",
        "received": datetime(2030, 1, 1, tzinfo=UTC),
        "event": {"workorder": "WO-1", "password": "hunter22"},
        "status": 200,
        "reply": {"ok": True},
        "error": None,
        "skipped": False,
        "duration": 0.01,
        "recorder": recorder,
    }
    values.update(overrides)
    return Finished(**values)  # type: ignore[arg-type]


def test_outcomes() -> None:
    assert outcome_of(None, False) == "ok" and outcome_of(None, True) == "skipped"
    assert outcome_of(BusinessError("no", connector="erp"), False) == "failed"
    assert outcome_of(UncertainError("maybe", connector="erp"), False) == "uncertain"


def test_steps_and_calls_are_recorded_in_order_with_their_step() -> None:
    recorder = Recorder()
    redactor = Redactor([SECRET])
    outer = recorder.enter("steps[0]", "for_each", "lines")
    inner = recorder.enter("steps[0].steps[0]", "call", None)
    recorder.call(
        CallRecord(
            "erp",
            "POST",
            "/reports",
            500,
            0.002,
            1,
            "erp answered HTTP 500",
            "uncertain",
            redactor,
            f"http://erp/api/reports?key={SECRET}&n=1",
            {"token": "abc", "note": f"Bearer {SECRET}"},
            {"message": "boom"},
            "http://erp/api",
        )
    )
    recorder.leave(inner, "failed", "erp answered HTTP 500")
    recorder.leave(outer, "failed", "erp answered HTTP 500")
    recorder.skipped("steps[1]", "call", "after")
    document = build(
        _finished(recorder, error=UncertainError("maybe", connector="erp")), Masker([redactor]), 4096
    )
    assert [(s["id"], s["type"], s["status"]) for s in document["steps"]] == [
        ("steps[0]", "for_each", "failed"),
        ("steps[0].steps[0]", "call", "failed"),
        ("steps[1]", "call", "skipped"),
    ]
    [call] = document["calls"]
    assert call["step"] == "steps[0].steps[0]" and call["path"] == "/reports"
    assert call["query"] == {"key": "***", "n": "1"}
    assert call["request"] == {"token": "***", "note": "Bearer ***"}
    assert (call["status"], call["failure"], call["attempt"]) == (500, "uncertain", 1)
    assert document["outcome"] == "uncertain" and document["error"]["connector"] == "erp"
    assert document["event"]["password"] == "***"  # named like a secret: masked whole
    text = json.dumps(document)
    assert SECRET not in text and "hunter22" not in text
    assert "wo-1" in search_text(document) and "hunter22" not in search_text(document)


def test_a_secret_in_a_body_as_a_query_carries_it_is_masked() -> None:
    """An ERP error echoing the URL holds `Tr0ub4dor%263!`, not the key as written: masked all the same."""
    masker = Masker([Redactor(["Tr0ub4dor&3!"])])
    echoed = {"error": {"message": "refused http://erp/api/x?key=Tr0ub4dor%263!"}}
    assert masker.body(echoed, 4096) == {"error": {"message": "refused http://erp/api/x?key=***"}}
    assert masker.body("key=Tr0ub4dor%263%21", 4096) == "key=***"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    ),
    st.integers(256, 2048),
)
def test_a_capped_value_is_whole_or_its_head_within_the_cap(value: object, limit: int) -> None:
    masker = Masker([])
    capped = masker.body(value, limit)
    value = masker.mask(value)  # a key named like a secret is masked before it is measured
    size = len(dumps(value))
    if size > limit and not isinstance(value, bool | int | float):
        assert isinstance(capped, dict) and capped[TRUNCATED] == size
        text = value if isinstance(value, str) else dumps(value).decode()
        assert len(capped["head"].encode("utf-8", "replace")) <= limit
        assert text.encode("utf-8", "replace").startswith(capped["head"].encode("utf-8", "replace"))
    else:
        assert capped == value
