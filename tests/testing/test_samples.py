"""The events `mesbridge diff` replays: what `mesbridge traces export --as-test` writes loads as cases."""

from __future__ import annotations

from pathlib import Path

from engine.testing.samples import samples_from_cases
from engine.traces.export import as_case, dump_cases
from tests.traces.test_export import _trace


def test_exported_traces_are_cases_to_replay(tmp_path: Path) -> None:
    trace = _trace()
    exported = tmp_path / "traced.yaml"
    exported.write_text(dump_cases([as_case(trace).case], "Recorded from production."), encoding="utf-8")
    samples, problems = samples_from_cases(exported, {"erp.report"})
    assert problems == []
    [sample] = samples
    assert (sample.pipeline, sample.origin, sample.event) == ("erp.report", "cases", trace["event"])
    assert [(r.method, r.path, r.status) for r in sample.responses] == [
        ("POST", "/reports", 503),
        ("POST", "/reports", 201),
    ]
    assert sample.line == 3 and not sample.poll


def test_an_exported_cautious_delivery_is_replayed_as_cautiously(tmp_path: Path) -> None:
    exported = tmp_path / "traced.yaml"
    case = as_case(_trace(verify_first=True, refuse_unprotected=True)).case
    exported.write_text(dump_cases([case], "Recorded from production."), encoding="utf-8")
    [sample], problems = samples_from_cases(exported, {"erp.report"})
    assert problems == [] and sample.verify_first and sample.refuse_unprotected
    plain = tmp_path / "plain.yaml"
    plain.write_text(dump_cases([as_case(_trace()).case], "Recorded."), encoding="utf-8")
    [sample], _ = samples_from_cases(plain, {"erp.report"})
    assert not sample.verify_first and not sample.refuse_unprotected
