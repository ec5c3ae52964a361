"""Paths into a JSON body: parsed once, written on a copy, never inventing a key a list index meant."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.connectors.bodypath import parse_body_path


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        pytest.param(
            "Params.Page", {"Method": "X"}, {"Method": "X", "Params": {"Page": 3}}, id="creates-objects"
        ),
        pytest.param(
            "params.args[6].limit",
            {"params": {"args": [0, 1, 2, 3, 4, 5, {"fields": ["a"]}]}},
            {"params": {"args": [0, 1, 2, 3, 4, 5, {"fields": ["a"], "limit": 3}]}},
            id="list-index",
        ),
        pytest.param("a[0][1]", {"a": [[0, 0]]}, {"a": [[0, 3]]}, id="nested-lists"),
        pytest.param("top", None, {"top": 3}, id="no-body"),
    ],
)
def test_write(path, body, expected):
    before = copy.deepcopy(body)
    assert parse_body_path(path).write(body, 3) == expected
    assert body == before  # the call's own body is not changed


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        pytest.param(
            "params.args[6].limit", {"params": {"args": [1]}}, "params.args has 1 item(s)", id="short-list"
        ),
        pytest.param("params.args[1]", {"params": {}}, "there is no list at params.args", id="no-list"),
        pytest.param("a.b", {"a": [1]}, "is not an object", id="list-not-object"),
        pytest.param("a[0]", {"a": {"0": 1}}, "is not a list", id="object-not-list"),
    ],
)
def test_a_path_that_does_not_fit_is_an_error(path, body, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_body_path(path).write(body, 1)


@pytest.mark.parametrize("text", ["", "a..b", "a[x]", "[0]", "a[-1]", "a.b["])
def test_invalid_paths_are_refused(text):
    with pytest.raises(ValueError, match="invalid body path"):
        parse_body_path(text)


names = st.text(alphabet="abcdefghij_ABC", min_size=1, max_size=5)


@given(parts=st.lists(names, min_size=1, max_size=4), value=st.integers() | st.text() | st.none())
def test_what_is_written_is_read_back(parts, value):
    written = parse_body_path(".".join(parts)).write({}, value)
    node = written
    for part in parts:
        node = node[part]
    assert node == value
