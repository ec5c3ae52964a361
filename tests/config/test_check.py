"""`mesbridge check` on broken config roots: each class of mistake, located, with no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

CONNECTOR = """\
name: erp
base_url: ${ERP_URL:-http://127.0.0.1:9}
auth: {kind: basic, username: "${ERP_USER}", password: "${ERP_PASSWORD}"}
operations:
  rpc:
    method: POST
    path: /rpc
    body: {Method: "{{ args.method }}"}
"""

MAPPING = """\
vars:
  centres: {WC-1: "01"}
pipelines:
  - name: demo.operation
    source: {kind: webhook, path: /demo/operation}
    steps:
      - set:
          qty: "{{ event.validQty }}"
      - name: report
        call: erp
        method: POST
        path: /reports
        body:
          QUANT: "{{ qty }}"
          CENTRE: "{{ event.workCenterCode | lookup(vars.centres) }}"
      - switch: event.type
        cases:
          add: []
    reply:
      body: {externalId: "{{ report.id }}"}
tests:
  - name: reports
    pipeline: demo.operation
    event: {type: add, validQty: 2, workCenterCode: WC-1}
    responses:
      - {connector: erp, method: POST, path: /reports, body: {id: 5}}
    expect:
      calls:
        - {connector: erp, method: POST, path: /reports, body: {QUANT: 2, CENTRE: "01"}}
      reply: {status: 200, body: {externalId: 5}}
"""


def make_root(tmp_path: Path, mapping: str = MAPPING, connector: str = CONNECTOR) -> Path:
    (tmp_path / "connectors").mkdir(parents=True)
    (tmp_path / "mappings" / "demo").mkdir(parents=True)
    (tmp_path / "connectors" / "erp.yaml").write_text(connector, encoding="utf-8")
    (tmp_path / "mappings" / "demo" / "operation.yaml").write_text(mapping, encoding="utf-8")
    return tmp_path


def check(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", str(root), *args])
    return result.exit_code, result.output


def test_valid_root_passes_without_secrets_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check runs in CI, where the secrets are not: each one not set is a warning, located, not an error
    (`mesbridge run` refuses to start instead)."""
    monkeypatch.delenv("ERP_USER", raising=False)
    monkeypatch.setenv("ERP_PASSWORD", "set-here")
    code, output = check(make_root(tmp_path))
    assert code == 0, output
    assert output.startswith(
        "connectors/erp.yaml:3:32: warning: environment variable ERP_USER is not set "
        "(needed by connector erp, auth.username)\n"
    ), output
    assert "ERP_PASSWORD is not set" not in output and "0 errors, 1 warning\n" in output
    assert output.strip().splitlines()[-1].startswith("ok: 1 connector(s), 1 pipeline(s), 1 test(s)")
    code, output = check(tmp_path, "--format", "github")
    assert code == 0 and output.startswith("::warning file=connectors/erp.yaml,line=3,col=32")
    monkeypatch.setenv("ERP_USER", "set-too")
    code, output = check(tmp_path)
    assert code == 0 and output.startswith("ok: 1 connector(s), 1 pipeline(s), 1 test(s)")


def test_only_the_used_connectors_own_text_is_checked_for_variables(tmp_path: Path) -> None:
    """A reference inside an expression is text, not a reference; a connector nothing calls is not
    needed; a variable with a default or set is fine."""
    from engine.config.root import load_project
    from engine.config.unset import unset_references

    connector = CONNECTOR.replace(
        '    body: {Method: "{{ args.method }}"}',
        '    body: {Method: "{{ args.method }}", Literal: "{{ \'${NOT_A_REFERENCE}\' }}",\n'
        '           Db: "db-${ERP_DB} {{ args.method }}", Tenant: "${ERP_TENANT:-demo}"}',
    )
    root = make_root(tmp_path, connector=connector)
    (root / "connectors" / "idle.yaml").write_text("base_url: ${IDLE_URL}\n")
    project = load_project(root)
    assert project.ok, [str(d) for d in project.diagnostics]
    found = unset_references(project, {"ERP_USER": "u", "ERP_PASSWORD": "p"})
    assert [(str(d), d.severity) for d in found] == [
        (
            "connectors/erp.yaml:9:20: environment variable ERP_DB is not set "
            "(needed by connector erp, operations.rpc.body.Db)",
            "error",
        )
    ]


def test_every_connector_a_served_pipeline_asks_is_checked_for_variables(tmp_path: Path) -> None:
    """A verify lookup's connector (the step's own `verify.call`, or the named operation's) and a call
    in a poll source's `steps` are used as much as a call step's connector."""
    from engine.config.root import load_project
    from engine.config.unset import unset_references

    connector = CONNECTOR + (
        "  create:\n    method: POST\n    path: /create\n    verify: {call: opverify, path: /find}\n"
    )
    mapping = MAPPING.replace(
        "        path: /reports\n",
        "        path: /reports\n        verify: {call: lookup, path: /reports}\n",
    ).replace(
        "      - switch: event.type\n",
        "      - {name: made, call: erp.create}\n      - switch: event.type\n",
    )
    root = make_root(tmp_path, mapping=mapping, connector=connector)
    (root / "mappings" / "demo" / "poll.yaml").write_text(
        "pipelines:\n"
        "  - name: demo.poll\n"
        "    source:\n"
        "      kind: poll\n"
        "      connector: erp\n"
        "      path: /orders\n"
        "      key: id\n"
        "      steps:\n"
        "        - {name: session, call: login, method: POST, path: /login}\n"
        "    steps: []\n"
    )
    for name in ("lookup", "opverify", "login", "idle"):
        (root / "connectors" / f"{name}.yaml").write_text(f"base_url: ${{{name.upper()}_URL}}\n")
    project = load_project(root)
    assert project.ok, [str(d) for d in project.diagnostics]
    found = unset_references(project, {"ERP_USER": "u", "ERP_PASSWORD": "p"})
    assert [str(d) for d in found] == [
        f"connectors/{name}.yaml:1:11: environment variable {name.upper()}_URL is not set "
        f"(needed by connector {name}, base_url)"
        for name in ("login", "lookup", "opverify")
    ]


def test_the_vars_and_templates_of_served_pipelines_are_checked_for_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binding's var is resolved whole for each event, a template's own text when it renders: each
    reference without a default that is not set is found where it is written. A `${X}` inside an
    expression's string is text, as it renders."""
    from engine.config.root import load_project
    from engine.config.unset import unset_references

    mapping = (
        MAPPING.replace(
            'vars:\n  centres: {WC-1: "01"}\n',
            'vars:\n  centres: {WC-1: "01"}\n  database: ${ERP_DB}\n  tenant: ${ERP_TENANT:-demo}\n',
        )
        .replace(
            '          QUANT: "{{ qty }}"\n',
            '          QUANT: "{{ qty }}"\n          SITE: "site-${ERP_SITE}"\n'
            "          NOTE: \"{{ '${NOT_A_REFERENCE}' }}\"\n",
        )
        .replace(
            '      body: {externalId: "{{ report.id }}"}\n',
            '      body: {externalId: "{{ report.id }}"}\n'
            "    on_error:\n      body:\n        message: |\n"
            "          failed at\n          ${ERP_DESK} {{ error.message }}\n",
        )
    )
    root = make_root(tmp_path, mapping=mapping)
    (root / "mappings" / "demo" / "vars.yaml").write_text("vars:\n  paths: [/a, '/b/${ERP_PATH}']\n")
    project = load_project(root)
    assert project.ok, [str(d) for d in project.diagnostics]
    found = unset_references(project, {"ERP_USER": "u", "ERP_PASSWORD": "p"})
    assert [str(d) for d in found] == [
        "mappings/demo/operation.yaml:3:13: environment variable ERP_DB is not set "
        "(needed by binding demo, vars.database)",
        "mappings/demo/vars.yaml:2:19: environment variable ERP_PATH is not set "
        "(needed by binding demo, vars.paths[1])",
        "mappings/demo/operation.yaml:17:23: environment variable ERP_SITE is not set "
        "(needed by pipeline demo.operation, steps[1].body.SITE)",
        "mappings/demo/operation.yaml:29:11: environment variable ERP_DESK is not set "
        "(needed by pipeline demo.operation, on_error.body.message)",
    ]
    for name in ("ERP_DB", "ERP_PATH", "ERP_SITE", "ERP_DESK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ERP_USER", "u")
    monkeypatch.setenv("ERP_PASSWORD", "p")
    code, output = check(root)
    assert code == 0 and "0 errors, 4 warnings" in output, output
    assert "mappings/demo/operation.yaml:17:23: warning: environment variable ERP_SITE" in output


M = "mappings/demo/operation.yaml"
C = "connectors/erp.yaml"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        pytest.param(
            "  - name: reports\n", "  - name: reports\n  - [\n", f"{M}:", "invalid YAML", id="yaml-syntax"
        ),
        pytest.param(
            "        method: POST\n",
            "        method: POST\n        method: GET\n",
            f"{M}:12:9",
            "duplicate key 'method' (first defined at line 11)",
            id="duplicate-key",
        ),
        pytest.param(
            "        path: /reports\n",
            "        pathh: /reports\n",
            f"{M}:12:9",
            "unknown key 'pathh'",
            id="unknown-key",
        ),
        pytest.param("add: []", "add: 5", f"{M}:18:16", "expected a list", id="wrong-type"),
        pytest.param(
            "kind: webhook", "kind: webhok", f"{M}:5:20", "unknown kind 'webhok'", id="unknown-kind"
        ),
        pytest.param(
            "call: erp", "call: epr", f"{M}:10:15", "unknown connector 'epr'", id="unknown-connector"
        ),
        pytest.param(
            "switch: event.type", "switch: event.[type", f"{M}:16:17", "invalid JMESPath", id="bad-jmespath"
        ),
        pytest.param('"{{ qty }}"', '"{{ qty }"', f"{M}:14:18", "invalid template", id="bad-jinja"),
        pytest.param(
            "| lookup(", "| lookupp(", f"{M}:15:19", "unknown filter 'lookupp'", id="unknown-filter"
        ),
        pytest.param(
            'QUANT: "{{ qty }}"',
            'QUANT: "{{ qtty }}"',
            f"{M}:14:18",
            "undefined name 'qtty' in template",
            id="undefined-name",
        ),
        pytest.param(
            "pipeline: demo.operation",
            "pipeline: demo.operations",
            f"{M}:23:15",
            "unknown pipeline 'demo.operations'",
            id="unknown-test-target",
        ),
        pytest.param(
            "call: erp\n        method: POST\n        path: /reports\n",
            "call: erp.rcp\n",
            f"{M}:10:15",
            "connector 'erp' has no operation 'rcp'",
            id="unknown-operation",
        ),
    ],
)
def test_each_class_of_mistake_is_located(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in MAPPING
    code, output = check(make_root(tmp_path, MAPPING.replace(old, new, 1)))
    assert code == 1, output
    assert "Traceback" not in output
    header = next(line for line in output.splitlines() if "error:" in line)
    assert header.startswith(where), output
    assert message in header, output
    source_line = output.splitlines()[output.splitlines().index(header) + 1]
    assert source_line.strip(), "the offending source line is printed under the message"


def test_did_you_mean_for_misspelt_keys(tmp_path: Path) -> None:
    code, output = check(make_root(tmp_path, MAPPING.replace("method: POST", "metod: POST", 1)))
    assert code == 1
    assert "hint: did you mean 'method'?" in output


def test_duplicate_webhook_routes(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    second = MAPPING.replace("demo.operation", "demo.other").replace("tests:", "unused:")
    second = second.split("unused:")[0].replace('vars:\n  centres: {WC-1: "01"}\n', "")
    (root / "mappings" / "demo" / "other.yaml").write_text(second, encoding="utf-8")
    code, output = check(root)
    assert code == 1
    assert "webhook route /demo/operation is already used by pipeline 'demo.operation'" in output


def test_all_errors_are_reported_not_only_the_first(tmp_path: Path) -> None:
    broken = MAPPING.replace("method: POST", "metod: POST", 1).replace("kind: webhook", "kind: hook")
    code, output = check(make_root(tmp_path, broken))
    assert code == 1
    assert output.count("error:") == 2


def test_connector_errors_are_located(tmp_path: Path) -> None:
    code, output = check(make_root(tmp_path, connector=CONNECTOR.replace("kind: basic", "kind: basci")))
    assert code == 1
    assert f"{C}:3:14: error: unknown kind 'basci'" in output


def test_github_and_json_formats(tmp_path: Path) -> None:
    root = make_root(tmp_path, MAPPING.replace("call: erp", "call: epr"))
    code, output = check(root, "--format", "github")
    assert code == 1
    assert output.startswith(f"::error file={M},line=10,col=15::unknown connector 'epr'")
    code, output = check(root, "--format", "json")
    assert code == 1
    assert json.loads(output)[0]["line"] == 10


def test_not_a_config_root(tmp_path: Path) -> None:
    code, output = check(tmp_path)
    assert code == 1
    assert "not a config root" in output


def test_usage_error_exits_2(tmp_path: Path) -> None:
    code, _ = check(tmp_path, "--format", "xml")
    assert code == 2


@pytest.mark.parametrize(
    ("target", "old", "new", "where"),
    [
        pytest.param("connector", "base_url:", "base_urll:", "connectors/erp.yaml:2:1", id="connector-key"),
        pytest.param(
            "mapping",
            "  - name: demo.operation",
            "  - nme: demo.operation",
            "operation.yaml:4:5",
            id="pipeline-name-key",
        ),
    ],
)
def test_one_misspelt_required_key_is_one_error(
    tmp_path: Path, target: str, old: str, new: str, where: str
) -> None:
    connector, mapping = CONNECTOR, MAPPING
    if target == "connector":
        connector = connector.replace(old, new)
    else:
        mapping = mapping.replace(old, new)
    code, output = check(make_root(tmp_path, mapping, connector))
    assert code == 1
    assert output.count("error:") == 1, output  # not "missing 'base_url'", nor the references that follow
    assert f"{where}: error: unknown key '{new.split(':')[0].split()[-1]}'" in output, output
    assert "did you mean" in output


BROKEN = """\
pipelines:
  - name: demo.copy
    source: {kind: webhook, path: /demo/copy}
  - name: NAME
    sorce: {kind: webhook, path: /demo/copy2}
"""


@pytest.mark.parametrize("name", ["demo.other", "demo.copy"], ids=["distinct", "written-twice"])
def test_a_broken_file_whose_pipelines_all_have_names_lets_unknown_pipelines_be_reported(
    tmp_path: Path, name: str
) -> None:
    """Every pipeline of the broken file has a readable name (in one case the same one twice): another
    file's test of the binding naming a pipeline that exists nowhere is still an error."""
    mapping = MAPPING.replace("    pipeline: demo.operation\n", "    pipeline: demo.no_such_pipeline\n")
    root = make_root(tmp_path, mapping)
    (root / "mappings" / "demo" / "broken.yaml").write_text(BROKEN.replace("NAME", name), encoding="utf-8")
    code, output = check(root)
    assert code == 1
    assert "unknown key 'sorce'" in output, output
    assert "unknown pipeline 'demo.no_such_pipeline'" in output, output


def test_a_selected_binding_without_a_folder_is_an_error(tmp_path: Path) -> None:
    """A misspelt binding in `bindings` (or MESBRIDGE_BINDINGS) would leave it silently unserved."""
    root = make_root(tmp_path)
    (root / "mesbridge.yaml").write_text("bindings: [demo, dmeo]\n", encoding="utf-8")
    code, output = check(root)
    assert code == 1, output
    assert "mesbridge.yaml:1:18: error: binding 'dmeo' has no folder mappings/dmeo/" in output, output
    assert "hint: did you mean 'demo'?" in output
    result = CliRunner().invoke(main, ["check", str(root)], env={"MESBRIDGE_BINDINGS": "demo,north"})
    assert result.exit_code == 1, result.output
    assert (
        "environment MESBRIDGE_BINDINGS: error: names binding 'north', which has no folder mappings/north/"
    ) in result.output
    assert "mesbridge.yaml:1:1" not in result.output
    assert "dmeo" not in result.output  # the variable overrides the file


def test_a_github_annotation_of_an_environment_finding_names_no_file(tmp_path: Path) -> None:
    """GitHub places an annotation with `file=` in that file: a variable is titled instead."""
    root = make_root(tmp_path)
    env = {"MESBRIDGE_BINDINGS": "demo,north", "MESBRIDGE_WORKERS": "many"}
    result = CliRunner().invoke(main, ["check", str(root), "--format", "github"], env=env)
    assert result.exit_code == 1, result.output
    annotations = [line for line in result.output.splitlines() if "MESBRIDGE_" in line]
    assert annotations == [
        "::error title=environment MESBRIDGE_WORKERS::invalid setting workers: "
        "Input should be a valid integer, unable to parse string as an integer",
    ], result.output
    env["MESBRIDGE_WORKERS"] = "2"  # the settings load: the bindings are checked
    result = CliRunner().invoke(main, ["check", str(root), "--format", "github"], env=env)
    annotations = [line for line in result.output.splitlines() if "MESBRIDGE_" in line]
    assert annotations == [
        "::error title=environment MESBRIDGE_BINDINGS::names binding 'north', which has no folder "
        "mappings/north/ (bindings: demo)",
    ], result.output


def test_bindings_that_name_no_binding_are_an_error(tmp_path: Path) -> None:
    """`MESBRIDGE_BINDINGS=" "` or `bindings: []` would serve not one pipeline, without a word."""
    root = make_root(tmp_path)
    result = CliRunner().invoke(main, ["check", str(root)], env={"MESBRIDGE_BINDINGS": " , "})
    assert result.exit_code == 1, result.output
    assert "environment MESBRIDGE_BINDINGS: error: names no binding: nothing would be served" in result.output
    (root / "mesbridge.yaml").write_text("bindings: []\n", encoding="utf-8")
    code, output = check(root)
    assert code == 1, output
    assert "mesbridge.yaml:1:11: error: bindings names no binding: nothing would be served" in output, output


def test_a_settings_error_does_not_quote_a_store_password(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "mesbridge.yaml").write_text("store: mysql://erp:hunter2@db/mesbridge\n", encoding="utf-8")
    code, output = check(root)
    assert code == 1, output
    assert "mesbridge.yaml:1:8: error: unsupported store URL scheme 'mysql'" in output, output
    assert "    store: mysql://erp:***@db/mesbridge\n" in output, output
    assert "hunter2" not in output


def test_an_event_file_that_is_not_json_is_located(tmp_path: Path) -> None:
    """`mesbridge test` would fail the case on it: check says so first, at the case's `event_file`."""
    mapping = MAPPING.replace(
        "    event: {type: add, validQty: 2, workCenterCode: WC-1}\n", "    event_file: ev.json\n"
    )
    root = make_root(tmp_path, mapping)
    (root / "mappings" / "demo" / "ev.json").write_text('{"type": add}', encoding="utf-8")
    code, output = check(root)
    assert code == 1, output
    assert f"{M}:24:17: error: cannot read event file ev.json: Expecting value: line 1 column 10" in output, (
        output
    )


def test_a_nested_var_the_binding_does_not_define_is_located(tmp_path: Path) -> None:
    """`vars.centres.WC_1` where the binding's `centres` mapping holds `WC-1`: an error at the template."""
    mapping = MAPPING.replace("{{ event.workCenterCode | lookup(vars.centres) }}", "{{ vars.centres.WC_1 }}")
    code, output = check(make_root(tmp_path, mapping))
    assert code == 1, output
    assert f"{M}:15:19: error: 'vars.centres.WC_1' is not defined in binding 'demo'" in output, output
    assert "hint: did you mean 'WC-1'?" in output
    assert output.count("error:") == 1


def test_a_root_whose_mappings_folder_is_misspelt_is_an_error(tmp_path: Path) -> None:
    """`mapping/` for `mappings/`: the root would serve and test nothing, and say ok."""
    root = make_root(tmp_path)
    (root / "mappings").rename(root / "mapping")
    code, output = check(root)
    assert code == 1, output
    assert "error: no mappings/ folder: no pipeline to serve or test" in output
    assert "hint: did you mean 'mapping/'?" in output


@pytest.mark.parametrize(
    ("zone", "template", "message"),
    [
        pytest.param(
            "Europe/Bucharet",
            "{{ now() | date('%Y-%m-%d', vars.zone) }}",
            "vars.zone: unknown time zone 'Europe/Bucharet'",
            id="in-vars",
        ),
        pytest.param(
            "Europe/Bucharest",
            "{{ now() | date('%Y-%m-%d', 'Asia/Hanoii') }}",
            "unknown time zone 'Asia/Hanoii'",
            id="written",
        ),
    ],
)
def test_a_time_zone_the_database_does_not_know_is_located(
    tmp_path: Path, zone: str, template: str, message: str
) -> None:
    """Every run would fail on it (`unknown time zone`): check says so, at the template that reads it."""
    mapping = MAPPING.replace('centres: {WC-1: "01"}', f'centres: {{WC-1: "01"}}\n  zone: {zone}').replace(
        '          qty: "{{ event.validQty }}"',
        f'          qty: "{{{{ event.validQty }}}}"\n          day: "{template}"',
    )
    code, output = check(make_root(tmp_path, mapping))
    assert code == 1, output
    assert f"{M}:10:16: error: {message}" in output, output


def test_a_known_time_zone_or_one_from_the_environment_passes(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        'centres: {WC-1: "01"}', 'centres: {WC-1: "01"}\n  zone: "${TZ_NAME:-Asia/Ho_Chi_Minh}"'
    )
    mapping = mapping.replace(
        '          qty: "{{ event.validQty }}"',
        '          qty: "{{ event.validQty }}"\n'
        "          a: \"{{ now() | date('%Y-%m-%d', vars.zone) }}\"\n"
        "          b: \"{{ now() | date('%Y-%m-%d', 'Europe/Bucharest') }}\"\n"
        "          c: \"{{ now() | date('%Y-%m-%d', event.zone) }}\"",
    )
    code, output = check(make_root(tmp_path, mapping))
    assert code == 0, output


def test_a_used_tls_ca_file_that_cannot_be_loaded_is_warned_of(tmp_path: Path) -> None:
    """`mesbridge run` refuses it; check, run where the file may not be, warns (exit 0)."""
    absent = tmp_path / "absent-ca.pem"
    connector = CONNECTOR.replace("name: erp\n", f"name: erp\ntls_ca_file: {absent}\n")
    root = make_root(tmp_path / "root", connector=connector)
    code, output = check(root)
    assert code == 0, output
    assert (
        f"connectors/erp.yaml:2:14: warning: tls_ca_file {absent} cannot be loaded: No such file or "
        "directory (needed by connector erp: every call would fail)"
    ) in output
