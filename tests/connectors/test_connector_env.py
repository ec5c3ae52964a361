import pytest

from engine.config.env import find_references, resolve
from engine.errors import MissingVariableError
from tests.connectors.connector_kit import reply


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


async def test_missing_password_fails_only_when_a_call_uses_it(make):
    calls = []

    def handler(request):
        calls.append(request)
        return reply(200, {})

    connector = make(handler, auth={"kind": "basic", "username": "u", "password": "${ERP_PASSWORD}"})
    assert calls == []  # building the connector did not need the variable
    with pytest.raises(MissingVariableError, match="ERP_PASSWORD") as info:
        await connector.request("GET", "/x")
    assert info.value.name == "ERP_PASSWORD"
    assert calls == []


async def test_base_url_from_environment(make):
    seen = []
    connector = make(
        lambda r: seen.append(str(r.url)) or reply(200, {}),
        environ={"ERP_URL": "http://real.test/base"},
        base_url="${ERP_URL:-http://x}",
    )
    await connector.request("GET", "/A")
    assert seen == ["http://real.test/base/A"]
