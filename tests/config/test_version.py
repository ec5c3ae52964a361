"""The config version: a digest of what decides behaviour, the same whichever bindings a replica runs.

Traces record the version, and `mesbridge traces export` and `mesbridge test` compare it with the root's:
a root served with `MESBRIDGE_BINDINGS` (as `mesbridge demo` does) must report the version the whole
root has, or every exported case would warn of a change that is not there.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.config.root import load_project

CONNECTOR = "name: erp\nbase_url: http://127.0.0.1:9\n"


def _pipeline(binding: str, schema: str | None = None) -> str:
    source = f"{{kind: webhook, path: /{binding}/op" + (f", schema: {schema}" if schema else "") + "}"
    return f"""\
vars: {{site: "{binding}"}}
pipelines:
  - name: {binding}.op
    source: {source}
    steps:
      - {{name: report, call: erp, method: POST, path: /reports, body: {{n: "{{{{ event.n }}}}"}}}}
    reply: {{body: {{site: "{{{{ vars.site }}}}"}}}}
"""


def make_root(folder: Path) -> Path:
    (folder / "connectors").mkdir(parents=True)
    (folder / "connectors" / "erp.yaml").write_text(CONNECTOR)
    for binding in ("north", "south"):
        (folder / "mappings" / binding).mkdir(parents=True)
    (folder / "mappings" / "north" / "op.yaml").write_text(_pipeline("north"))
    (folder / "mappings" / "south" / "op.yaml").write_text(_pipeline("south", "schemas/south.json"))
    (folder / "schemas").mkdir()
    (folder / "schemas" / "south.json").write_text(json.dumps({"type": "object"}))
    return folder


def version(root: Path, bindings: str | None = None) -> str:
    environ = {} if bindings is None else {"MESBRIDGE_BINDINGS": bindings}
    project = load_project(root, environ=environ)
    assert project.ok, project.diagnostics
    return project.version


def test_selecting_bindings_leaves_the_version_as_the_whole_root_has_it(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    whole = version(root)
    assert version(root, "north") == whole
    assert version(root, "south") == whole
    assert set(load_project(root, environ={"MESBRIDGE_BINDINGS": "north"}).pipelines) == {"north.op"}


def test_a_change_in_a_binding_not_selected_is_a_new_version(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    before = version(root, "north")
    mapping = root / "mappings" / "south" / "op.yaml"
    mapping.write_text(mapping.read_text().replace('site: "south"', 'site: "south-2"'))
    assert version(root, "north") != before
    assert version(root, "north") == version(root)


def test_the_schema_of_a_binding_not_selected_is_part_of_the_version(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    before = version(root, "north")
    (root / "schemas" / "south.json").write_text(json.dumps({"type": "object", "required": ["n"]}))
    assert version(root, "north") != before
    assert version(root, "north") == version(root)


def test_test_cases_and_descriptions_are_no_part_of_the_version(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    before = version(root)
    case = "tests:\n  - {name: recorded, pipeline: south.op, event: {n: 1}, expect: {reply: {status: 200}}}\n"
    (root / "mappings" / "south" / "recorded.yaml").write_text(case)
    mapping = root / "mappings" / "north" / "op.yaml"
    mapping.write_text("description: the north site\n" + mapping.read_text() + case.replace("south", "north"))
    assert version(root) == before
    assert version(root, "south") == before
