"""Traces as test cases: replies become mocks, calls and reply expectations; what the engine made
while it ran (timestamps, generated ids) is left out, what the event or a reply gave is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.yamlsource import load_yaml
from engine.pipeline.models import MappingFile
from engine.traces.export import _DROPPED, _Known, _stable, as_case, dump_cases, merge_cases, splice_cases
from engine.traces.render import render


def _trace(**overrides: Any) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "id": "0123456789abcdef",
        "pipeline": "erp.report",
        "event_id": "erp.report:ev-1",
        "source": "webhook",
        "received": "2030-01-01T00:00:00+00:00",
        "version": "v1",
        "duration": 0.01,
        "outcome": "ok",
        "status": 200,
        "reply": {"externalId": 41, "at": "2030-01-01T00:00:01Z"},
        "error": None,
        "event": {"workorder": "WO-1", "when": "2029-12-31T23:00:00Z", "b": 1, "a": 2},
        "steps": [
            {"id": "steps[0]", "type": "for_each", "start": 0.0, "duration": 0.008, "status": "ok"},
            {"id": "steps[0].steps[0]", "type": "call", "start": 0.001, "duration": 0.003, "status": "ok"},
            {"id": "steps[0].steps[0]", "type": "call", "start": 0.005, "duration": 0.003, "status": "ok"},
        ],
        "calls": [
            {
                "step": "steps[0].steps[0]",
                "connector": "erp",
                "method": "POST",
                "path": "/login",
                "query": {},
                "request": None,
                "status": 200,
                "reply": {"token": "***"},
                "latency": 0.001,
                "attempt": 0,
                "login": True,
                "end": 0.002,
            },
            {
                "step": "steps[0].steps[0]",
                "connector": "erp",
                "method": "POST",
                "path": "/reports",
                "query": {"stamp": "2030-01-01T00:00:00.5Z"},
                "request": {
                    "wo": "WO-1",
                    "when": "2029-12-31T23:00:00Z",
                    "sent": "2030-01-01T00:00:00.4Z",
                    "key": "9f86d081884c7d659a2feaa0c55ad015",
                },
                "status": 503,
                "reply": "busy",
                "latency": 0.001,
                "attempt": 1,
                "failure": "unapplied",
                "end": 0.003,
            },
            {
                "step": "steps[0].steps[0]",
                "connector": "erp",
                "method": "POST",
                "path": "/reports",
                "query": {},
                "request": {"wo": "WO-1"},
                "status": None,
                "reply": None,
                "latency": 0.001,
                "attempt": 2,
                "failure": "not_sent",
                "end": 0.004,
            },
            {
                "step": "steps[0].steps[0]",
                "connector": "erp",
                "method": "POST",
                "path": "/reports",
                "query": {},
                "request": {"wo": "WO-1", "id": 41},
                "status": 201,
                "reply": {"id": 41},
                "latency": 0.001,
                "attempt": 3,
                "end": 0.007,
            },
        ],
    }
    trace.update(overrides)
    return trace


def test_a_trace_becomes_a_case_of_mocks_and_expectations() -> None:
    exported = as_case(_trace())
    case = exported.case
    assert case["name"] == "erp.report erp.report:ev-1" and case["pipeline"] == "erp.report"
    assert list(case["event"]) == ["a", "b", "when", "workorder"]  # keys sorted
    assert [(r["status"], r.get("body"), r.get("raw")) for r in case["responses"]] == [
        (503, None, "busy"),
        (201, {"id": 41}, None),
    ]  # the login is left out; the attempt without a reply cannot be mocked
    first, second = case["expect"]["calls"]
    assert "query" not in first  # its only value was a timestamp the engine made
    assert first["body"] == {"wo": "WO-1", "when": "2029-12-31T23:00:00Z"}  # the event's time is kept
    assert first["match"] == "subset"
    assert second == {
        "connector": "erp",
        "method": "POST",
        "path": "/reports",
        "body": {"id": 41, "wo": "WO-1"},
        "match": "exact",
    }
    assert case["expect"]["reply"] == {"status": 200, "body": {"externalId": 41}, "match": "subset"}
    assert any("got no reply" in note for note in exported.notes)
    parsed = MappingFile.model_validate(yaml.safe_load(dump_cases([case], "a header")))
    assert parsed.tests[0].expect.calls_exact is True


def test_a_masked_value_is_not_expected_unless_the_event_gave_it() -> None:
    """A token the connector's auth put in the body was masked in the trace: what it was is unknown,
    and a test case runs without auth, so the body is matched without it."""
    trace = _trace(event={"note": "see ***", "workorder": "WO-1"})
    trace["calls"][3]["request"] = {
        "AuthenticationToken": "***",
        "Header": "Bearer ***",
        "Method": "AddReport",
        "Params": {"wo": "WO-1", "note": "see ***"},
    }
    _, second = as_case(trace).case["expect"]["calls"]
    assert second["body"] == {"Method": "AddReport", "Params": {"note": "see ***", "wo": "WO-1"}}
    assert second["match"] == "subset"


def test_each_attempt_of_a_retried_delivery_is_a_case_of_its_own() -> None:
    """Attempt 1 failed, attempt 2 delivered: merged into one file, both are kept."""
    failed = as_case(_trace(source="queue", attempt=1, status=502)).case
    delivered = as_case(_trace(source="queue", attempt=2)).case
    assert failed["name"] == "erp.report erp.report:ev-1 attempt 1"
    assert delivered["name"] == "erp.report erp.report:ev-1 attempt 2"
    assert [c["name"] for c in merge_cases([], [failed, delivered])] == [failed["name"], delivered["name"]]


def test_the_time_a_run_read_becomes_the_cases_now() -> None:
    """A document number made of `now()` replays as recorded, today or next year."""
    case = as_case(_trace(now="2030-01-01T00:00:00.250Z")).case
    assert case["now"] == "2030-01-01T00:00:00.250Z"
    assert list(case)[:3] == ["name", "pipeline", "now"]
    parsed = MappingFile.model_validate(yaml.safe_load(dump_cases([case], "a header")))
    assert (
        parsed.tests[0].now is not None
        and parsed.tests[0].now.isoformat() == "2030-01-01T00:00:00.250000+00:00"
    )
    assert "now" not in as_case(_trace()).case  # a run that read no time


def test_truncated_bodies_are_noted_and_not_expected() -> None:
    trace = _trace(
        calls=[
            {
                "step": None,
                "connector": "erp",
                "method": "GET",
                "path": "/x",
                "query": {},
                "request": {"$truncated": 9000, "head": "{"},
                "status": 200,
                "reply": {"$truncated": 9000, "head": "[1,"},
                "latency": 0.1,
                "attempt": 1,
                "end": 0.1,
            }
        ]
    )
    exported = as_case(trace)
    [wanted] = exported.case["expect"]["calls"]
    assert "body" not in wanted and wanted["match"] == "subset"
    assert exported.case["responses"][0]["raw"] == "[1,"
    assert len(exported.notes) == 2


def test_merging_replaces_cases_by_name() -> None:
    old = [{"name": "a", "v": 1}, {"name": "b", "v": 1}]
    assert merge_cases(old, [{"name": "b", "v": 2}, {"name": "c", "v": 2}]) == [
        {"name": "a", "v": 1},
        {"name": "b", "v": 2},
        {"name": "c", "v": 2},
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="abcxyz -:T0123456789", max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, json_values)
def test_stable_values_keep_what_was_given_and_are_idempotent(value: Any, given_: Any) -> None:
    known = _Known([given_, value])
    kept, dropped = _stable(value, known)
    assert not dropped and kept == value  # everything in it was given: nothing is volatile
    stranger = _Known([given_])
    once, _ = _stable(value, stranger)
    if once is not _DROPPED:
        assert _stable(once, stranger) == (once, False)


def test_the_tree_nests_loop_passes_and_their_calls() -> None:
    text = render(_trace())
    lines = text.splitlines()
    assert lines[0].startswith("0123456789abcdef  erp.report  ok 200")
    tree = [line for line in lines if "─" in line]
    assert tree[0].lstrip().startswith("└─ steps[0] for_each")
    assert sum("steps[0].steps[0] call" in line for line in tree) == 2
    assert sum("erp POST /login" in line and "login" in line for line in tree) == 1
    assert any("attempt 3" in line for line in tree) and any("not sent" in line for line in tree)
    second_pass = next(i for i, line in enumerate(tree) if "steps[0].steps[0]" in line and i > 1)
    assert "attempt 3" in tree[-1] and second_pass < len(tree) - 1  # the last call sits in the second pass


# --- exporting into a file the integrator keeps: only the cases change ------------------------------

CASE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from(["", "010", "on", "שלום", "a: b", "x\ny"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["k", "v", "עמדה"]), inner, max_size=3)
    ),
    max_leaves=6,
)
CASES = st.lists(
    st.builds(lambda name, value: {"name": name, "value": value}, st.sampled_from("abcd"), CASE_VALUES),
    max_size=4,
    unique_by=lambda case: case["name"],
)


def _kept_file(cases: list[dict[str, Any]], indented: bool) -> tuple[str, list[str]]:
    """A test file as an integrator keeps one: a header, a comment before every case, one after the
    last, and the list indented under `tests:` or not; and its comment lines."""
    lines = dump_cases(cases, "kept by hand").splitlines()
    out, comments = [], []
    for line in lines:
        text = ("  " + line) if indented and not line.startswith(("#", "tests:")) else line
        if text.lstrip().startswith("- name:"):
            comment = f"{text[: len(text) - len(text.lstrip())]}# why case {len(comments)} is here"
            out.append(comment)
            comments.append(comment)
        out.append(text)
    out.append("# the end")
    return "\n".join(out) + "\n", [*comments, "# the end"]


@settings(max_examples=200, deadline=None)
@given(existing=CASES.filter(bool), new=CASES.filter(bool), indented=st.booleans())
def test_exported_cases_are_spliced_into_a_kept_file_leaving_its_comments(
    existing: list[dict[str, Any]], new: list[dict[str, Any]], indented: bool
) -> None:
    text, comments = _kept_file(existing, indented)
    spliced = splice_cases(text, new)
    assert spliced is not None, text
    loaded = load_yaml(Path("x.yaml"), spliced)
    assert loaded.ok and loaded.data["tests"] == merge_cases(existing, new)
    assert [line for line in spliced.splitlines() if line.lstrip().startswith("#")] == [
        "# kept by hand",
        *comments,
    ]
    untouched = [case for case in existing if case["name"] not in {c["name"] for c in new}]
    for case in untouched:  # a case not exported again keeps its text, character for character
        assert _block_text(text, case["name"]) == _block_text(spliced, case["name"])


def _block_text(text: str, name: str) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip() == f"- name: {name}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith(("- ", "#"))), None)
    return "\n".join(lines[start:end])


def test_a_file_whose_cases_are_not_a_block_list_is_not_spliced() -> None:
    assert splice_cases("tests: [{name: a}]\n", [{"name": "b"}]) is None
    assert splice_cases("tests: []\n", [{"name": "b"}]) is None
    assert splice_cases("\ufefftests:\n- name: a\n", [{"name": "b"}]) is None
    assert splice_cases("tests:\n- {name: a}\n", [{"name": "b"}]) is None


def test_an_attempt_without_a_reply_is_mocked_as_unanswered_and_expected() -> None:
    base = _trace()["calls"][1]
    lost = {**base, "status": None, "reply": None, "request": {"wo": "WO-1"}, "failure": "uncertain"}
    calls = [
        {**lost, "error": "erp did not answer: the connection was lost (Connection reset by peer)"},
        {**lost, "error": "cannot reach erp: connection refused", "failure": "not_sent", "attempt": 2},
        {**lost, "error": "abandoned while waiting for erp", "attempt": 3},
    ]
    exported = as_case(_trace(calls=calls, status=502, reply={"message": "outcome unknown"}))
    responses = exported.case["responses"]
    assert responses == [
        {
            "connector": "erp",
            "method": "POST",
            "path": "/reports",
            "no_reply": "the connection was lost (Connection reset by peer)",
        },
        {"connector": "erp", "method": "POST", "path": "/reports", "not_sent": "connection refused"},
    ]  # the attempt abandoned at a deadline cannot be played: noted, left out
    assert [c["body"] for c in exported.case["expect"]["calls"]] == [{"wo": "WO-1"}, {"wo": "WO-1"}]
    assert [note for note in exported.notes if "got no reply" in note] == [
        "POST /reports (attempt 3) got no reply (uncertain): it cannot be mocked and is left out"
    ]
    parsed = MappingFile.model_validate(yaml.safe_load(dump_cases([exported.case], "a header")))
    assert parsed.tests[0].responses[0].no_reply == "the connection was lost (Connection reset by peer)"
