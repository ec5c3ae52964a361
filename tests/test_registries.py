"""Every extension point is one registry, and the registry, the unions, the executor and the checker
agree: what is registered is exactly what configs may name, and a kind that is not registered is a
located `mesbridge check` error, never a traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from engine.connectors.auth import AUTH, AuthConfig, AuthContext, Authenticator
from engine.connectors.models import ConnectorConfig
from engine.connectors.pagination import PAGINATORS, PaginationConfig, Paginator
from engine.pipeline.executor import step_ids
from engine.pipeline.models import Pipeline
from engine.pipeline.sources import SOURCES, Source
from engine.pipeline.sources.caller_auth import CALLER_AUTH, CallerAuth
from engine.pipeline.steps import STEPS, Step, StepModel
from engine.redaction import Redactor
from engine.registry import Registry
from engine.store import STORES, Store

ROOT = Path(__file__).resolve().parent / "data" / "all_kinds"
REGISTRIES: dict[str, tuple[Registry[Any], Any]] = {
    "auth": (AUTH, AuthConfig),
    "pagination": (PAGINATORS, PaginationConfig),
    "step": (STEPS, Step),
    "source": (SOURCES, Source),
    "caller auth": (CALLER_AUTH, CallerAuth),
}


def _members(union: Any) -> list[Any]:
    while typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    members = []
    for member in typing.get_args(union) or (union,):
        while typing.get_origin(member) is typing.Annotated:
            member = typing.get_args(member)[0]
        members.append(member)
    return members


@pytest.mark.parametrize("what", sorted(REGISTRIES))
def test_each_union_holds_exactly_the_registered_models(what: str) -> None:
    registry, union = REGISTRIES[what]
    assert registry.what == what
    assert _members(union) == registry.models()


def test_the_schema_editors_get_names_every_registered_kind() -> None:
    from engine.commands.schema import build_schemas

    text = str(build_schemas())
    for registry, _ in REGISTRIES.values():
        for kind in registry:
            assert f"'{kind}'" in text, f"{registry.what} kind {kind!r} is missing from the JSON Schema"


def test_every_kind_builds_its_implementation() -> None:
    ctx = AuthContext("c", lambda value, where: value, None, lambda body, text: None, Redactor(), lambda: 0.0)  # type: ignore[arg-type]
    for kind in AUTH:
        config = ConnectorConfig.model_validate({"base_url": "http://x", "auth": _auth(kind)}).auth
        assert config.kind == kind and isinstance(AUTH.build(config, ctx), Authenticator)
    for kind in PAGINATORS:
        config = ConnectorConfig.model_validate(
            {"base_url": "http://x", "pagination": _paging(kind)}
        ).pagination
        assert isinstance(PAGINATORS.build(config, "c"), Paginator)
    for kind in STORES:
        assert issubclass(STORES.implementation(kind), Store)


def _auth(kind: str) -> dict[str, Any]:
    return {
        "none": {"kind": "none"},
        "basic": {"kind": "basic", "username": "u", "password": "p"},
        "header": {"kind": "header", "name": "X", "value": "v"},
        "query": {"kind": "query", "name": "k", "value": "v"},
        "oauth2_client_credentials": {
            "kind": kind,
            "token_url": "/t",
            "client_id": "i",
            "client_secret": "s",
        },
        "login": {"kind": "login", "request": {"path": "/l"}, "token": "t"},
    }[kind]


def _paging(kind: str) -> dict[str, Any]:
    return {"next_link": {"kind": kind, "next": "next"}}.get(kind, {"kind": kind})


def test_every_step_type_runs_and_checks_itself() -> None:
    for kind in STEPS:
        cls = STEPS.model(kind)
        assert issubclass(cls, StepModel) and cls.kind == kind
        runs = cls.compile is not StepModel.compile or cls.choose is not StepModel.choose
        assert runs, f"step {kind!r} has neither compile nor choose"
        assert cls.check is not StepModel.check, f"step {kind!r} has no check"


def test_step_ids_walk_every_branch_the_step_types_declare() -> None:
    pipeline = Pipeline.model_validate(
        {
            "name": "p",
            "source": {"kind": "webhook", "path": "/p"},
            "steps": [
                {"switch": "event.t", "cases": {"a": [{"fail": "x"}]}, "default": [{"set": {"v": 1}}]},
                {"if": "event.x", "then": [{"for_each": "event.l", "steps": [{"fail": "y"}]}], "else": []},
            ],
        }
    )
    assert [where for _, where in step_ids(pipeline.steps)] == [
        "steps[0]",
        "steps[0].cases.a[0]",
        "steps[0].default[0]",
        "steps[1]",
        "steps[1].then[0]",
        "steps[1].then[0].steps[0]",
    ]


def test_the_fixture_root_uses_every_registered_kind() -> None:
    """So that the test below really removes a kind a config names."""
    text = "\n".join(path.read_text() for path in ROOT.rglob("*.yaml"))
    for registry, _ in REGISTRIES.values():
        for kind in registry:
            assert kind in text, f"tests/data/all_kinds names no {registry.what} kind {kind!r}"


_DROP = """
import sys
import engine.registry as registry

what, kind = sys.argv[1].split(":")
original = registry.Registry.register


def register(self, model=None, *, name=None):
    decorate = original(self, model, name=name)

    def maybe(cls):
        chosen = cls if model is None else model
        if self.what == what and (name if name is not None else registry.kind_of(chosen, self.field)) == kind:
            return cls  # the kind's module defines it, but does not register it
        return decorate(cls)

    return maybe


registry.Registry.register = register
from engine.cli import main

main(["check", sys.argv[2]])
"""


def _every_kind() -> list[Any]:
    params = [
        pytest.param(registry.what, kind, id=f"{registry.what}:{kind}")
        for registry, _ in REGISTRIES.values()
        for kind in registry
    ]
    params += [pytest.param("store", kind, id=f"store:{kind}") for kind in STORES]
    return params


@pytest.mark.slow
@pytest.mark.parametrize(("what", "kind"), _every_kind())
def test_a_kind_that_is_not_registered_is_a_located_check_error(tmp_path: Path, what: str, kind: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOT, root)
    if what == "store":
        (root / "mesbridge.yaml").write_text(f"store: {kind}://somewhere/db\n")
    done = subprocess.run(
        [sys.executable, "-c", _DROP, f"{what}:{kind}", str(root)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    first = done.stdout.splitlines()[0]
    file, line, col, rest = first.split(":", 3)
    assert (root / file).is_file() and int(line) >= 1 and int(col) >= 1, first
    assert " error: " in rest, first


CONFIG_DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"
OPERATIONS_DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


@pytest.mark.parametrize("what", sorted(REGISTRIES))
def test_every_registered_kind_has_a_row_in_the_config_reference(what: str) -> None:
    rows = set(re.findall(r"^\| `([a-z_0-9]+)` \|", CONFIG_DOC.read_text(encoding="utf-8"), re.M))
    registry, _ = REGISTRIES[what]
    assert set(registry) <= rows, f"docs/config.md has no row for {sorted(set(registry) - rows)}"


def test_every_store_backend_is_documented() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert [kind for kind in STORES if f"{kind}://" not in text and f"{kind}:///" not in text] == []
