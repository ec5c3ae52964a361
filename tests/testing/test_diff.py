"""The differ: field by field with strict types, calls aligned so that a call one side makes is added
or removed, and the laws a diff obeys (nothing for equal values; the changes turn one value into the
other; swapping the sides swaps additions and removals)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.testing.diff import MISSING, Change, Recorded, align_calls, compare_runs, field_changes, json_path
from engine.testing.mock import RecordedCall


def shown(changes: list[Change]) -> list[tuple[str, str, Any, Any]]:
    return [(c.path, c.kind, c.before, c.after) for c in changes]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, [], id="equal"),
        pytest.param({"QTY": 3}, {"QTY": "3"}, [("QTY", "changed", 3, "3")], id="number-becomes-string"),
        pytest.param({"ok": True}, {"ok": 1}, [("ok", "changed", True, 1)], id="true-is-not-1"),
        pytest.param({"q": 1}, {"q": 1.0}, [("q", "changed", 1, 1.0)], id="int-is-not-float"),
        pytest.param({"a": None}, {}, [("a", "removed", None, MISSING)], id="null-key-removed"),
        pytest.param({}, {"a": None}, [("a", "added", MISSING, None)], id="null-key-added"),
        pytest.param(
            {"Lines": [{"QTY": 1}, {"QTY": 2}]},
            {"Lines": [{"QTY": 1}, {"QTY": 5}]},
            [("Lines[1].QTY", "changed", 2, 5)],
            id="inside-a-list",
        ),
        pytest.param(
            [1, 2, 3], [1], [("[1]", "removed", 2, MISSING), ("[2]", "removed", 3, MISSING)], id="shorter"
        ),
        pytest.param([1], [1, 2], [("[1]", "added", MISSING, 2)], id="longer"),
        pytest.param(
            {"a": [1]}, {"a": {"0": 1}}, [("a", "changed", [1], {"0": 1})], id="list-becomes-object"
        ),
        pytest.param("x", "y", [("", "changed", "x", "y")], id="root-scalar"),
    ],
)
def test_field_changes(before: Any, after: Any, expected: list[tuple[str, str, Any, Any]]) -> None:
    assert shown(field_changes(before, after)) == expected


@pytest.mark.parametrize(
    ("keys", "path"),
    [
        pytest.param(("body", "Lines", 0, "QTY"), "body.Lines[0].QTY", id="plain"),
        pytest.param(("query", "$filter"), "query.$filter", id="odata-option"),
        pytest.param(("body", "@TYPE"), "body.@TYPE", id="at-sign"),
        pytest.param(("headers", "Content-Type"), "headers.Content-Type", id="dash"),
        pytest.param(("body", "unit price"), 'body["unit price"]', id="space-quoted"),
        pytest.param(("body", "a.b"), 'body["a.b"]', id="dot-quoted"),
        pytest.param(("body", "מארז"), "body.מארז", id="non-ascii-name"),
        pytest.param(("body", "1st"), 'body["1st"]', id="leading-digit"),
    ],
)
def test_json_paths(keys: tuple[Any, ...], path: str) -> None:
    assert json_path(keys) == path


def call(method: str, path: str, body: Any = None, *, connector: str = "erp", **headers: str) -> RecordedCall:
    return RecordedCall(connector, method, path, {}, dict(headers), body, True)


def aligned(before: list[RecordedCall], after: list[RecordedCall], **options: Any) -> list[tuple[Any, ...]]:
    return [
        (c.kind, c.number_before, c.number_after, c.call.method, c.call.path, [f.path for f in c.fields])
        for c in align_calls(before, after, **options)
    ]


def test_a_call_only_one_side_makes_is_added_or_removed_and_a_moved_path_is_paired() -> None:
    before = [
        call("GET", "/a"),
        call("POST", "/orders", {"q": 1, "r": 2}),
        call("GET", "/b"),
        call("DELETE", "/d"),
    ]
    after = [
        call("GET", "/a"),
        call("POST", "/orders/v2", {"q": 1, "r": 3}),
        call("GET", "/c"),
        call("GET", "/b"),
    ]
    assert aligned(before, after) == [
        ("same", 1, 1, "GET", "/a", []),
        ("changed", 2, 2, "POST", "/orders/v2", ["path", "body.r"]),
        ("added", None, 3, "GET", "/c", []),
        ("same", 3, 4, "GET", "/b", []),
        ("removed", 4, None, "DELETE", "/d", []),
    ]


@pytest.mark.parametrize(
    ("before", "after", "kinds"),
    [
        pytest.param(
            call("GET", "/SERIAL('WO-1')"), call("GET", "/SERIALS('WO-1')"), ["changed"], id="renamed-path"
        ),
        pytest.param(
            call("GET", "/ALINE_ONE", {"$filter": "SERIALNAME eq 'WO-1'"}),
            call("GET", "/AUDIT", {"n": 1}),
            ["removed", "added"],
            id="another-call-in-its-place",
        ),
        pytest.param(
            call("POST", "/reports", {"a": 1, "b": 2, "c": 3}),
            call("POST", "/report", {"a": 1, "b": 2, "c": 4}),
            ["changed"],
            id="path-and-a-field",
        ),
    ],
)
def test_calls_at_different_paths_are_paired_when_they_look_alike(
    before: RecordedCall, after: RecordedCall, kinds: list[str]
) -> None:
    assert [kind for kind, *_ in aligned([before], [after])] == kinds


def test_calls_to_another_connector_or_with_another_method_are_not_paired() -> None:
    before = [call("POST", "/x"), call("GET", "/x", connector="mes")]
    after = [call("PUT", "/x"), call("GET", "/x", connector="erp")]
    kinds = [kind for kind, *_ in aligned(before, after)]
    assert sorted(kinds) == ["added", "added", "removed", "removed"]


def test_ignored_headers_are_not_compared() -> None:
    before = [call("POST", "/x", **{"Idempotency-Key": "a:steps[1]", "Accept": "application/json"})]
    after = [call("POST", "/x", **{"idempotency-key": "a:steps[2]", "Accept": "text/plain"})]
    assert aligned(before, after, ignore_headers={"Idempotency-Key"}) == [
        ("changed", 1, 1, "POST", "/x", ["headers.Accept"])
    ]


def test_a_run_that_fails_on_one_side_is_a_difference() -> None:
    ok = Recorded([call("POST", "/x")], {"reply": {"status": 200, "body": {"externalId": "1"}}})
    failed = Recorded([call("POST", "/x")], {"reply": {"status": 422}, "error": "refused"})
    diff = compare_runs(ok, failed)
    assert diff.changed and diff.changed_calls == []
    assert shown(diff.result) == [
        ("reply.status", "changed", 200, 422),
        ("reply.body", "removed", {"externalId": "1"}, MISSING),
        ("error", "added", MISSING, "refused"),
    ]
    assert not compare_runs(ok, ok).changed


# --- laws -------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20,
)


def apply(value: Any, changes: list[Change]) -> Any:
    """`value` with the reported changes made: set what changed or was added, delete what was removed."""
    value = copy.deepcopy(value)
    removed = []
    for change in changes:
        if change.kind == "removed":
            removed.append(change)
            continue
        if not change.keys:
            value = copy.deepcopy(change.after)
            continue
        parent = value
        for key in change.keys[:-1]:
            parent = parent[key]
        last = change.keys[-1]
        if isinstance(parent, list) and last == len(parent):
            parent.append(copy.deepcopy(change.after))
        else:
            parent[last] = copy.deepcopy(change.after)
    for change in reversed(removed):  # list items are reported in order: delete from the end
        parent = value
        for key in change.keys[:-1]:
            parent = parent[key]
        del parent[change.keys[-1]]
    return value


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_value_has_no_changes_against_itself(value: Any) -> None:
    assert field_changes(value, value) == []
    assert field_changes(value, copy.deepcopy(value)) == []


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_the_changes_turn_before_into_after(before: Any, after: Any) -> None:
    assert field_changes(apply(before, field_changes(before, after)), after) == []


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_swapping_the_sides_swaps_additions_and_removals(before: Any, after: Any) -> None:
    forward, backward = field_changes(before, after), field_changes(after, before)

    def of(changes: list[Change], kind: str) -> list[tuple[Any, ...]]:
        return sorted((repr(c.keys), repr(c.before), repr(c.after)) for c in changes if c.kind == kind)

    assert of(forward, "added") == sorted(
        (repr(c.keys), repr(c.after), repr(c.before)) for c in backward if c.kind == "removed"
    )
    assert of(forward, "changed") == sorted(
        (repr(c.keys), repr(c.after), repr(c.before)) for c in backward if c.kind == "changed"
    )
    assert len(forward) == len(backward)
