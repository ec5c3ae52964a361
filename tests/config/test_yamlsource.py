"""Located YAML loading: typing of scalars, positions, duplicate keys, syntax errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.yamlsource import Mark, load_yaml, locate_path

FILE = Path("mappings/priority/operation.yaml")


def load(text: str) -> Any:
    return load_yaml(FILE, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("NO", "NO", id="norway-stays-string"),
        pytest.param("no", "no", id="no"),
        pytest.param("yes", "yes", id="yes"),
        pytest.param("on", "on", id="on"),
        pytest.param("Off", "Off", id="off"),
        pytest.param("2025-01-01", "2025-01-01", id="date-stays-string"),
        pytest.param("2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z", id="timestamp-stays-string"),
        pytest.param("1:30", "1:30", id="sexagesimal-stays-string"),
        pytest.param('"007"', "007", id="quoted-007"),
        pytest.param("007", "007", id="plain-leading-zero-stays-string"),
        pytest.param("1_000", "1_000", id="underscores-stay-string"),
        pytest.param("1e3", "1e3", id="exponent-without-dot-stays-string"),
        pytest.param("'true'", "true", id="quoted-true"),
        pytest.param("true", True, id="true"),
        pytest.param("False", False, id="False"),
        pytest.param("1", 1, id="int"),
        pytest.param("-12", -12, id="negative-int"),
        pytest.param("0", 0, id="zero"),
        pytest.param("0x1F", 31, id="hex"),
        pytest.param("1.5", 1.5, id="float"),
        pytest.param("1.0e+3", 1000.0, id="float-exponent"),
        pytest.param(".5", 0.5, id="float-leading-dot"),
        pytest.param("-.inf", -math.inf, id="minus-inf"),
        pytest.param("null", None, id="null"),
        pytest.param("~", None, id="tilde"),
        pytest.param("", None, id="empty-value"),
        pytest.param("!!str 12", "12", id="explicit-str"),
        pytest.param("!!int '12'", 12, id="explicit-int"),
    ],
)
def test_scalar_typing(text: str, expected: Any) -> None:
    loaded = load(f"value: {text}\n")
    assert loaded.diagnostics == []
    assert loaded.data == {"value": expected}
    assert type(loaded.data["value"]) is type(expected)


def test_nan() -> None:
    assert math.isnan(load("x: .nan\n").data["x"])


POSITIONS_YAML = """\
pipelines:
  - name: one
    steps:
      - set: {a: 1}
      - call: priority
        method: POST
        body:
          - x
          -   y
"""


@pytest.mark.parametrize(
    ("path", "value_mark", "key_mark"),
    [
        pytest.param((), Mark(1, 1), None, id="root"),
        pytest.param(("pipelines",), Mark(2, 3), Mark(1, 1), id="top-key"),
        pytest.param(("pipelines", 0), Mark(2, 5), None, id="list-item"),
        pytest.param(("pipelines", 0, "name"), Mark(2, 11), Mark(2, 5), id="key-in-list-item"),
        pytest.param(("pipelines", 0, "steps", 0, "set", "a"), Mark(4, 18), Mark(4, 15), id="flow-mapping"),
        pytest.param(("pipelines", 0, "steps", 1, "method"), Mark(6, 17), Mark(6, 9), id="nested-item"),
        pytest.param(("pipelines", 0, "steps", 1, "body", 1), Mark(9, 15), None, id="nested-list"),
    ],
)
def test_positions(path: tuple[Any, ...], value_mark: Mark, key_mark: Mark | None) -> None:
    loaded = load(POSITIONS_YAML)
    assert loaded.diagnostics == []
    assert loaded.positions[path] == value_mark
    assert loaded.key_positions.get(path) == key_mark


def test_columns_count_characters_not_bytes() -> None:
    assert load("ééé: x\n").positions[("ééé",)] == Mark(1, 6)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        pytest.param(
            "a:\n  b: 1\n  c: 2\n  b: 3\n", 4, 3, "duplicate key 'b' (first defined at line 2)", id="nested"
        ),
        pytest.param(
            "items:\n  - x: 1\n    y: 2\n    x: 3\n",
            4,
            5,
            "duplicate key 'x' (first defined at line 2)",
            id="in-list-item",
        ),
        pytest.param("a: 1\na: 2\n", 2, 1, "duplicate key 'a' (first defined at line 1)", id="top-level"),
        pytest.param("m: {k: 1, k: 2}\n", 1, 11, "duplicate key 'k' (first defined at line 1)", id="flow"),
        pytest.param(
            "a: 1\nb: 2\n---\nc: 3\n",
            3,
            1,
            "a file holds one YAML document; this '---' starts a second one",
            id="second-document",
        ),
        pytest.param("x: !!binary aGVsbG8=\n", 1, 4, "unsupported tag '!!binary'", id="unsupported-tag"),
        pytest.param("x: !env HOME\n", 1, 4, "unsupported tag '!env'", id="custom-tag"),
        pytest.param(
            "? [a, b]\n: 1\n",
            1,
            3,
            "a mapping key must be a plain value, not a list or mapping",
            id="complex-key",
        ),
        pytest.param("x: !!int abc\n", 1, 4, "'abc' is not a valid int", id="bad-explicit-int"),
        pytest.param(
            "a: 1\nb: <<\n<<: 3\n",
            3,
            5,
            "a merge key '<<' takes a mapping or a list of mappings (e.g. '<<: *base')",
            id="bad-merge",
        ),
    ],
)
def test_structural_errors(text: str, line: int, col: int, message: str) -> None:
    loaded = load(text)
    assert [(d.line, d.col, d.message) for d in loaded.diagnostics] == [(line, col, message)]
    assert not loaded.ok
    assert loaded.diagnostics[0].file == "mappings/priority/operation.yaml"
    assert loaded.diagnostics[0].source_line == text.splitlines()[line - 1]


def test_duplicates_are_all_reported_and_first_value_kept() -> None:
    loaded = load("a: 1\nb:\n  - {x: 1, x: 2}\n  - y: 1\n    y: 2\na: 3\n")
    assert [(d.line, d.col) for d in loaded.diagnostics] == [(3, 12), (5, 5), (6, 1)]
    assert loaded.data == {"a": 1, "b": [{"x": 1}, {"y": 1}]}


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        pytest.param(
            "a: b: c\n",
            1,
            5,
            "invalid YAML: mapping values are not allowed here (quote a value that contains ': ', "
            "or check the indentation)",
            id="mapping-values",
        ),
        pytest.param(
            "a: 'unclosed\nb: 1\n",
            3,
            1,
            "invalid YAML: found unexpected end of stream (while scanning a quoted scalar started at "
            "line 1, column 4)",
            id="unclosed-quote",
        ),
        pytest.param(
            "a:\n\tb: 1\n", 2, 1, "invalid YAML: tab characters cannot be used for indentation", id="tab"
        ),
        pytest.param(
            "a: [1, 2\nb: 1\n",
            2,
            2,
            "invalid YAML: expected ',' or ']', but found ':' (while parsing a flow sequence started at "
            "line 1, column 4)",
            id="unclosed-flow",
        ),
        pytest.param(
            "a: *nope\n",
            1,
            4,
            "invalid YAML: unknown alias '*nope' (no '&nope' anchor before it)",
            id="alias",
        ),
        pytest.param(
            "- a\nb: 1\n",
            2,
            1,
            "invalid YAML: expected the end of the block, but found a mapping key (while parsing a block "
            "collection started at line 1, column 1)",
            id="list-then-mapping",
        ),
    ],
)
def test_syntax_errors(text: str, line: int, col: int, message: str) -> None:
    loaded = load(text)
    assert loaded.data is None
    assert [(d.line, d.col, d.message) for d in loaded.diagnostics] == [(line, col, message)]


def test_variable_in_flow_mapping_gets_a_hint() -> None:
    loaded = load("auth: {kind: basic, username: ${PAT}, password: x}\n")
    assert (loaded.diagnostics[0].line, loaded.diagnostics[0].col) == (1, 32)
    assert loaded.diagnostics[0].hint == 'inside { } or [ ], quote a value that uses a variable: "${NAME}"'
    assert load("auth: {kind: basic, username: '${PAT}'}\n").data == {
        "auth": {"kind": "basic", "username": "${PAT}"}
    }


@pytest.mark.parametrize("text", [pytest.param("", id="empty"), pytest.param("# only\n\n", id="comments")])
def test_empty_file(text: str) -> None:
    loaded = load(text)
    assert loaded.data is None
    assert loaded.diagnostics == []
    assert loaded.ok


def test_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nother: &o {y: 9, z: 9}\nd:\n  <<: [*b, *o]\n  y: 3\n"
    loaded = load(text)
    assert loaded.diagnostics == []
    assert loaded.data["d"] == {"x": 1, "y": 3, "z": 9}
    assert loaded.positions[("d", "y")] == Mark(5, 6)  # written keys win
    assert loaded.positions[("d", "x")] == Mark(1, 14)  # merged keys point at the anchor
    assert loaded.positions[("d",)] == Mark(4, 3)


def test_aliases_give_independent_copies() -> None:
    loaded = load("a: &x [1]\nb: *x\n")
    assert loaded.data == {"a": [1], "b": [1]}
    assert loaded.data["a"] is not loaded.data["b"]


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    loaded = load("\n".join(lines) + "\n")
    assert loaded.data is None
    assert "expands to more than" in loaded.diagnostics[0].message


def test_reads_file_and_reports_unreadable(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_bytes("\ufeffname: x\n".encode())
    assert load_yaml(good).data == {"name": "x"}
    assert load_yaml(good, file="connectors/a.yaml").file == "connectors/a.yaml"
    missing = load_yaml(tmp_path / "missing.yaml", file="missing.yaml")
    assert (missing.diagnostics[0].line, missing.diagnostics[0].message[:18]) == (0, "cannot read file: ")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\n")
    d = load_yaml(bad).diagnostics[0]
    assert (d.line, d.col, d.message) == (2, 4, "the file is not valid UTF-8")


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        pytest.param(("steps", 0, "method"), ("steps", 0, "method"), id="exact"),
        pytest.param(("steps", 0, "call", "method"), ("steps", 0, "method"), id="tag-equal-to-a-key"),
        pytest.param(("steps", 0, "CallStep", "method"), ("steps", 0, "method"), id="model-name"),
        pytest.param(
            ("steps", 0, "function-after[check(), CallStep]", "method"),
            ("steps", 0, "method"),
            id="function-after",
        ),
        pytest.param(("steps", 0, "call", "missing"), ("steps", 0, "call"), id="walks-up-to-nearest"),
        pytest.param(("steps", 5, "method"), ("steps",), id="index-out-of-range"),
        pytest.param(("auth", "basic", "username"), ("auth", "username"), id="discriminator-tag"),
        pytest.param((), (), id="root"),
    ],
)
def test_locate_path(loc: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    data = {"steps": [{"call": "priority", "method": "POST"}], "auth": {"kind": "basic", "username": "u"}}
    assert locate_path(data, loc) == expected


def test_locate_prefers_key_mark_on_request() -> None:
    loaded = load("steps:\n  - call: priority\n    metod: POST\n")
    assert loaded.locate(("steps", 0, "call", "metod")) == (("steps", 0, "metod"), Mark(3, 12))
    assert loaded.locate(("steps", 0, "call", "metod"), key=True) == (("steps", 0, "metod"), Mark(3, 5))
    d = loaded.diagnostic(("steps", 0, "call"), "connector 'priority' is not defined", hint="x")
    assert (d.file, d.line, d.col, d.source_line, d.hint) == (
        "mappings/priority/operation.yaml",
        2,
        11,
        "  - call: priority",
        "x",
    )


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_data = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_data)
def test_round_trip_of_safe_dump(data: Any) -> None:
    loaded = load(yaml.safe_dump(data))
    assert loaded.diagnostics == []
    assert loaded.data == data


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["yes", "no", "on", "off", "NO", "2025-01-01", "007", "1e3", "y"]),
        st.sampled_from(["yes", "NO", "on", "2025-01-01", "007", "0o17", "1_0"]),
        min_size=1,
        max_size=5,
    )
)
def test_yaml11_lookalikes_round_trip_as_strings(data: dict[str, str]) -> None:
    assert load(yaml.safe_dump(data)).data == data
    plain = "".join(f"{k}: {v}\n" for k, v in data.items())
    assert load(plain).data == data


def test_pure_python_composer_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.config import yamlsource

    text = POSITIONS_YAML + "extra: {a: NO, b: 1.5, c: '007', d: 2025-01-01, e: true, f: ~}\ndup: 1\ndup: 2\n"
    fast = load(text)
    monkeypatch.setattr(yamlsource, "_FAST", yamlsource._PyComposer)
    slow = load(text)
    assert (slow.data, slow.positions, slow.key_positions) == (fast.data, fast.positions, fast.key_positions)
    assert slow.diagnostics == fast.diagnostics
