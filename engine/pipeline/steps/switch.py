"""`switch:` runs the steps of the case its value names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.errors import PipelineError
from engine.expressions import SelectionField

if TYPE_CHECKING:
    from . import Step  # the union of every step type, bound when the package loads

from ._base import STEPS, Checker, Choice, Loc, Scope, StepModel


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

    def choose(self, scope: Scope) -> Choice:
        source, known = self.switch.source, ", ".join(self.cases)

        def unmatched(value: Any) -> PipelineError:
            return PipelineError(f"no case for {source} = {value!r} (cases: {known})", 422)

        return Choice(
            self.switch,
            case_key,
            {case: number for number, case in enumerate(self.cases)},
            default=len(self.cases) if self.default is not None else None,
            unmatched=unmatched,
            text_keys=True,
        )

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        for where, steps in self.branches():
            checker.steps(loc + where, steps, scope)

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        for case, steps in self.cases.items():
            yield ("cases", case), steps
        if self.default is not None:
            yield ("default",), self.default
