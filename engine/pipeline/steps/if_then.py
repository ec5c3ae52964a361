"""`if:` runs `then` when its condition holds, else `else`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.expressions import SelectionField

if TYPE_CHECKING:
    from . import Step  # the union of every step type, bound when the package loads

from ._base import STEPS, Checker, Choice, Loc, Scope, StepModel, truthy


@STEPS.register(name="if")
class IfStep(StepModel):
    """Runs one branch or the other."""

    if_: SelectionField = Field(alias="if")
    then: list[Step]
    else_: list[Step] | None = Field(None, alias="else")

    def choose(self, scope: Scope) -> Choice:
        branches = {True: 0, False: 1} if self.else_ is not None else {True: 0}
        return Choice(self.if_, truthy, branches, result_is_key=True)

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        for where, steps in self.branches():
            checker.steps(loc + where, steps, scope)

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        yield ("then",), self.then
        if self.else_ is not None:
            yield ("else",), self.else_
