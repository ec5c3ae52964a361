"""`fail:` stops the pipeline with a message of the mapping's own."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine.errors import DeliberateFailure
from engine.expressions import TemplateField

from ._base import STEPS, Checker, Loc, Run, StepModel


def as_text(value: Any) -> str:
    """A rendered value as message text (None is empty)."""
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


@STEPS.register(name="fail")
class FailStep(StepModel):
    """Stops the pipeline with a message."""

    fail: TemplateField
    status: int = Field(422, ge=400, le=599)

    async def run(self, run: Run) -> Any:
        raise DeliberateFailure(as_text(self.fail.render(run.context)), self.status)

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        checker.names(loc + ("fail",), self.fail, scope)
