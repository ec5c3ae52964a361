"""The engine stays generic: no ERP is named outside the simulators."""

from __future__ import annotations

import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"
ERP_WORDS = re.compile(
    r"priority|nextup|nextx|\bSERIAL\b|ALINE|AFORM|SERNUMBERS|DOCUMENTS_Q|InterfaceErrors|"
    r"AuthenticationToken|GetAuthenticationToken|AddProductionReport",
    re.IGNORECASE,
)


def test_no_module_outside_the_sandbox_names_an_erp() -> None:
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{number}: {line.strip()}"
        for path in sorted(ENGINE.rglob("*.py"))
        if "sandbox" not in path.relative_to(ENGINE).parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if ERP_WORDS.search(line)
    ]
    assert offenders == []
