"""The example bindings are whole config roots: `mesbridge check` and `mesbridge test` pass on each, and
the repository's own root does not pick them up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from engine.config.root import load_project
from tests.service.conftest import REPO

EXAMPLES = {"session-odata": "session_odata", "jsonrpc": "jsonrpc"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_checks_and_its_cases_pass(name: str) -> None:
    root = str(REPO / "examples" / name)
    checked = CliRunner().invoke(main, ["check", root])
    assert checked.exit_code == 0, checked.output
    tested = CliRunner().invoke(main, ["test", root])
    assert tested.exit_code == 0, tested.output
    assert "pipelines without a test case" not in tested.output
    assert tested.output.strip().endswith(" 0 failed")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pipelines_are_named_after_their_binding(name: str) -> None:
    project = load_project(REPO / "examples" / name)
    binding = EXAMPLES[name]
    assert project.pipelines and all(p.startswith(f"{binding}.") for p in project.pipelines)
    assert {entry.binding for entry in project.pipelines.values()} == {binding}


def test_the_repository_root_does_not_load_the_examples() -> None:
    project = load_project(REPO)
    assert project.ok
    assert not {"odoo", "servicelayer"} & set(project.connectors)
    assert not [p for p in project.pipelines if p.split(".")[0] in EXAMPLES.values()]


def test_the_jsonrpc_binding_holds_no_login_step_and_no_credential() -> None:
    """The acceptance of the JSON-RPC example: the connector logs in; no pipeline and no var does."""
    project = load_project(REPO / "examples" / "jsonrpc")
    for path in (REPO / "examples" / "jsonrpc" / "mappings").rglob("*.yaml"):
        if "tests" in path.parts:
            continue
        data = json.dumps(yaml.safe_load(path.read_text(encoding="utf-8"))).lower()  # comments left out
        assert "login" not in data and "password" not in data and "uid" not in data, path
    assert not {"uid", "password", "db"} & {k.lower() for k in project.variables["jsonrpc"]}
    assert project.pipelines["jsonrpc.workorders"].pipeline.source.steps == []  # no poll steps either


@pytest.mark.parametrize("root", [".", "examples/session-odata", "examples/jsonrpc"])
def test_check_says_nothing_but_ok_where_no_secret_is_set(root: str) -> None:
    """CI runs `mesbridge check .` with no secret set (.ci/run, scripts/test): what the served pipelines
    read has defaults, and the webhook secret, which has none on purpose (`mesbridge run` refuses to
    start without it), is not reported, so check stays free of noise there."""
    bare = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "check", root],
        cwd=REPO,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("ok: ") and done.stdout.count("\n") == 1, done.stdout
