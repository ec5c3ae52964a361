"""A secret a template reads never reaches `mesbridge test` or `dry-run` output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.config.test_check import MAPPING, make_root

SECRET = "pw-0f1e2d3c4b"


def test_a_failing_case_shows_the_secret_a_body_read_as_stars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_PASSWORD", SECRET)
    mapping = MAPPING.replace('QUANT: "{{ qty }}"', 'QUANT: "{{ qty }}"\n          PW: "${ERP_PASSWORD}"')
    mapping = mapping.replace('CENTRE: "01"}', 'CENTRE: "01", PW: not-it}')
    result = CliRunner().invoke(main, ["test", str(make_root(tmp_path, mapping))])
    assert result.exit_code == 1, result.output
    assert "PW" in result.output and "***" in result.output
    assert SECRET not in result.output


def test_dry_run_masks_a_secret_file_a_body_read(tmp_path: Path) -> None:
    secret = tmp_path / "erp_password"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    mapping = MAPPING.replace(
        'QUANT: "{{ qty }}"', f'QUANT: "{{{{ qty }}}}"\n          PW: "${{file:{secret}}}"'
    )
    root = make_root(tmp_path / "root", mapping)
    event = tmp_path / "event.json"
    event.write_text('{"type": "add", "validQty": 2, "workCenterCode": "WC-1"}', encoding="utf-8")
    result = CliRunner().invoke(
        main, ["dry-run", "--root", str(root), "demo.operation", "--event", str(event)]
    )
    assert "path: /reports" in result.output, result.output  # sent, unanswered: the reply fails
    assert "PW: '***'" in result.output and SECRET not in result.output
