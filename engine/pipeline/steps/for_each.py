"""`for_each:` runs steps once per element of a list and collects a value per element."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.errors import ExpressionError, PipelineError
from engine.expressions import SelectionField, TemplateField

if TYPE_CHECKING:
    from . import Step  # the union of every step type, bound when the package loads

from ._base import NAME_PATTERN, STEPS, Checker, Loc, Run, Scope, StepModel, Work


@STEPS.register(name="for_each")
class ForEachStep(StepModel):
    """Runs steps once per element of a list."""

    for_each: SelectionField
    as_: str = Field("item", alias="as", pattern=NAME_PATTERN)
    steps: list[Step]
    collect: TemplateField | None = Field(default=None, description="Per element; `name` keeps the list")
    limit: int = Field(1000, gt=0, description="Refuse lists longer than this")

    def compile(self, scope: Scope) -> Work:
        search, source, name, limit = self.for_each.search, self.for_each.source, self.as_, self.limit
        body = scope.compile(self.steps)
        collect = self.collect

        async def for_each(run: Run) -> Any:
            context = run.context
            items = search(context)
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ExpressionError(f"for_each {source!r} is not a list: {items!r}")
            if len(items) > limit:
                raise PipelineError(f"for_each {source!r} has {len(items)} items (limit {limit})")
            collected = []
            for index, item in enumerate(items):
                context[name] = item
                context["loop"] = {
                    "index": index + 1,
                    "index0": index,
                    "first": index == 0,
                    "last": index == len(items) - 1,
                    "length": len(items),
                }
                await body(run)
                if collect is not None:
                    collected.append(collect.render(context))
            context.pop(name, None)
            context.pop("loop", None)
            return collected

        return for_each

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        inner = scope | {self.as_, "loop"}
        checker.steps(loc + ("steps",), self.steps, inner)
        checker.names(loc + ("collect",), self.collect, inner)
        scope.update(inner - {self.as_, "loop"})

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        yield ("steps",), self.steps
