"""pydantic errors become located, plain diagnostics; the text, JSON and GitHub printers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from engine.config.diagnostic import Diagnostic
from engine.config.report import format_github, format_json, format_text
from engine.config.settings import environment_finding
from engine.config.validation import validate_model
from engine.config.yamlsource import load_yaml
from engine.suggest import did_you_mean

FILE = "mappings/priority/operation.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BasicAuth(Strict):
    kind: Literal["basic"]
    username: str
    password: str


class HeaderAuth(Strict):
    kind: Literal["header"]
    name: str
    value: str


class QueryAuth(Strict):
    kind: Literal["query"]
    name: str
    value: str


Auth = Annotated[BasicAuth | HeaderAuth | QueryAuth, Field(discriminator="kind")]


class Timeout(Strict):
    connect: float = 5
    read: float = 30


class CallStep(Strict):
    call: str
    method: Literal["GET", "POST", "PATCH"] = "GET"
    path: str
    name: str | None = None

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path must start with '/': {value}")
        return value


class FailStep(Strict):
    fail: str
    status: int = 422


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((k for k in ("call", "fail") if k in value), None)
    return None


Step = Annotated[
    Annotated[CallStep, Tag("call")] | Annotated[FailStep, Tag("fail")], Discriminator(_step_kind)
]


class WebhookSource(Strict):
    path: str
    deadline: float = 20


class PollSource(Strict):
    connector: str
    every: int = 60


class Pipeline(Strict):
    name: str
    source: WebhookSource | PollSource
    steps: list[Step] = []


class Config(Strict):
    name: str
    retries: int = 3
    auth: Auth | None = None
    timeout: float | Timeout = 5
    pipelines: list[Pipeline] = []
    headers: dict[str, str] = Field(default_factory=dict, alias="http_headers")


def check(text: str) -> tuple[Any, list[Diagnostic]]:
    return validate_model(Config, load_yaml(Path(FILE), text), FILE)


CASES = [
    pytest.param(
        "name: x\nretries: abc\n",
        [(2, 10, "expected an integer, got 'abc'", None)],
        id="wrong-type",
    ),
    pytest.param(
        "name: x\nretries: [1]\n",
        [(2, 10, "expected an integer, got a list", None)],
        id="wrong-type-list",
    ),
    pytest.param(
        "name: x\nretires: 3\n",
        [(2, 1, "unknown key 'retires'", "did you mean 'retries'?")],
        id="unknown-key-top",
    ),
    pytest.param(
        "name: x\nhttp_header: {a: b}\n",
        [(2, 1, "unknown key 'http_header'", "did you mean 'http_headers'?")],
        id="unknown-key-alias-suggested",
    ),
    pytest.param(
        "retries: 1\n",
        [(1, 1, "missing required key 'name'", None)],
        id="missing-top",
    ),
    pytest.param(
        "name: x\nauth:\n  kind: basci\n  username: u\n",
        [(3, 9, "unknown kind 'basci' — expected one of: basic, header, query", "did you mean 'basic'?")],
        id="unknown-kind",
    ),
    pytest.param(
        "name: x\nauth:\n  username: u\n",
        [(3, 3, "missing required key 'kind' — expected one of: basic, header, query", None)],
        id="missing-kind",
    ),
    pytest.param(
        "name: x\nauth:\n  kind: basic\n  usrname: u\n  password: p\n",
        [(4, 3, "unknown key 'usrname'", "did you mean 'username'?")],  # one mistake, one error
        id="discriminated-member-errors",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps:\n"
        "      - call: priority\n        metod: POST\n        path: /A\n",
        [(7, 9, "unknown key 'metod'", "did you mean 'method'?")],
        id="unknown-key-in-tagged-step",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps:\n"
        "      - call: priority\n        method: PSOT\n        path: /A\n",
        [(7, 17, "expected 'GET', 'POST' or 'PATCH', got 'PSOT'", "did you mean 'POST'?")],
        id="literal",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps:\n      - call: priority\n",
        [(6, 9, "missing required key 'path'", None)],
        id="missing-in-tagged-step",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps:\n"
        "      - call: priority\n        path: ALINE\n",
        [(7, 15, "path must start with '/': ALINE", None)],
        id="validator-message-kept",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps:\n      - cal: priority\n",
        [(6, 9, "cannot tell what this is — expected one of: call, fail", "did you mean 'call'?")],
        id="callable-discriminator-no-tag",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x}\n    steps: [3]\n",
        [(5, 13, "expected a mapping, got 3", None)],
        id="step-not-a-mapping",
    ),
    pytest.param(
        "name: x\ntimeout: {conect: 1}\n",
        [(2, 11, "unknown key 'conect'", "did you mean 'connect'?")],
        id="smart-union-mapping-picks-model",
    ),
    pytest.param(
        "name: x\ntimeout: fast\n",
        [(2, 10, "expected a number, got 'fast'", None)],
        id="smart-union-scalar-picks-scalar",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {connector: erp, every: soon}\n",
        [(4, 37, "expected an integer, got 'soon'", None)],
        id="smart-union-distinctive-key",
    ),
    pytest.param(
        "name: x\npipelines:\n  - name: p\n    source: {path: /x, deadlin: 3}\n",
        [(4, 24, "unknown key 'deadlin'", "did you mean 'deadline'?")],
        id="smart-union-distinctive-key-other",
    ),
    pytest.param(
        "",
        [(1, 1, "the file is empty; expected a mapping", None)],
        id="empty-file",
    ),
    pytest.param(
        "- a\n",
        [(1, 1, "expected a mapping, got a list", None)],
        id="top-level-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_validation_errors(text: str, expected: list[tuple[int, int, str, str | None]]) -> None:
    obj, diags = check(text)
    assert obj is None
    assert [(d.line, d.col, d.message, d.hint) for d in diags] == expected
    for d in diags:
        assert d.file == FILE
        assert d.source_line == (text.splitlines() or [""])[d.line - 1]


def test_valid_file_gives_the_model() -> None:
    obj, diags = check("name: x\nauth: {kind: header, name: A, value: B}\ntimeout: {read: 3}\n")
    assert diags == []
    assert isinstance(obj, Config)
    assert isinstance(obj.auth, HeaderAuth)
    assert obj.timeout == Timeout(read=3)


def test_all_errors_of_a_file_are_reported_in_order() -> None:
    text = (
        "name: x\n"
        "retries: many\n"
        "a: 1\n"
        "a: 2\n"
        "pipelines:\n"
        "  - name: p\n"
        "    source: {path: /x}\n"
        "    steps:\n"
        "      - call: priority\n"
        "        metod: GET\n"
        "        path: /A\n"
        "      - fail: 3\n"
    )
    obj, diags = check(text)
    assert obj is None
    assert [(d.line, d.col, d.message) for d in diags] == [
        (2, 10, "expected an integer, got 'many'"),
        (3, 1, "unknown key 'a'"),
        (4, 1, "duplicate key 'a' (first defined at line 3)"),
        (10, 9, "unknown key 'metod'"),
        (12, 15, "expected a string, got 3"),
    ]


def test_syntax_error_stops_before_validation() -> None:
    obj, diags = check("name: x\nretries: : 3\n")
    assert obj is None
    assert len(diags) == 1
    assert diags[0].message.startswith("invalid YAML:")


def test_context_reaches_validators() -> None:
    class WithContext(Strict):
        connector: str

        @field_validator("connector")
        @classmethod
        def _known(cls, value: str, info: Any) -> str:
            known = info.context["connectors"]
            if value not in known:
                raise ValueError(f"unknown connector '{value}' ({did_you_mean(value, known)})")
            return value

    loaded = load_yaml(Path("c.yaml"), "connector: priorty\n")
    obj, diags = validate_model(WithContext, loaded, context={"connectors": ["priority", "nextup"]})
    assert [(d.file, d.line, d.col, d.message) for d in diags] == [
        ("c.yaml", 1, 12, "unknown connector 'priorty' (did you mean 'priority'?)")
    ]


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        pytest.param("metod", ["method", "path"], "did you mean 'method'?", id="typo"),
        pytest.param("Method", ["method"], "did you mean 'method'?", id="case"),
        pytest.param("zzz", ["method", "path"], None, id="nothing-close"),
        pytest.param("path", ["path"], None, id="same-word"),
        pytest.param(3, ["method"], None, id="non-string"),
        pytest.param(12, ["12x", "y"], "did you mean '12x'?", id="number"),
    ],
)
def test_did_you_mean(word: Any, candidates: list[str], expected: str | None) -> None:
    assert did_you_mean(word, candidates) == expected


DIAGS = [
    Diagnostic("b.yaml", 1, 1, "second file", source_line="x: 1"),
    Diagnostic(
        FILE, 12, 7, "unknown key 'metod'", source_line="      metod: POST", hint="did you mean 'method'?"
    ),
    Diagnostic(FILE, 3, 1, "odd", severity="warning", source_line="a: b"),
]


def test_format_text() -> None:
    assert format_text(DIAGS, color=False) == (
        "b.yaml:1:1: error: second file\n"
        "    x: 1\n"
        "    ^\n"
        f"{FILE}:3:1: warning: odd\n"
        "    a: b\n"
        "    ^\n"
        f"{FILE}:12:7: error: unknown key 'metod'\n"
        "          metod: POST\n"
        "          ^\n"
        "  hint: did you mean 'method'?\n"
        "2 errors, 1 warning"
    )


def test_format_text_color_and_whole_file() -> None:
    text = format_text([Diagnostic("connectors", 0, 0, "folder missing")], color=True)
    assert "\x1b[" in text
    assert "connectors" in text and "folder missing" in text
    assert text.endswith("1 error")
    assert format_text([]) == "0 errors"


def test_caret_keeps_tabs_aligned() -> None:
    text = format_text([Diagnostic("f", 1, 3, "m", source_line="\tab: 1")])
    assert text.splitlines()[1:3] == ["    \tab: 1", "    \t ^"]


def test_format_json() -> None:
    data = json.loads(format_json(DIAGS))
    assert [d["file"] for d in data] == ["b.yaml", FILE, FILE]
    assert data[2] == {
        "file": FILE,
        "line": 12,
        "col": 7,
        "message": "unknown key 'metod'",
        "severity": "error",
        "source_line": "      metod: POST",
        "hint": "did you mean 'method'?",
    }
    [found] = json.loads(format_json([environment_finding("MESBRIDGE_STORE", "bad")]))
    assert (found["file"], found["environment"]) == ("environment MESBRIDGE_STORE", True)


@pytest.mark.parametrize(
    ("diag", "expected"),
    [
        pytest.param(Diagnostic("a.yaml", 2, 3, "bad"), "::error file=a.yaml,line=2,col=3::bad", id="plain"),
        pytest.param(
            Diagnostic("a.yaml", 2, 3, "100% wrong\r\nreally", hint="did you mean 'x'?"),
            "::error file=a.yaml,line=2,col=3::100%25 wrong%0D%0Areally (did you mean 'x'?)",
            id="escaped-message",
        ),
        pytest.param(
            Diagnostic("dir,x/a:b%.yaml", 1, 1, "m", severity="warning"),
            "::warning file=dir%2Cx/a%3Ab%25.yaml,line=1,col=1::m",
            id="escaped-file-and-warning",
        ),
        pytest.param(
            Diagnostic("connectors", 0, 0, "missing"), "::error file=connectors::missing", id="no-line"
        ),
        pytest.param(
            environment_finding("MESBRIDGE_STORE", "cannot open: a, b", hint="set it"),
            "::error title=environment MESBRIDGE_STORE::cannot open: a, b (set it)",
            id="environment-no-file",
        ),
        pytest.param(
            Diagnostic("environment MESBRIDGE_X", 0, 0, "m"),
            "::error file=environment MESBRIDGE_X::m",
            id="a-file-named-like-a-variable-is-a-file",
        ),
    ],
)
def test_format_github(diag: Diagnostic, expected: str) -> None:
    assert format_github([diag]) == expected


def test_forty_files_validate_quickly() -> None:
    text = "name: x\nauth: {kind: basic, username: u, password: p}\npipelines:\n" + "".join(
        f"  - name: p{i}\n    source: {{path: /p{i}}}\n    steps:\n"
        "      - call: priority\n        method: POST\n        path: /A\n      - fail: no\n"
        for i in range(5)
    )
    validate_model(Config, load_yaml(Path("warm.yaml"), text))
    start = time.perf_counter()
    for i in range(40):
        obj, diags = validate_model(Config, load_yaml(Path(f"f{i}.yaml"), text))
        assert diags == [] and obj is not None
    per_file = (time.perf_counter() - start) / 40
    assert per_file < 0.005, f"{per_file * 1000:.2f} ms per file"


def test_import_is_light() -> None:
    code = "import sys, engine.config; print('rich' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
