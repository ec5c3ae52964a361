"""`mesbridge check` finds at load time every template error Jinja can see before running, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.test_check import MAPPING, check, make_root

M = "mappings/demo/operation.yaml"


@pytest.mark.parametrize(
    ("old", "new", "where", "message", "hint"),
    [
        pytest.param(
            "lookup(vars.centres)",
            "lookup(vars.centers)",
            f"{M}:15:19",
            "'vars.centers' is not defined in binding 'demo'",
            "did you mean 'centres'?",
            id="undefined-var",
        ),
        pytest.param(
            "lookup(vars.centres)",
            "lookup(vars['centers'])",
            f"{M}:15:19",
            "'vars.centers' is not defined in binding 'demo'",
            "did you mean 'centres'?",
            id="undefined-var-subscript",
        ),
        pytest.param(
            '"{{ qty }}"',
            '"{% if qty %}{{ qty | to_ints }}{% endif %}"',
            f"{M}:14:18",
            "unknown filter 'to_ints' — did you mean 'to_int'?",
            None,
            id="unknown-filter-in-a-branch",
        ),
        pytest.param(
            '"{{ qty }}"',
            '"{{ qty is numbr }}"',
            f"{M}:14:18",
            "unknown test 'numbr'",
            None,
            id="unknown-test",
        ),
        pytest.param(
            '"{{ qty }}"', "\"{% include 'x.j2' %}\"", f"{M}:14:18", "cannot include", None, id="include"
        ),
        pytest.param(
            '"{{ qty }}"',
            "|\n            {{ qty\n            | to_int }",
            f"{M}:14:18",
            "(line 2 of the template)",
            None,
            id="block-scalar",
        ),  # fmt: skip
    ],
)
def test_template_errors_are_located_at_load(
    tmp_path: Path, old: str, new: str, where: str, message: str, hint: str | None
) -> None:
    assert old in MAPPING
    code, output = check(make_root(tmp_path, MAPPING.replace(old, new, 1)))
    assert code == 1, output
    header = next(line for line in output.splitlines() if "error:" in line)
    assert header.startswith(where) and message in header, output
    if hint is not None:
        assert f"hint: {hint}" in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "template",
    [
        '"{{ event.validQty * 2 -}}"',
        '"{{- event.validQty * 2 }}"',
        '"{# a note #}{{ event.validQty is number }}"',
        '"{{ vars.centres | length if vars.centres else 0 }}"',
        "\"{% set vars = {'other': 1} %}{{ vars.other }}\"",
    ],
)
def test_templates_jinja_accepts_load(tmp_path: Path, template: str) -> None:
    code, output = check(make_root(tmp_path, MAPPING.replace('"{{ event.validQty }}"', template, 1)))
    assert code == 0, output
