"""The library surface is what docs/api.md says it is, and every exported name resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import engine

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented() -> list[str]:
    table = DOC.read_text(encoding="utf-8").split("## Exported names", 1)[1]
    return [match.group(1) for match in re.finditer(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", table, re.M)]


def test_the_exported_names_are_the_documented_ones() -> None:
    assert sorted(documented()) == sorted(engine.__all__)


def test_every_exported_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_errors_are_exported_from_the_one_module_that_defines_them() -> None:
    from engine import errors

    for name in engine.__all__:
        value = getattr(engine, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert value.__module__ == errors.__name__, f"{name} is defined in {value.__module__}"


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = "import sys, engine; print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'aiohttp', 'jinja2'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
