"""Step types: each module of this package is one step type (its model, `run` and `check`),
registered in `STEPS` under the key that names it. `Step`, the union every step list uses, is built
from the registry: a step is recognised by its key, and a misspelt key picks the closest type so its
error reads well."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Discriminator, Tag

from engine.registry import Registry
from engine.suggest import closest

from ._base import STEPS, Checker, Run, StepModel, truthy

Registry.load(__name__)


def step_kind(value: Any) -> str | None:
    """The step type of a YAML mapping (by its key) or of a built step."""
    if isinstance(value, BaseModel):
        kind = getattr(type(value), "kind", None)
        return kind if kind in STEPS else None
    if not isinstance(value, dict):
        return None
    for kind in STEPS:
        if kind in value:
            return kind
    for key in value:
        close = closest(key, STEPS)
        if close:
            return close
    return None


def _union() -> Any:
    members = tuple(Annotated[STEPS.model(kind), Tag(kind)] for kind in STEPS)
    keys = ", ".join(STEPS.kinds)
    return Annotated[
        typing.Union[members],  # noqa: UP007
        Discriminator(
            step_kind,
            custom_error_type="unknown_step",
            custom_error_message=f"a step needs one of the keys: {keys}",
        ),
    ]


if TYPE_CHECKING:
    Step = StepModel
else:
    Step = _union()
    for _kind in STEPS:
        STEPS.model(_kind).model_rebuild(_types_namespace={"Step": Step})

__all__ = ["STEPS", "Checker", "Run", "Step", "StepModel", "step_kind", "truthy"]
