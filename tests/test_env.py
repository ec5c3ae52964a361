"""`${VAR}` and `${VAR:-default}` references: finding and resolving them."""

import pytest

from engine.env import find_references, resolve
from engine.errors import MissingVariableError


@pytest.mark.parametrize(
    ("value", "names"),
    [
        pytest.param("${A}", {"A"}, id="plain"),
        pytest.param("http://${HOST:-x}:${PORT}/p", {"HOST", "PORT"}, id="two"),
        pytest.param({"k": ["${A}", {"${B}": 1}]}, {"A", "B"}, id="nested"),
        pytest.param("no refs $HOME {X}", set(), id="none"),
        pytest.param(7, set(), id="number"),
    ],
)
def test_find_references(value, names):
    assert find_references(value) == names


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        pytest.param("${A}", {"A": "1"}, "1", id="set"),
        pytest.param("${A:-dflt}", {}, "dflt", id="default"),
        pytest.param("${A:-dflt}", {"A": ""}, "", id="set-empty-wins"),
        pytest.param("${A:-}", {}, "", id="empty-default"),
        pytest.param("u=${U:-x} p=${P:-y}", {"P": "z"}, "u=x p=z", id="mixed"),
        pytest.param({"a": ["${A}"]}, {"A": "v"}, {"a": ["v"]}, id="walk"),
    ],
)
def test_resolve(value, environ, expected):
    assert resolve(value, environ) == expected


def test_missing_names_the_variable():
    with pytest.raises(MissingVariableError, match="PRIORITY_PAT is not set.*auth") as info:
        resolve("x ${PRIORITY_PAT} y", {}, "auth")
    assert info.value.name == "PRIORITY_PAT"


def test_a_file_reference_reads_the_file_and_is_named_as_a_file(tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_text("abc123\r\n", encoding="utf-8")
    seen = []
    value = resolve({"auth": f"Basic ${{file:{secret}}}"}, {}, on_value=lambda n, v: seen.append((n, v)))
    assert value == {"auth": "Basic abc123"}
    assert seen == [(f"file:{secret}", "abc123")]
    assert find_references(f"${{file:{secret}}} ${{A}}") == {"A"}  # variables only: a file is no variable
