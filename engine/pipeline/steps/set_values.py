"""`set:` computes named values from templates."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import field_validator

from engine.expressions import TemplateField

from ._base import RESERVED_NAMES, STEPS, Checker, Loc, Run, StepModel


@STEPS.register(name="set")
class SetStep(StepModel):
    """Computes named values."""

    set: dict[str, TemplateField]

    @field_validator("set")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in RESERVED_NAMES:
                raise ValueError(f"'{key}' is a reserved name")
        return value

    async def run(self, run: Run) -> Any:
        context = run.context
        for key, template in self.set.items():
            context[key] = template.render(context)
        return {key: context[key] for key in self.set}

    def check(self, checker: Checker, loc: Loc, scope: builtins.set[str]) -> None:
        for key, template in self.set.items():
            checker.names(loc + ("set", key), template, scope)
            scope.add(key)
