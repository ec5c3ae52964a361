"""`mesbridge check` on a poll source's schedule and cursor: a mistake the poller would only meet
while running is an error at its YAML line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.test_check import check, make_root

POLL = """\
pipelines:
  - name: demo.workorders
    source:
      kind: poll
      connector: erp
      path: /orders
      query: {since: "{{ cursor }}"}
      schedule: {every: 60}
      cursor: {field: changed, initial: "2000-01-01T00:00:00Z"}
      key: id
      overlap: 60
    steps: []
"""
M = "mappings/demo/operation.yaml"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        pytest.param(
            "{every: 60}", '{cron: "61 * * * *"}', f"{M}:8:24", "'61 * * * *': out of range", id="cron-range"
        ),
        pytest.param(
            "{every: 60}", '{cron: "0 0 30 2 *"}', f"{M}:8:24", "never runs: no such date", id="cron-no-date"
        ),
        pytest.param(
            "{every: 60}",
            '{every: 60, cron: "*/5 * * * *"}',
            f"{M}:8:17",
            "give `every` or `cron`, not both",
            id="every-and-cron",
        ),
        pytest.param(
            "      path: /orders\n",
            "      method: GETT\n      path: /orders\n",
            f"{M}:6:15",
            "got 'GETT'",
            id="method",
        ),
        # a negative overlap would move the cursor forward, past records never read
        pytest.param(
            "overlap: 60", "overlap: -60", f"{M}:11:16", "must be at least 0", id="overlap-negative"
        ),
        pytest.param(
            "overlap: 60", "overlap: 2m", f"{M}:11:16", "expected a number, got '2m'", id="overlap-text"
        ),
    ],
)
def test_a_poll_source_the_poller_cannot_follow_is_an_error(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    code, output = check(make_root(tmp_path, POLL.replace(old, new, 1)))
    assert code == 1, output
    assert "Traceback" not in output
    assert f"{where}: error: " in output and message in output, output


def test_an_unknown_operation_is_located_at_operation(tmp_path: Path) -> None:
    mapping = POLL.replace("      path: /orders\n", "      operation: rcp\n")
    code, output = check(make_root(tmp_path, mapping))
    assert code == 1, output
    assert f"{M}:6:18: error: connector 'erp' has no operation 'rcp'" in output, output


def test_a_source_without_cursor_that_reads_cursor_is_an_error(tmp_path: Path) -> None:
    """No `cursor:` means none is ever stored: the query would send `since=None` each round."""
    mapping = POLL.replace('      cursor: {field: changed, initial: "2000-01-01T00:00:00Z"}\n', "")
    code, output = check(make_root(tmp_path, mapping))
    assert code == 1, output
    assert f"{M}:7:22: error: the source has no `cursor:`, so `cursor` is always null here" in output, output


def test_a_valid_poll_source_passes(tmp_path: Path) -> None:
    code, output = check(make_root(tmp_path, POLL.replace("{every: 60}", '{cron: "*/5 * * * *"}')))
    assert code == 0, output
