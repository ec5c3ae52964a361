"""`mesbridge diff` end to end on copies of this repository's config root, one of them edited: the
calls and replies that change, in every format, with exit status 0, 1 or 2."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from engine.cli import main
from engine.config.root import load_project
from engine.config.yamlsource import load_yaml
from engine.testing.diff_report import MARKER
from engine.testing.runner import run_case

REPO = Path(__file__).resolve().parents[2]
ROOT_PARTS = ("mappings", "connectors", "schemas", "mesbridge.yaml")
OPERATION = "head/mappings/priority/operation.yaml"
QUANT = 'QUANT: "{{ event.validQty | default(0, true) }}"'


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`base/` and `head/`: two copies of the repository's config root; the tests run beside them."""
    for side in ("base", "head"):
        for part in ROOT_PARTS:
            source, target = REPO / part, tmp_path / side / part
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def diff(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, ["diff", *args])


def edit(path: str, old: str, new: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, f"{path} no longer holds {old!r}"
    Path(path).write_text(text.replace(old, new, 1), encoding="utf-8")


def rewrite(path: str, change: Callable[[Any], None]) -> None:
    """Edit a YAML file as data (read as mesbridge reads it) and write it back."""
    data = load_yaml(Path(path)).data
    change(data)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=200), "utf-8")


def pipeline(data: Any, name: str) -> dict[str, Any]:
    return next(p for p in data["pipelines"] if p["name"] == name)


def step_lists(value: Any) -> Iterator[list[Any]]:
    if isinstance(value, dict):
        for item in value.values():
            yield from step_lists(item)
    elif isinstance(value, list):
        yield value
        for item in value:
            yield from step_lists(item)


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def changed(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {event["name"]: event for event in document["events"] if event["status"] == "changed"}


def test_identical_roots_have_no_changes(roots: Path) -> None:
    result = diff("base", "head", "--from-tests")
    assert result.exit_code == 0, result.output
    cases = len(load_project("head").tests)
    assert result.stdout.strip() == f"no changes: {cases} events behave the same in base and head"


def test_rewriting_the_yaml_without_changing_it_changes_nothing(roots: Path) -> None:
    for path in Path("head/mappings").rglob("*.yaml"):
        rewrite(str(path), lambda data: None)
    document = as_json(diff("base", "head", "--from-tests", "--format", "json"))
    assert not document["changed"]
    assert not any(p["edited"] for p in document["summary"]["pipelines"])


def test_a_changed_field_mapping_lists_exactly_the_calls_whose_body_changed(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    project = load_project("base")
    posting: dict[str, list[int]] = {}  # the quantity each report posted (a retried post: twice)
    for entry in project.tests:
        if entry.case.pipeline == "priority.operation":
            for call in asyncio.run(run_case(project, entry)).calls:
                if (call.method, call.path) == ("POST", "/ALINE_ONE") and isinstance(call.body, dict):
                    posting.setdefault(entry.case.name, []).append(call.body["QUANT"])
    assert posting, "the shipped cases no longer post an operation report"

    result = diff("base", "head", "--from-tests", "-k", "priority.operation", "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    events = changed(document)
    assert set(events) == set(posting)
    for name, event in events.items():
        assert event["result"] == []
        assert [(c["change"], c["method"], c["path"]) for c in event["calls"]] == [
            ("changed", "POST", "/ALINE_ONE")
        ] * len(posting[name])
        assert [c["fields"] for c in event["calls"]] == [
            [{"field": "body.QUANT", "change": "changed", "before": quantity, "after": str(quantity)}]
            for quantity in posting[name]
        ]
    [summary] = [p for p in document["summary"]["pipelines"] if p["pipeline"] == "priority.operation"]
    assert summary["changed"] == len(posting) and summary["edited"]

    text = diff("base", "head", "--from-tests", "-k", "priority.operation").stdout
    assert "call #2 priority POST /ALINE_ONE: changed" in text
    assert 'body.QUANT: 3 → "3"' in text
    assert f"priority.operation: {len(posting)} of {summary['events']} events changed" in text


def test_a_removed_call_and_an_added_call(roots: Path) -> None:
    def change(data: Any) -> None:
        operation = pipeline(data, "priority.operation")
        for steps in step_lists(operation["steps"]):
            steps[:] = [s for s in steps if not (isinstance(s, dict) and s.get("name") == "before")]
            for step in steps:
                if isinstance(step, dict) and step.get("name") == "report":  # it read the baseline
                    step["verify"]["query"]["$filter"] = "{{ same_report }}"
        audit = {"name": "audit", "call": "priority", "method": "GET", "path": "/AUDIT", "query": {"n": "1"}}
        operation["steps"].insert(0, audit)

    rewrite(OPERATION, change)
    document = as_json(
        diff("base", "head", "--from-tests", "-k", "operation add reports good", "--format", "json")
    )
    [event] = changed(document).values()
    assert [
        (c["change"], c["method"], c["path"], c["number_before"], c["number_after"]) for c in event["calls"]
    ] == [
        ("removed", "GET", "/ALINE_ONE", 1, None),
        ("added", "GET", "/AUDIT", None, 1),
    ]
    assert event["calls"][1]["request"] == {"query": {"n": "1"}}
    assert not event["calls"][1]["mocked"]
    text = diff("base", "head", "--from-tests", "-k", "operation add reports good").stdout
    assert "call #1 priority GET /AUDIT: added (no mocked response: answered 200 {})" in text
    assert "call #1 priority GET /ALINE_ONE: removed" in text


def test_a_changed_path_pairs_the_calls(roots: Path) -> None:
    edit(OPERATION, 'path: "/ALINE_ONE(FORM={{ form }}', 'path: "/ALINE(FORM={{ form }}')  # the DELETE
    document = as_json(
        diff("base", "head", "--from-tests", "-k", "remove with externalId", "--format", "json")
    )
    [event] = changed(document).values()
    [call] = event["calls"]
    assert (call["change"], call["path_before"], call["path"]) == (
        "changed",
        "/ALINE_ONE(FORM=12,KLINE=1)",
        "/ALINE(FORM=12,KLINE=1)",
    )
    assert call["fields"][0] == {
        "field": "path",
        "change": "changed",
        "before": "/ALINE_ONE(FORM=12,KLINE=1)",
        "after": "/ALINE(FORM=12,KLINE=1)",
    }


def test_a_case_in_one_root_only_runs_through_both_and_says_which(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    cases = "head/mappings/priority/tests/operation.yaml"
    first, second = load_yaml(Path(cases)).data["tests"][:2]

    def change(data: Any) -> None:
        data["tests"][0] = {**first, "name": "renamed in head"}
        data["tests"][1]["event"]["validQty"] = 7

    rewrite(cases, change)
    document = as_json(diff("base", "head", "--from-tests", "-k", "priority.operation", "--format", "json"))
    events = {e["name"]: e for e in document["events"]}
    assert (events[first["name"]]["origin"], events[first["name"]]["status"]) == ("base", "changed")
    assert (events["renamed in head"]["origin"], events["renamed in head"]["status"]) == ("head", "changed")
    assert "file" not in events[first["name"]]
    assert events[second["name"]]["note"].startswith("the case's inputs differ between the roots")
    assert events[second["name"]]["calls"][0]["fields"][0] == {
        "field": "body.QUANT",
        "change": "changed",
        "before": 7,
        "after": "7",
    }
    text = diff("base", "head", "--from-tests", "-k", "priority.operation").stdout
    assert (
        f"~ priority.operation :: {first['name']} (mappings/priority/tests/operation.yaml:2, only in base's tests)"
        in text
    )


def test_a_changed_reply_status(roots: Path) -> None:
    rewrite(OPERATION, lambda data: pipeline(data, "priority.operation")["reply"].update(status=201))
    document = as_json(
        diff("base", "head", "--from-tests", "-k", "operation add reports good", "--format", "json")
    )
    [event] = changed(document).values()
    assert event["calls"] == []
    assert event["result"] == [{"field": "reply.status", "change": "changed", "before": 200, "after": 201}]


def test_a_pipeline_only_in_one_root_is_added_or_removed(roots: Path) -> None:
    def without_repair_done(data: Any) -> None:
        data["pipelines"] = [p for p in data["pipelines"] if p["name"] != "priority.repair_done"]

    def with_a_copy(data: Any) -> None:
        copy = json.loads(json.dumps(pipeline(data, "priority.operation")))
        copy["name"], copy["source"]["path"] = "priority.operation_v2", "/priority/operation-v2"
        data["pipelines"].append(copy)

    rewrite("head/mappings/priority/service_calls.yaml", without_repair_done)
    rewrite(
        "head/mappings/priority/tests/service_calls.yaml",
        lambda d: d.update(tests=[t for t in d["tests"] if t["pipeline"] != "priority.repair_done"]),
    )
    rewrite(OPERATION, with_a_copy)
    result = diff("base", "head", "--from-tests", "-k", "priority.")
    assert result.exit_code == 1, result.output
    removed = sum(e.case.pipeline == "priority.repair_done" for e in load_project("base").tests)
    assert f"priority.repair_done: pipeline removed ({removed} events not compared)" in result.stdout
    assert "priority.operation_v2: pipeline added (0 events not compared)" in result.stdout
    document = as_json(diff("base", "head", "--from-tests", "-k", "priority.", "--format", "json"))
    gone = [e for e in document["events"] if e["pipeline"] == "priority.repair_done"]
    assert {(e["status"], e["origin"]) for e in gone} == {("removed", "base")}


def test_a_poll_round_compares_the_listing_and_the_records(roots: Path) -> None:
    edit("head/mappings/priority/workorders.yaml", "UDATE gt {{ cursor", "UDATE ge {{ cursor")
    document = as_json(diff("base", "head", "--from-tests", "-k", "priority.workorders", "--format", "json"))
    rounds = [e for e in changed(document).values() if e["calls"] and e["calls"][0]["path"] == "/SERIAL"]
    assert rounds, "no poll round case of priority.workorders changed"
    for event in rounds:
        assert event["calls"][0]["fields"][0]["field"] == "query.$filter"
        assert event["calls"][0]["fields"][0]["after"].startswith("UDATE ge ")
        assert event["result"] == []


def test_now_reads_one_frozen_clock_on_both_sides(roots: Path) -> None:
    stamp = 'quantity: "{{ event.QUANT }}"'
    for side in ("base", "head"):
        edit(
            f"{side}/mappings/priority/workorders.yaml",
            stamp,
            stamp + '\n            syncedAt: "{{ now() }}"',
        )
    assert diff("base", "head", "--from-tests", "-k", "priority.workorders").exit_code == 0
    edit(
        "head/mappings/priority/workorders.yaml",
        'syncedAt: "{{ now() }}"',
        'syncedAt: "{{ now() }}"\n            syncedOn: "{{ now() | date }}"',
    )
    document = as_json(
        diff(
            "base",
            "head",
            "--from-tests",
            "-k",
            "new Priority work order",
            "--format",
            "json",
            "--now",
            "2025-02-18T10:39:00Z",
        )
    )
    [event] = changed(document).values()
    assert event["calls"][0]["fields"] == [
        {"field": "body.syncedOn", "change": "added", "after": "2025-02-18"}
    ]
    assert document["clock"] == "2025-02-18T10:39:00.000Z"


def test_events_from_a_folder(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    folder = Path("events/priority.operation")
    folder.mkdir(parents=True)
    shutil.copy(REPO / "examples/events/operation-add.json", folder / "add.json")
    shutil.copy(REPO / "examples/events/operation-add.responses.yaml", folder / "add.responses.yaml")
    envelope = {"pipeline": "priority.operation", "event": json.loads((folder / "add.json").read_text())}
    Path("events/no-responses.json").write_text(json.dumps(envelope))
    result = diff("base", "head", "--events", "events", "--format", "json")
    assert result.exit_code == 1, result.output
    events = changed(json.loads(result.stdout))
    assert set(events) == {"priority.operation/add.json", "no-responses.json"}
    assert events["priority.operation/add.json"]["responses"] > 0
    assert events["no-responses.json"]["note"] == "no mocked responses: every call is answered 200 {}"
    for event in events.values():
        assert [f["field"] for c in event["calls"] for f in c["fields"]] == ["body.QUANT"]


def test_cases_from_a_traces_file(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    cases = load_yaml(REPO / "mappings/priority/tests/operation.yaml").data["tests"][:1]
    Path("traced.yaml").write_text(yaml.safe_dump({"tests": cases}, allow_unicode=True), "utf-8")
    result = diff("base", "head", "--from-traces", "traced.yaml")
    assert result.exit_code == 1, result.output
    assert f"~ priority.operation :: {cases[0]['name']} (traced.yaml:2)" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "tests:\n  - name: x\n    pipeline: priority.operatoin\n    event: {}\n    expect: {}\n",
            "traced.yaml:3:15: error: unknown pipeline 'priority.operatoin': neither root has it; did you mean 'priority.operation'?",
            id="unknown-pipeline",
        ),
        pytest.param(
            "tests:\n  - name: x\n    pipeline: priority.operation\n    expect: {}\n    responses:\n      - {connector: priority, methd: GET, path: /x}\n",
            "traced.yaml:6:31: error: unknown key 'methd'",
            id="unknown-key",
        ),
        pytest.param(
            "tests:\n  - name: x\n    pipeline: priority.operation\n    event_file: gone.json\n    expect: {}\n",
            "traced.yaml:4:17: error: cannot read event_file",
            id="missing-event-file",
        ),
        pytest.param(
            "pipelines: []\ntests: []\n",
            "traced.yaml:1:1: error: a file of test cases holds only `tests:`, not `pipelines:`",
            id="pipelines",
        ),
        pytest.param("tests: [\n", "traced.yaml:2:1: error: invalid YAML", id="syntax"),
    ],
)
def test_a_bad_traces_file_is_a_located_usage_error(roots: Path, content: str, message: str) -> None:
    Path("traced.yaml").write_text(content, "utf-8")
    result = diff("base", "head", "--from-traces", "traced.yaml")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {"a.json": '{"pipeline": "priority.operation", "evnt": {}}'},
            "events/a.json:1:36: error: unknown key 'evnt'",
            id="envelope-key",
        ),
        pytest.param(
            {"a.json": '{"event": {}}'},
            "events/a.json:1:1: error: missing required key 'pipeline'",
            id="envelope-pipeline",
        ),
        pytest.param(
            {"nope/a.json": "{}"}, "events/nope/a.json: error: unknown pipeline 'nope'", id="unknown-folder"
        ),
        pytest.param(
            {"priority.operation/a.json": '{"a": 1,,}'},
            "events/priority.operation/a.json:1:9: error: invalid JSON",
            id="invalid-json",
        ),
        pytest.param(
            {"priority.operation/a.json": "{}", "priority.operation/a.responses.yaml": "- {path: /x}\n"},
            "events/priority.operation/a.responses.yaml:1:3: error: missing required key 'connector'",
            id="responses",
        ),
        pytest.param({"README.md": "events"}, "events: error: no events", id="empty"),
    ],
)
def test_unreadable_events_are_a_located_usage_error(
    roots: Path, files: dict[str, str], message: str
) -> None:
    for name, content in files.items():
        (Path("events") / name).parent.mkdir(parents=True, exist_ok=True)
        (Path("events") / name).write_text(content, "utf-8")
    result = diff("base", "head", "--events", "events")
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_usage_errors_exit_2(roots: Path) -> None:
    nothing = diff("base", "head")
    assert nothing.exit_code == 2 and "give the events to compare" in nothing.output
    missing = diff("gone", "head", "--from-tests")
    assert missing.exit_code == 2 and "'gone' does not exist" in missing.output
    no_folder = diff("base", "head", "--events", "gone")
    assert no_folder.exit_code == 2
    bad_clock = diff("base", "head", "--from-tests", "--now", "yesterday")
    assert bad_clock.exit_code == 2 and "not an ISO 8601 time" in bad_clock.output
    bad_format = diff("base", "head", "--from-tests", "--format", "yaml")
    assert bad_format.exit_code == 2


def test_a_broken_head_root_is_a_usage_error_located_as_check_prints_it(roots: Path) -> None:
    edit(OPERATION, "              method: POST\n", "              metod: POST\n")
    result = diff("base", "head", "--from-tests")
    assert result.exit_code == 2
    assert result.stderr.startswith("mesbridge diff: the head root head does not load:\n")
    assert re.search(
        r"^mappings/priority/operation\.yaml:\d+:\d+: error: unknown key 'metod'$", result.stderr, re.M
    )
    assert "Traceback" not in result.output


def test_head_defaults_to_the_current_folder(roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(roots / "head")
    result = diff("../base", "--from-tests", "-k", "priority.operation")
    assert result.exit_code == 0, result.output
    assert "behave the same in ../base and ." in result.stdout


# --- formats ----------------------------------------------------------------------------------------


def cells(row: str) -> list[str]:
    """A Markdown table row's cells (an escaped `\\|` or `&#124;` does not split)."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


def test_markdown_is_a_comment_with_a_summary_table_and_a_table_per_changed_event(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    result = diff("base", "head", "--from-tests", "-k", "priority.", "--format", "markdown")
    assert result.exit_code == 1
    text = result.stdout
    assert text.startswith("<!-- mesbridge-diff -->\n### mesbridge diff: ")
    tables: list[list[str]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("|") and (number == 0 or not lines[number - 1].startswith("|")):
            tables.append([])
        if line.startswith("|"):
            tables[-1].append(line)
    summary, *events = tables
    assert cells(summary[0]) == [" pipeline ", " events ", " changed "]
    assert all(len(cells(row)) == 3 for table in tables for row in table)
    assert all(re.fullmatch(r"\|(-+:?\|)+", table[1].replace("---:", "---")) for table in tables)
    assert len(events) == text.count("<details>") == text.count("</details>") > 0
    assert '<code>body.QUANT</code> | <code>3</code> | <code>"3"</code> |' in text
    assert len(text) < 65_536


def test_json_is_stable_and_sorted(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    args = (
        "base",
        "head",
        "--from-tests",
        "-k",
        "priority.operation",
        "--format",
        "json",
        "--now",
        "2025-01-01T00:00:00Z",
    )
    first, second = diff(*args), diff(*args)
    assert first.stdout == second.stdout
    document = json.loads(first.stdout)
    assert first.stdout.strip() == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    assert {"base", "head", "clock", "changed", "summary", "events"} <= set(document)


WORKFLOW_COMMAND = re.compile(
    r"^::(warning|notice|error)(?: ([a-z]+=[^,:\r\n]*(?:,[a-z]+=[^,:\r\n]*)*))?::[^\r\n]*$"
)


def test_github_writes_valid_workflow_commands_and_the_step_summary(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    summary = roots / "summary.md"
    summary.write_text("earlier step\n")
    result = diff(
        "base",
        "head",
        "--from-tests",
        "-k",
        "priority.operation",
        "--format",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines and all(WORKFLOW_COMMAND.match(line) for line in lines), lines
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(warnings) == len(
        changed(as_json(diff("base", "head", "--from-tests", "-k", "priority.operation", "--format", "json")))
    )
    assert all("file=head/mappings/priority/tests/operation.yaml,line=" in w for w in warnings)
    assert all("title=mesbridge diff%3A priority.operation::" in w for w in warnings)
    assert lines[-1].startswith("::notice title=mesbridge diff::")
    written = summary.read_text()
    assert written.startswith("earlier step\n<!-- mesbridge-diff -->\n")


def test_secrets_are_masked_in_every_format(roots: Path) -> None:
    edit(OPERATION, QUANT, 'QUANT: "{{ event.validQty | default(0, true) | to_str }}"')
    edit(
        OPERATION,
        'PARTNAME: "{{ event.sku }}"',
        'PARTNAME: "{{ event.sku }}"\n                  NOTE: "sk-live-SECRET-9"',
    )
    for output in ("text", "json", "markdown", "github"):
        result = diff(
            "base",
            "head",
            "--from-tests",
            "-k",
            "operation add reports good",
            "--format",
            output,
            env={"ERP_API_TOKEN": "sk-live-SECRET-9"},
        )
        assert result.exit_code == 1
        assert "sk-live-SECRET-9" not in result.stdout and "***" in result.stdout


def test_the_example_workflow_runs_check_test_and_diff_beside_a_checkout_of_the_base() -> None:
    workflow = yaml.safe_load((REPO / "examples/github/diff.yml").read_text(encoding="utf-8"))
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in trigger
    [job] = workflow["jobs"].values()
    steps = job["steps"]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 2 and checkouts[1]["with"]["path"] == "base"
    assert "pull_request.base.sha" in checkouts[1]["with"]["ref"]
    runs = "\n".join(s.get("run", "") for s in steps)
    for command in (
        "pip install mesbridge",
        "mesbridge check .",
        "mesbridge test .",
        "mesbridge diff base . --from-tests --format markdown > diff.md",
    ):
        assert command in runs
    assert any(s.get("uses", "").startswith("actions/github-script@") for s in steps)
    assert MARKER in next(s["with"]["script"] for s in steps if "script" in s.get("with", {}))
    [gate] = [s for s in steps if "behaviour-change" in str(s.get("if", ""))]
    assert "steps.diff.outputs.status == '1'" in gate["if"]


# --- nothing to compare -----------------------------------------------------------------------------


def test_a_filter_that_matches_no_event_is_a_usage_error(roots: Path) -> None:
    result = diff("base", "head", "--from-tests", "-k", "zzzz")
    assert result.exit_code == 2, result.output
    assert "mesbridge diff: no event matches -k 'zzzz': nothing was compared" in result.stderr
    assert "no changes" not in result.stdout


@pytest.mark.parametrize("content", ["", "# recorded later\n", "tests: []\n"])
def test_a_traces_file_without_cases_is_a_located_usage_error(roots: Path, content: str) -> None:
    Path("traced.yaml").write_text(content, "utf-8")
    result = diff("base", "head", "--from-tests", "--from-traces", "traced.yaml")
    assert result.exit_code == 2, result.output
    assert "traced.yaml: error: no test cases: expected a top-level `tests:` list" in result.stderr
    assert "no changes" not in result.stdout


def test_roots_without_test_cases_are_a_usage_error_for_from_tests(roots: Path) -> None:
    for tests in Path(".").glob("*/mappings/*/tests"):
        shutil.rmtree(tests)
    assert not load_project("head").tests and not load_project("base").tests
    result = diff("base", "head", "--from-tests")
    assert result.exit_code == 2, result.output
    assert "--from-tests: neither root has a test case to compare" in result.stderr
    assert "no changes" not in result.stdout
