"""`mesbridge traces list` and `traces export` as a user drives them, in a folder holding the store the
service (or `mesbridge demo`) left: whatever is typed, a one-line error and a clear exit status, never a
traceback; a file it cannot use is left as it was; and what it says it wrote is what it wrote."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.commands import traces as traces_module
from engine.config.yamlsource import load_yaml
from engine.store import open_store
from engine.traces.document import stored

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config root (connectors/, mappings/) the tests run in; the store is its mesbridge.db."""
    for name in ("MESBRIDGE_STORE", "MESBRIDGE_BINDINGS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "mappings").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def trace(
    id: str, *, event_id: str = "ev-1", attempt: int | None = None, pipeline: str = "priority.operation"
) -> dict[str, Any]:
    """A trace document as the service records one: an event, one ERP call and the reply."""
    failed = attempt == 1
    document: dict[str, Any] = {
        "id": id,
        "pipeline": pipeline,
        "binding": "priority",
        "version": "v1",
        "source": "webhook" if attempt is None else "queue",
        "event_id": event_id,
        "received": datetime.now(UTC).isoformat(),
        "duration": 0.01,
        "outcome": "failed" if failed else "ok",
        "status": 503 if failed else 200,
        "reply": {"ok": not failed},
        "error": None,
        "event": {"workorderNumber": "WO-1", "validQty": 4},
        "steps": [],
        "calls": [
            {
                "step": "steps[0]",
                "connector": "priority",
                "method": "POST",
                "path": "/ALINE_ONE",
                "query": None,
                "request": {"QUANT": 4},
                "status": 503 if failed else 200,
                "reply": {"ok": not failed},
                "latency": 0.005,
                "attempt": 1,
            }
        ],
    }
    if attempt is not None:
        document["attempt"] = attempt
    return document


def put(*documents: dict[str, Any]) -> None:
    """Keep the traces in the folder's store, mesbridge.db, where the service would."""

    async def go() -> None:
        store = open_store("sqlite:///mesbridge.db")
        try:
            await store.migrate()
            await store.add_traces([stored(document) for document in documents])
        finally:
            await store.close()

    asyncio.run(go())


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


# --- traces list --since / --until ------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize(
    "value",
    [
        "99999999d",
        "9" * 400 + "d",  # inf days
        "999999999999s",  # 31 700 years
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after 9999 in UTC
    ],
)
def test_a_time_out_of_range_is_a_usage_error(folder: Path, option: str, value: str) -> None:
    put(trace("t1"))
    result = run("traces", "list", f"{option}={value}")
    no_traceback(result)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr and "out of range" in result.stderr


def test_the_ends_of_the_calendar_in_utc_are_times(folder: Path) -> None:
    put(trace("t1"))
    result = run("traces", "list", "--since=0001-01-01T00:00:00Z", "--until=9999-12-31T23:59:59Z", "--json")
    assert result.exit_code == 0, result.output
    assert '"id": "t1"' in result.stdout


_SPANS = st.from_regex(r"\A[0-9]{1,40}(\.[0-9]{1,8})?\s{0,2}[smhd]\Z")
_ISO = st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
_OFFSETS = st.builds(
    lambda day, hours: f"{day}T00:00:00{hours:+03d}:00",
    st.sampled_from(["0001-01-01", "0001-01-02", "9999-12-31", "9999-12-30", "2025-06-01"]),
    st.integers(-23, 23),
)


def test_any_time_given_lists_or_is_a_usage_error(folder: Path) -> None:
    put(trace("t1"))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(option=st.sampled_from(["--since", "--until"]), value=st.one_of(st.text(), _SPANS, _ISO, _OFFSETS))
    def check(option: str, value: str) -> None:
        result = run("traces", "list", f"{option}={value}")
        no_traceback(result)
        assert result.exit_code in (0, 2), result.output

    check()


def test_a_relative_date_a_day_back_still_lists(folder: Path) -> None:
    put(trace("t1"))
    result = run("traces", "list", "--since", "1d", "--until", (datetime.now(UTC) + timedelta(1)).isoformat())
    assert result.exit_code == 0, result.output
    assert "t1" in result.stdout


# --- traces export --as-test: where it writes -------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_a_folder_that_cannot_be_made_is_a_one_line_error(folder: Path) -> None:
    put(trace("t1"))
    result = run("traces", "export", "t1", "--as-test", "/proc/x/y.yaml")
    no_traceback(result)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: cannot write /proc/x/y.yaml: No such file or directory (/proc/x)"
    ]


def test_a_file_on_the_way_to_the_target_is_a_usage_error(folder: Path) -> None:
    put(trace("t1"))
    Path("afile").write_text("not a folder", encoding="utf-8")
    for target in ("afile/x.yaml", "afile/deeper/x.yaml"):
        result = run("traces", "export", "t1", "--as-test", target)
        no_traceback(result)
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--as-test': afile is a file, not a folder" in result.stderr
    assert Path("afile").read_text(encoding="utf-8") == "not a folder"


def test_a_failed_write_leaves_the_file_and_its_folder_as_they_were(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(trace("t1"))
    Path("cases.yaml").write_text("tests: []\n", encoding="utf-8")

    def full(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    before = sorted(p.as_posix() for p in Path(".").rglob("*"))
    for target in ("cases.yaml", "new/deeper/cases.yaml"):
        result = run("traces", "export", "t1", "--as-test", target)
        no_traceback(result)
        assert result.exit_code == 1, result.output
        assert f"cannot write {target}: No space left on device" in result.stderr
    assert Path("cases.yaml").read_text(encoding="utf-8") == "tests: []\n"
    assert sorted(p.as_posix() for p in Path(".").rglob("*")) == before  # no part-file, no folder


# --- traces export --as-test: an existing file ------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("tests: {a: 1}\n", "x.yaml:1:8: error: `tests:` is a mapping, not a list", id="map"),
        pytest.param("tests: [1, 2]\n", "x.yaml:1:9: error: test case 1 is the value 1", id="scalars"),
        pytest.param("tests: nope\n", "x.yaml:1:8: error: `tests:` is a string", id="string"),
        pytest.param("tests:\n  - name: a\n  - [b]\n", "x.yaml:3:5: error: test case 2 is a list", id="item"),
        pytest.param("- 1\n- 2\n", "x.yaml:1:1: error: expected a mapping with a `tests:` list", id="list"),
        pytest.param("just text\n", "x.yaml:1:1: error: expected a mapping", id="scalar"),
        pytest.param(
            "pipelines: []\ntests: []\n",
            "x.yaml:1:1: error: the file holds more than test cases (`pipelines:`)",
            id="more",
        ),
        pytest.param("tests: [\n", "x.yaml:2:1: error: invalid YAML: expected the node content", id="syntax"),
        pytest.param("a: 1\na: 2\n", "x.yaml:2:1: error: duplicate key 'a'", id="duplicate"),
        pytest.param(b"tests: \xff\n", "x.yaml:1:8: error: the file is not valid UTF-8", id="bytes"),
    ],
)
def test_an_existing_file_that_is_not_test_cases_is_refused_and_left_alone(
    folder: Path, content: str | bytes, message: str
) -> None:
    put(trace("t1"))
    target = Path("cases/x.yaml")
    target.parent.mkdir()
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    target.write_bytes(raw)
    result = run("traces", "export", "t1", "--as-test", "cases/x.yaml")
    no_traceback(result)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("mesbridge traces export: cases/x.yaml was left as it is:\n")
    assert f"cases/{message}" in result.stderr, result.stderr
    assert target.read_bytes() == raw
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.yaml"]


def test_cases_are_added_to_an_existing_file_of_cases(folder: Path) -> None:
    put(trace("t1"))
    kept = "tests:\n  - name: kept\n    pipeline: p\n    code: 010\n    flag: on\n"
    Path("x.yaml").write_text(kept, encoding="utf-8")
    result = run("traces", "export", "t1", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "wrote 1 case(s) to x.yaml" in result.stdout
    cases = load_yaml(Path("x.yaml")).data["tests"]
    # kept as `mesbridge test` reads it (YAML 1.1 would have made them 8 and true)
    assert cases[0] == {"name": "kept", "pipeline": "p", "code": "010", "flag": "on"}
    assert [case["pipeline"] for case in cases] == ["p", "priority.operation"]


def test_exporting_into_a_kept_file_changes_only_its_cases(folder: Path) -> None:
    """An integrator's file of cases, commented by hand: exporting a trace again replaces its case and
    adds the new one after the last; every comment, and every case not exported, stays as written."""
    put(trace("t1"), trace("t2", event_id="ev-2"))
    kept = (
        "# Over-reports Priority refused on line 3, kept as regression tests.\n"
        "tests:\n"
        "  # the first one we saw: code 010 must stay text\n"
        "  - name: kept\n"
        "    pipeline: p\n"
        "    code: 010   # as the MES sends it\n"
        "  # recorded before the fix\n"
        "  - name: priority.operation ev-1\n"
        "    pipeline: priority.operation\n"
        "# add new ones above\n"
    )
    Path("x.yaml").write_text(kept, encoding="utf-8")
    result = run("traces", "export", "t1", "t2", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "written whole" not in result.stderr
    text = Path("x.yaml").read_text(encoding="utf-8")
    assert text.startswith(kept.split("  - name: priority.operation ev-1")[0])  # header, comments, kept
    assert text.endswith("# add new ones above\n")
    cases = load_yaml(Path("x.yaml")).data["tests"]
    assert [case["name"] for case in cases] == ["kept", "priority.operation ev-1", "priority.operation ev-2"]
    assert cases[0]["code"] == "010" and "expect" in cases[1] and "expect" in cases[2]


def test_a_kept_file_written_in_flow_style_is_written_whole_and_says_so(folder: Path) -> None:
    put(trace("t1"))
    Path("x.yaml").write_text("# mine\ntests: [{name: kept, pipeline: p}]\n", encoding="utf-8")
    result = run("traces", "export", "t1", "--as-test", "x.yaml")
    assert result.exit_code == 0, result.output
    assert "note: x.yaml was written whole, so its comments and layout were not kept" in result.stderr
    cases = load_yaml(Path("x.yaml")).data["tests"]
    assert [case["name"] for case in cases] == ["kept", "priority.operation ev-1"]


# --- traces export: the cases tried against the root ------------------------------------------------


def test_cases_exported_where_no_config_root_is_are_written_and_not_tried(folder: Path) -> None:
    put(trace("t1"))
    shutil.rmtree("mappings")
    shutil.rmtree("connectors")  # the folder `mesbridge demo` leaves: a store, no config root
    result = run("traces", "export", "t1", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output  # the export did what it was asked
    assert "wrote 1 case(s) to x.yaml" in result.stdout
    assert ". is not a config root, so the cases were not tried: give the root as --root" in result.stderr


def test_cases_that_cannot_be_tried_for_config_errors_exit_1(folder: Path) -> None:
    put(trace("t1"))
    Path("connectors/broken.yaml").write_text("name: [broken\n")
    result = run("traces", "export", "t1", "--as-test", "mappings/priority/tests/x.yaml")
    no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "wrote 1 case(s) to mappings/priority/tests/x.yaml" in result.stdout
    assert ". has config errors, so the cases were not tried:" in result.stderr
    assert "connectors/broken.yaml" in result.stderr and "`mesbridge check .`" in result.stderr


def test_config_errors_the_written_file_brings_are_named(folder: Path) -> None:
    for part in ("mappings", "connectors", "schemas", "mesbridge.yaml"):
        shutil.rmtree(part, ignore_errors=True)
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, part)
        else:
            shutil.copy2(REPO / part, part)
    put(trace("t1", pipeline="priority.nowhere"))
    target = "mappings/priority/tests/recorded.yaml"
    result = run("traces", "export", "t1", "--as-test", target)
    no_traceback(result)
    assert result.exit_code == 1, result.output
    assert f"wrote 1 case(s) to {target}" in result.stdout
    assert f"  {target}:" in result.stderr and "priority.nowhere" in result.stderr
    assert f"1 of them in {target}, the file just written" in result.stderr


# --- traces export: what it says it wrote -----------------------------------------------------------


def test_traces_of_one_case_name_count_once_and_warn(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(trace("t1", event_id="a"), trace("t2", event_id="b"), trace("t3", event_id="c"))
    real = traces_module.as_case

    def one_name(document: dict[str, Any], name: str | None = None) -> Any:
        exported = real(document, name)
        if document["event_id"] in ("a", "b"):
            exported.case["name"] = "same"
        return exported

    monkeypatch.setattr(traces_module, "as_case", one_name)
    result = run("traces", "export", "t1", "t2", "t3", "t1", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "wrote 2 case(s) to x.yaml" in result.stdout
    assert "traces t1 and t2 make one case, 'same': x.yaml keeps only the last, t2" in result.stderr
    assert len(load_yaml(Path("x.yaml")).data["tests"]) == 2


def test_the_attempts_of_a_retried_delivery_report_the_cases_written(folder: Path) -> None:
    put(trace("first", event_id="q-1", attempt=1), trace("second", event_id="q-1", attempt=2))
    result = run("traces", "export", "first", "second", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    names = [case["name"] for case in load_yaml(Path("x.yaml")).data["tests"]]
    assert f"wrote {len(names)} case(s) to x.yaml" in result.stdout
    assert ("keeps only the last" in result.stderr) == (len(names) == 1)


def test_a_trace_given_twice_is_one_case_and_no_warning(folder: Path) -> None:
    put(trace("t1"))
    result = run("traces", "export", "t1", "t1", "--as-test", "x.yaml")
    assert result.exit_code == 0, result.output
    assert "wrote 1 case(s)" in result.stdout and "keeps only" not in result.stderr


@pytest.mark.parametrize(
    "kept",
    [
        "# mine\ndescription: Over-reports Priority refused\ntests: [{name: kept, pipeline: p}]\n",
        "# mine\ndescription: Over-reports Priority refused\ntests: []\n",
        "# mine\ndescription: Over-reports Priority refused\ntests:\n",
    ],
    ids=["flow", "empty", "null"],
)
def test_a_kept_file_written_whole_keeps_its_description_and_says_so(folder: Path, kept: str) -> None:
    """Its comments cannot be kept, and the command says so; its `description:` is data, and stays."""
    put(trace("t1"))
    Path("x.yaml").write_text(kept, encoding="utf-8")
    result = run("traces", "export", "t1", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "note: x.yaml was written whole, so its comments and layout were not kept" in result.stderr
    data = load_yaml(Path("x.yaml")).data
    assert data["description"] == "Over-reports Priority refused"
    assert [case["name"] for case in data["tests"]][-1] == "priority.operation ev-1"


def test_a_kept_file_with_crlf_line_breaks_keeps_them(folder: Path) -> None:
    """A file saved on Windows: its line breaks are part of its layout, and the new case's follow them."""
    put(trace("t1"))
    kept = "# mine\r\ntests:\r\n  - name: kept   # by hand\r\n    pipeline: p\r\n"
    Path("x.yaml").write_bytes(kept.encode("utf-8"))
    result = run("traces", "export", "t1", "--as-test", "x.yaml")
    no_traceback(result)
    assert result.exit_code == 0 and "written whole" not in result.stderr, result.output
    written = Path("x.yaml").read_bytes().decode("utf-8")
    assert written.startswith(kept) and "\n" not in written.replace("\r\n", ""), repr(written)
    cases = load_yaml(Path("x.yaml")).data["tests"]
    assert [case["name"] for case in cases] == ["kept", "priority.operation ev-1"]
