"""`fail:` stops the pipeline with a message of the mapping's own."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine.errors import DeliberateFailure
from engine.expressions import TemplateField

from ._base import STEPS, Checker, Loc, Run, Scope, StepModel, Work


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

    def compile(self, scope: Scope) -> Work:
        message, status = self.fail, self.status

        async def fail(run: Run) -> Any:
            raise DeliberateFailure(as_text(message.render(run.context)), status)

        return fail

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        checker.names(loc + ("fail",), self.fail, scope)
