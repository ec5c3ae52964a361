"""A located config finding: `Diagnostic`, one `file:line:col` with its message and hint."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Diagnostic", "Severity", "sort_diagnostics"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding at ``file:line:col`` (1-based; line 0 means the file as a whole).

    A finding in an environment variable rather than a file has `environment` set, and `file` names
    the variable (``environment MESBRIDGE_STORE``)."""

    file: str
    line: int
    col: int
    message: str
    severity: Severity | str = "error"
    source_line: str = ""
    hint: str | None = None
    environment: bool = False

    @property
    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, self.line, self.col)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.message}"


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """`diags` ordered by file, line and column (stable for equal positions)."""
    return sorted(diags, key=lambda d: d.sort_key)


# ------------------------------------------------------------------------------------ model walking
