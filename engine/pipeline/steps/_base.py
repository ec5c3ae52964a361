"""What every step type is built on: the fields all steps share, what a step runs against, and what
it checks against.

A step type is one module: its model (the YAML it accepts), `run` (what it does to an event) and
`check` (what `mesbridge check` verifies about it), registered in `STEPS` under the key that names it
(`set`, `call`, ...). The executor and the checker only ever call these methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.expressions import SelectionField, Template
from engine.registry import Registry

__all__ = ["NAME_PATTERN", "RESERVED_NAMES", "STEPS", "Checker", "Run", "StepModel", "truthy"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_NAMES = frozenset({"event", "vars", "error", "loop", "args", "now", "lookup", "cursor"})

Loc = tuple[Any, ...]


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, empty string/list/object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


class Run(Protocol):
    """What a step runs against: the event's context, the connectors, and nested steps."""

    context: dict[str, Any]
    connectors: Mapping[str, Any]

    async def steps(self, steps: list[Any]) -> None:
        """Run a list of steps in this context (a branch, a loop body)."""

    def call_options(self, step: Any) -> dict[str, Any]:
        """What the run adds to a connector call: the remaining deadline, the idempotency key."""

    @property
    def verify_first(self) -> bool:
        """True when writes that have a `verify` look before they send (a replayed uncertain event)."""

    @property
    def refuse_unprotected(self) -> bool:
        """True when an earlier run may have stopped mid-way: a write nothing protects is not sent."""

    async def before_write(self, budget: float) -> None:
        """About to send a write that must not overlap a second delivery of the event for `budget`
        seconds (the queue keeps the event's lease at least that long)."""


class Checker(Protocol):
    """What a step checks against: names in scope, connectors and operations, nested steps."""

    def names(self, loc: Loc, template: Template | None, scope: set[str]) -> None:
        """Report every name `template` reads that is not in `scope`."""

    def call_target(self, loc: Loc, target: str, *, has_path: bool) -> Any:
        """Report an unknown connector or operation; returns the operation config or None."""

    def steps(self, loc: Loc, steps: list[Any], scope: set[str]) -> None:
        """Check a nested list of steps; names they set join `scope`."""


class StepModel(BaseModel):
    """Base of every step type: `name` keeps the result, `when` skips the step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    kind: ClassVar[str]
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Keeps the step's result")
    when: SelectionField | None = Field(None, description="JMESPath; the step is skipped when false")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in RESERVED_NAMES:
            raise ValueError(f"'{value}' is a reserved name")
        return value

    async def run(self, run: Run) -> Any:
        """Do the step's work on the event; the result is kept under `name`."""
        raise NotImplementedError

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        """Report what is wrong with the step beyond its schema (names, targets)."""

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        """The nested step lists, each with where it sits in the step's YAML."""
        return iter(())


STEPS: Registry[StepModel] = Registry("step")
"""Step types by the key that names them; each module of this package registers its own."""
