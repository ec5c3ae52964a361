"""`set:` computes named values from templates."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import field_validator

from engine.expressions import TemplateField

from ._base import RESERVED_NAMES, STEPS, Checker, Loc, Run, Scope, StepModel, Work


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

    def compile(self, scope: Scope) -> Work:
        values = tuple(self.set.items())

        async def set_values(run: Run) -> Any:
            context = run.context
            for key, template in values:
                context[key] = template.render(context)
            return {key: context[key] for key, _ in values}

        return set_values

    def check(self, checker: Checker, loc: Loc, scope: builtins.set[str]) -> None:
        for key, template in self.set.items():
            checker.names(loc + ("set", key), template, scope)
            scope.add(key)
