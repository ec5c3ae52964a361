"""`switch:` runs the steps of the case its value names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.errors import PipelineError
from engine.expressions import SelectionField

if TYPE_CHECKING:
    from . import Step  # the union of every step type, bound when the package loads

from ._base import STEPS, Checker, Chooser, Loc, Scope, StepModel


def case_key(value: Any) -> str | None:
    """The case a value selects: booleans as `true`/`false`, null selects none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


@STEPS.register(name="switch")
class SwitchStep(StepModel):
    """Branches on a value."""

    switch: SelectionField
    cases: dict[str, list[Step]]
    default: list[Step] | None = None

    def choose(self, scope: Scope) -> Chooser:
        search, source = self.switch.search, self.switch.source
        index = {case: number for number, case in enumerate(self.cases)}
        default = len(self.cases) if self.default is not None else None
        known = ", ".join(self.cases)

        def switch(context: dict[str, Any]) -> tuple[Any, int | None]:
            value = search(context)
            case = value if type(value) is str else case_key(value)
            branch = index.get(case) if case is not None else None
            if branch is None:
                branch = default
            if branch is None:
                raise PipelineError(f"no case for {source} = {value!r} (cases: {known})", 422)
            return value, branch

        return switch

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        for where, steps in self.branches():
            checker.steps(loc + where, steps, scope)

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        for case, steps in self.cases.items():
            yield ("cases", case), steps
        if self.default is not None:
            yield ("default",), self.default
