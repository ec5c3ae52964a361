"""`mesbridge demo` end to end, once per binding, in a subprocess as a newcomer would run it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MESBRIDGE = Path(sys.executable).parent / "mesbridge"


def mesbridge(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`mesbridge ARGS` run in `folder`, as a newcomer types it."""
    return subprocess.run(
        [str(MESBRIDGE), *args], cwd=folder, capture_output=True, text=True, encoding="utf-8", timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.parametrize("binding", ["priority", "nextup", "nextx"])
def test_demo_plays_a_shift_and_summarises_it(binding: str, tmp_path: Path) -> None:
    done = mesbridge(tmp_path, "demo", "--binding", binding, "--size", "6", timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert f"mesbridge demo binding {binding}" in done.stdout
    polled = re.search(
        r"work orders: (\d+) polled from \w+ into Next Plus; second poll delivered (\d+) new", done.stdout
    )
    assert polled and int(polled.group(1)) > 0 and polled.group(2) == "0", done.stdout
    assert "Integration Builder events" in done.stdout
    assert f"{binding} records written" in done.stdout
    summary = re.search(
        rf"demo {binding}: (\d+) events, (\d+) ok, (\d+) failed; (\d+) {binding} writes", done.stdout
    )
    assert summary, done.stdout
    events, ok, failed, writes = map(int, summary.groups())
    assert events == ok + failed and ok > 0 and writes > 0
    # the one deliberate over-report is refused by the ERP, and its own words reach the operator
    assert failed == 1, done.stdout
    assert "failures, as the operator saw them" in done.stdout
    seconds = float(re.search(r"writes; ([\d.]+) s", done.stdout).group(1))  # type: ignore[union-attr]
    assert seconds < 30
    # its traces are where `mesbridge traces` looks, in the folder it ran in
    assert "traces kept in sqlite:///mesbridge.db" in done.stdout
    listed = mesbridge(tmp_path, "traces", "list", "--outcome", "failed", "--json", timeout=30)
    assert listed.returncode == 0, listed.stderr
    [refused] = json.loads(listed.stdout)
    assert refused["pipeline"] == f"{binding}.operation" and refused["status"] >= 400
    # every trace, exported as tests into a copy of the root, passes (the times its runs read with
    # now() included), recorded at the root's own config version (the demo serves one binding of it,
    # which does not make the version another)
    every = mesbridge(tmp_path, "traces", "list", "--json", "--limit", "1000", timeout=30)
    ids = [trace["id"] for trace in json.loads(every.stdout)]
    assert refused["id"] in ids and len(ids) > 10
    copy = tmp_path / "root"
    for part in ("connectors", "mappings", "schemas"):
        shutil.copytree(ROOT / part, copy / part)
    shutil.copy(ROOT / "mesbridge.yaml", copy)
    recorded = copy / "mappings" / binding / "tests" / "recorded.yaml"
    exported = mesbridge(
        tmp_path, "traces", "export", *ids, "--as-test", str(recorded), "--root", "root", timeout=60
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert f"{len(ids)} of {len(ids)} exported case(s) pass" in exported.stdout, exported.stdout
    assert "config version" not in exported.stderr, exported.stderr


def test_demo_refuses_an_unknown_binding() -> None:
    done = subprocess.run(
        [str(MESBRIDGE), "demo", "--binding", "sap"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "priority" in done.stderr and "Traceback" not in done.stderr
