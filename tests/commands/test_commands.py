"""The CLI commands end to end on small config roots: test, dry-run, schema, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import yaml
from click.testing import CliRunner

from engine.cli import main
from tests.config.test_check import MAPPING, make_root


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_test_command_passes_and_writes_junit(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    report = tmp_path / "junit.xml"
    code, output = invoke("test", str(root), "--junit", str(report))
    assert code == 0, output
    assert output.strip().endswith("1 passed, 0 failed")
    suite = ElementTree.parse(report).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"


def test_a_failing_case_prints_a_readable_diff(tmp_path: Path) -> None:
    wrong = MAPPING.replace('body: {QUANT: 2, CENTRE: "01"}', 'body: {QUANT: "2", CENTRE: "01"}')
    root = make_root(tmp_path, wrong)
    code, output = invoke("test", str(root))
    assert code == 1
    assert "FAIL mappings/demo/operation.yaml::reports" in output
    assert 'QUANT: expected "2", got 2' in output
    assert output.strip().endswith("0 passed, 1 failed")


def test_unexpected_call_and_unused_response_fail_the_case(tmp_path: Path) -> None:
    wrong = MAPPING.replace("path: /reports, body: {id: 5}}", "path: /other, body: {id: 5}}")
    code, output = invoke("test", str(make_root(tmp_path, wrong)))
    assert code == 1
    assert "unexpected call erp POST /reports (no mocked response)" in output
    assert "mocked response not used: erp POST /other" in output


def test_a_retried_call_with_one_response_says_each_answers_one_attempt(tmp_path: Path) -> None:
    """A 503 is retried: the second attempt finds no response left, and the case says why."""
    down = MAPPING.replace("path: /reports, body: {id: 5}}", "path: /reports, status: 503, body: {}}")
    code, output = invoke("test", str(make_root(tmp_path, down)))
    assert code == 1
    assert (
        "unexpected call erp POST /reports (no mocked response left: the one given answered an earlier "
        "attempt; a retried call needs one response per attempt)"
    ) in output, output


def test_a_keyword_that_matches_nothing_fails(tmp_path: Path) -> None:
    """A mistyped -k must not pass CI by testing nothing."""
    code, output = invoke("test", str(make_root(tmp_path)), "-k", "nothing-matches")
    assert code == 1
    assert "no test case matches -k 'nothing-matches': nothing was tested" in output


def test_the_config_root_is_an_argument_or_root_and_never_both(tmp_path: Path) -> None:
    root = str(make_root(tmp_path))
    assert invoke("check", root)[0] == invoke("check", "--root", root)[0] == 0
    code, output = invoke("check", root, "--root", str(tmp_path / "elsewhere"))
    assert code == 2 and "two config roots given" in output


def test_dry_run_prints_calls_and_reply_and_redacts_secrets(tmp_path: Path, monkeypatch: object) -> None:
    root = make_root(tmp_path / "root")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "add", "validQty": 4, "workCenterCode": "sk-live-SECRET-9"}))
    (root / "mappings" / "demo" / "operation.yaml").write_text(
        MAPPING.replace("lookup(vars.centres)", "default('x')"), encoding="utf-8"
    )
    responses = tmp_path / "responses.yaml"
    responses.write_text(
        yaml.safe_dump([{"connector": "erp", "method": "POST", "path": "/reports", "body": {"id": 9}}])
    )
    env = {"ERP_API_TOKEN": "sk-live-SECRET-9"}
    result = CliRunner(env=env).invoke(
        main,
        [
            "dry-run",
            "demo.operation",
            "--event",
            str(event),
            "--responses",
            str(responses),
            "--root",
            str(root),
        ],
    )
    assert result.exit_code == 0, result.output
    report = yaml.safe_load(result.output)
    assert report["calls"] == [
        {"connector": "erp", "method": "POST", "path": "/reports", "body": {"QUANT": 4, "CENTRE": "***"}}
    ]
    assert report["reply"] == {"status": 200, "body": {"externalId": 9}}
    assert "SECRET" not in result.output


def test_dry_run_lists_the_responses_no_call_used(tmp_path: Path) -> None:
    """A mistyped path in the responses file: its call got 200 {} instead, and the report says why."""
    root = make_root(tmp_path / "root")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "add", "validQty": 4, "workCenterCode": "WC-1"}))
    responses = tmp_path / "responses.yaml"
    responses.write_text(
        yaml.safe_dump([{"connector": "erp", "method": "POST", "path": "/report", "body": {"id": 9}}])
    )
    args = ["dry-run", "demo.operation", "--event", str(event), "--responses", str(responses)]
    code, output = invoke(*args, "--root", str(root))
    report = yaml.safe_load(output)
    assert report["calls"][0]["mocked"] is False
    assert report["unused_responses"] == ["erp POST /report"], output


def test_a_responses_file_that_does_not_validate_is_located(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "add", "validQty": 4, "workCenterCode": "WC-1"}))
    responses = tmp_path / "responses.yaml"
    responses.write_text("- {method: POST, path: /reports}\n- {connector: erp, methd: GET, path: /x}\n")
    args = ["dry-run", "demo.operation", "--event", str(event), "--responses", str(responses)]
    code, output = invoke(*args, "--root", str(root))
    assert code == 2, output
    assert f"{responses.as_posix()}:1:3: error: missing required key 'connector'" in output
    assert f"{responses.as_posix()}:2:20: error: unknown key 'methd'" in output
    assert "pydantic" not in output and "Traceback" not in output


RPC_CONNECTOR = """\
name: erp
base_url: http://erp.test
auth:
  kind: login
  request: {path: /login, body: {user: api, key: "${ERP_PASSWORD:-sandbox-pw}"}}
  token: result
  inject: {in: body, path: "args[1]", value: "${ERP_PASSWORD:-sandbox-pw}"}
"""
RPC_MAPPING = """\
pipelines:
  - name: demo.operation
    source: {kind: webhook, path: /demo/operation}
    steps:
      - {name: report, call: erp, method: POST, path: /rpc, body: {args: [report, null, "{{ event.qty }}"]}}
    reply: {body: {externalId: "{{ report.result }}"}}
tests:
  - name: the password goes in every call
    pipeline: demo.operation
    real_auth: true
    event: {qty: 2}
    responses:
      - {connector: erp, method: POST, path: /login, body: {result: tok-123456}}
      - {connector: erp, method: POST, path: /rpc, body: {result: 5}}
    expect:
      calls:
        - {connector: erp, method: POST, path: /rpc, match: exact, body: {args: [report, "***", QTY]}}
"""


def test_a_case_meets_and_shows_secrets_as_redacted(tmp_path: Path) -> None:
    """A case says `***` where a secret goes, whether the variable is set or its default is used, and
    no failure prints the secret."""
    root = make_root(tmp_path, RPC_MAPPING.replace("QTY", "2"), RPC_CONNECTOR)
    for env in ({}, {"ERP_PASSWORD": "live-pw-7781"}):
        result = CliRunner(env=env).invoke(main, ["test", str(root)])
        assert result.exit_code == 0, result.output
    (root / "mappings" / "demo" / "operation.yaml").write_text(RPC_MAPPING.replace("QTY", "3"))
    for env, secret in (({}, "sandbox-pw"), ({"ERP_PASSWORD": "live-pw-7781"}, "live-pw-7781")):
        result = CliRunner(env=env).invoke(main, ["test", str(root)])
        assert result.exit_code == 1
        assert "args[2]: expected 3, got 2" in result.output
        assert secret not in result.output


COOKIE_CONNECTOR = """\
name: erp
base_url: http://erp.test
auth:
  kind: login
  request: {path: /Login, body: {}}
  token: {cookie: SESSION}
  values: {route: {cookie: ROUTEID}}
  inject: [{in: cookie, name: SESSION}, {in: cookie, name: ROUTEID, value: "{route}"}]
"""
COOKIE_MAPPING = """\
pipelines:
  - name: demo.operation
    source: {kind: webhook, path: /demo/operation}
    steps:
      - {name: order, call: erp, path: /Orders}
    reply: {body: {id: "{{ order.id }}"}}
tests:
  - name: a login that sets two cookies
    pipeline: demo.operation
    real_auth: true
    event: {}
    responses:
      - connector: erp
        method: POST
        path: /Login
        headers: {Set-Cookie: ["SESSION=s-0123456789; HttpOnly;", "ROUTEID=.node2; path=/b1s"]}
        body: {SessionTimeout: 30}
      - {connector: erp, path: /Orders, body: {id: 4}}
    expect:
      reply: {body: {id: 4}}
"""


def test_a_mocked_reply_sends_a_listed_header_once_per_value(tmp_path: Path) -> None:
    """A login's two Set-Cookie headers can be mocked; both cookies are read and sent on."""
    import asyncio

    from engine.config.root import load_project
    from engine.testing.runner import run_all

    project = load_project(make_root(tmp_path, COOKIE_MAPPING, COOKIE_CONNECTOR))
    assert project.ok, [str(d) for d in project.diagnostics]
    (result,) = asyncio.run(run_all(project))
    assert result.passed, result.failures
    assert result.calls[1].headers["Cookie"] == "SESSION=s-0123456789; ROUTEID=.node2"


def test_dry_run_unknown_pipeline_is_a_usage_error(tmp_path: Path) -> None:
    event = tmp_path / "e.json"
    event.write_text("{}")
    code, output = invoke(
        "dry-run", "demo.operatio", "--event", str(event), "--root", str(make_root(tmp_path / "r"))
    )
    assert code == 2
    assert "did you mean 'demo.operation'?" in output


def test_schema_describes_every_file_kind() -> None:
    code, output = invoke("schema")
    assert code == 0
    schemas = json.loads(output)
    assert set(schemas) == {"connector", "mapping", "settings"}
    mapping = json.dumps(schemas["mapping"])
    for step in ("SetStep", "CallStep", "SwitchStep", "IfStep", "ForEachStep", "FailStep"):
        assert step in mapping
    assert "oauth2_client_credentials" in json.dumps(schemas["connector"])


def test_installed_command_runs_without_traceback(tmp_path: Path) -> None:
    broken = make_root(tmp_path, MAPPING.replace("kind: webhook", "kind: [oops"))
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "check", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "operation.yaml:5:" in done.stdout


def test_check_lists_the_paths_that_insert_values_as_written(tmp_path: Path) -> None:
    root = str(make_root(tmp_path))
    code, output = invoke("check", root, "--raw-paths")
    assert code == 0 and "0 path(s) insert a value as written" in output
    raw = MAPPING.replace("path: /reports", 'path: "{{ vars.prefix | path_raw }}/reports"', 1)
    raw = raw.replace("vars:\n", "vars:\n  prefix: /v2\n", 1)
    code, output = invoke("check", str(make_root(tmp_path / "raw", raw)), "--raw-paths")
    assert code == 0, output
    [line] = [line for line in output.splitlines() if "inserts a value as written" in line]
    assert line.startswith("mappings/demo/operation.yaml:") and "{{ vars.prefix | path_raw }}/reports" in line
    assert "1 path(s) insert a value as written" in output


def test_a_case_that_gives_now_reads_that_moment(tmp_path: Path) -> None:
    stamped = MAPPING.replace(
        'QUANT: "{{ qty }}"', 'QUANT: "{{ qty }}"\n          AT: "{{ now() | date(\'%Y%m%d%H%M%S\') }}"'
    )
    fixed = stamped.replace(
        "    event: {type: add, validQty: 2, workCenterCode: WC-1}",
        '    now: "2025-03-05T08:09:10Z"\n    event: {type: add, validQty: 2, workCenterCode: WC-1}',
    ).replace('body: {QUANT: 2, CENTRE: "01"}', 'body: {QUANT: 2, CENTRE: "01", AT: "20250305080910"}')
    code, output = invoke("test", str(make_root(tmp_path / "fixed", fixed)))
    assert code == 0, output
    wrong = fixed.replace('AT: "20250305080910"', 'AT: "20250305080911"')
    code, output = invoke("test", str(make_root(tmp_path / "wrong", wrong)))
    assert code == 1 and 'AT: expected "20250305080911", got "20250305080910"' in output


def test_a_webhook_deadline_may_name_a_var_of_its_binding(tmp_path: Path) -> None:
    from engine.config.root import load_project

    named = MAPPING.replace("  centres:", "  sync_deadline: 8\n  centres:").replace(
        "path: /demo/operation}", 'path: /demo/operation, deadline: "{{ vars.sync_deadline }}"}'
    )
    project = load_project(make_root(tmp_path / "ok", named))
    assert project.ok, [str(d) for d in project.diagnostics]
    assert project.pipelines["demo.operation"].pipeline.source.deadline == 8.0  # type: ignore[union-attr]
    misspelt = named.replace("{{ vars.sync_deadline }}", "{{ vars.sync_dedline }}")
    code, output = invoke("check", str(make_root(tmp_path / "misspelt", misspelt)))
    assert code == 1
    assert "deadline: vars.sync_dedline is not defined in binding 'demo'" in output
    assert "did you mean 'sync_deadline'?" in output
    text = named.replace("sync_deadline: 8", 'sync_deadline: "8 s"')
    code, output = invoke("check", str(make_root(tmp_path / "text", text)))
    assert code == 1 and "deadline: vars.sync_deadline must be a number of seconds > 0, got '8 s'" in output


def test_a_webhook_deadline_var_may_read_the_environment_when_the_config_loads(tmp_path: Path) -> None:
    """`sync_deadline: ${SYNC_DEADLINE:-8}`: one binding, its deadline set per site by a variable."""
    from engine.config.root import load_project

    named = MAPPING.replace("  centres:", '  sync_deadline: "${SYNC_DEADLINE:-8}"\n  centres:').replace(
        "path: /demo/operation}", 'path: /demo/operation, deadline: "{{ vars.sync_deadline }}"}'
    )
    root = make_root(tmp_path / "env", named)

    def deadline(environ: dict[str, str]) -> object:
        project = load_project(root, environ=environ)
        assert project.ok, [str(d) for d in project.diagnostics]
        return project.pipelines["demo.operation"].pipeline.source.deadline  # type: ignore[union-attr]

    assert deadline({}) == 8.0
    assert deadline({"SYNC_DEADLINE": "2.5"}) == 2.5
    for given in ("soon", "0", "-1", "nan", "inf", ""):
        project = load_project(root, environ={"SYNC_DEADLINE": given})
        assert [d.message for d in project.diagnostics] == [
            f"deadline: vars.sync_deadline must be a number of seconds > 0, got {given!r}"
        ]
    secret = make_root(tmp_path / "secret", named.replace("${SYNC_DEADLINE:-8}", "${API_TOKEN}"))
    [problem] = load_project(secret, environ={"API_TOKEN": "s3cret-value"}).diagnostics
    assert problem.message == "deadline: vars.sync_deadline must be a number of seconds > 0, got '***'"
    unset = make_root(tmp_path / "unset", named.replace("${SYNC_DEADLINE:-8}", "${SYNC_DEADLINE}"))
    [problem] = load_project(unset, environ={}).diagnostics
    assert problem.message.startswith(
        "deadline: vars.sync_deadline: environment variable SYNC_DEADLINE is not set"
    )
