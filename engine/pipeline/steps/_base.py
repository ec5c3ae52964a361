"""What every step type is built on: the fields all steps share, what a step runs against, and what
it checks against.

A step type is one module: its model (the YAML it accepts), what it does to an event (`compile`, or
`choose` for a step that runs one of its branches; built once per executor, see
`engine.pipeline.program`) and `check` (what `mesbridge check` verifies about it), registered in
`STEPS` under the key that names it (`set`, `call`, ...). The executor and the checker only ever call
these methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.errors import DeliberateFailure, PipelineError, UncertainError
from engine.expressions import Selection, SelectionField, Template, TemplateField
from engine.registry import Registry

__all__ = [
    "NAME_PATTERN",
    "RESERVED_NAMES",
    "STEPS",
    "Checker",
    "Choice",
    "ErrorHandler",
    "Run",
    "Scope",
    "StepModel",
    "Work",
    "error_context",
    "truthy",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_NAMES = frozenset({"event", "vars", "error", "loop", "args", "now", "lookup", "cursor"})

Loc = tuple[Any, ...]


def error_context(error: PipelineError) -> dict[str, Any]:
    """What templates see of a failure as `error`."""
    return {
        "message": error.message,
        "status": error.status,
        "kind": error.kind,
        "connector": getattr(error, "connector", None),
        "http_status": getattr(error, "http_status", None),
        "body": getattr(error, "body", None),
    }


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, empty string/list/object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


class Run(Protocol):
    """What a step's work runs against: the event's context, and what the delivery asks of it."""

    context: dict[str, Any]
    event_id: str
    """The event's id; with a step's position it makes the step's idempotency key."""
    verify_first: bool
    """True when writes that have a `verify` look before they send (a replayed uncertain event)."""
    refuse_unprotected: bool
    """True when an earlier run may have stopped mid-way: a write nothing protects is not sent."""

    ends: float | None
    """When the run's deadline passes (`time.monotonic()`); None without one."""

    def remaining(self) -> float | None:
        """Seconds left of the run's deadline; None without one."""

    applied: list[str]
    """The writes not safe to repeat that the run applied so far (`METHOD path`)."""

    on_write: Callable[[float], Awaitable[None]] | None
    """Awaited with a budget in seconds before a write that must not overlap a second delivery of the
    event for that long (the queue keeps the event's lease at least that long); None when no queue."""


Work = Callable[[Run], Awaitable[Any]]
"""A step's work on one run, as `StepModel.compile` builds it: the step's result."""


class Choice(NamedTuple):
    """Which branch a step runs, as `StepModel.choose` describes it once per executor; the step list
    writes the decision inline (`engine.pipeline.program`).

    The step decides on `select.search(context)`, the value; its key is `key(value)`, or the value itself
    when it is a `str` and `text_keys`. The branch is `branches[key]` (an index in
    `StepModel.branches()`), else `default`; with neither, `unmatched(value)` is raised, or, when it is
    None, no branch runs. The step's result is the value, or its key when `result_is_key`."""

    select: Selection
    key: Callable[[Any], Any]
    branches: Mapping[Any, int]
    default: int | None = None
    unmatched: Callable[[Any], PipelineError] | None = None
    text_keys: bool = False
    result_is_key: bool = False


class Scope(Protocol):
    """What a step compiles against, once per executor: the step tree's connectors, name and
    positions, and nested step lists."""

    name: str
    connectors: Mapping[str, Any]
    ids: dict[int, str]
    """Each step's position in the tree (`steps[0].cases.add[2]`), by `id(step)`."""
    steps: list[Any]
    """Every step of the tree, in order."""

    def compile(self, steps: list[Any]) -> Callable[[Run], Awaitable[None]]:
        """Compile a nested list of steps (a branch, a loop body): it runs them on a run."""


class Checker(Protocol):
    """What a step checks against: names in scope, connectors and operations, nested steps."""

    def names(self, loc: Loc, template: Template | None, scope: set[str]) -> None:
        """Report every name `template` reads that is not in `scope`."""

    def call_target(self, loc: Loc, target: str, *, has_path: bool) -> Any:
        """Report an unknown connector or operation; returns the operation config or None."""

    def steps(self, loc: Loc, steps: list[Any], scope: set[str]) -> None:
        """Check a nested list of steps; names they set join `scope`."""


class ErrorHandler(BaseModel):
    """What a step does with one kind of failure: a value instead, a skip, or a failure of its own."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    if_: SelectionField = Field(
        alias="if",
        description="JMESPath over the context and `error` (message, status, kind, connector, "
        'http_status, body), e.g. "error.http_status == `404`" or "contains(error.message, \'anulat\')"',
    )
    value: TemplateField | None = Field(None, description="The step's result instead of the failure")
    skip: bool = Field(False, description="Carry on as if the step had not run (its result is null)")
    fail: TemplateField | None = Field(None, description="Fail with this message instead")
    status: int = Field(422, ge=400, le=599, description="The status of `fail`")

    @model_validator(mode="after")
    def _one_outcome(self) -> ErrorHandler:
        chosen = [name for name in ("value", "fail") if getattr(self, name) is not None] + (
            ["skip"] if self.skip else []
        )
        if len(chosen) != 1:
            raise ValueError("an error handler says exactly one of: value, skip, fail")
        return self


class StepModel(BaseModel):
    """Base of every step type: `name` keeps the result, `when` skips the step, `on_error` handles
    its failures."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    kind: ClassVar[str]
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Keeps the step's result")
    when: SelectionField | None = Field(None, description="JMESPath; the step is skipped when false")
    on_error: list[ErrorHandler] | None = Field(
        None,
        description="Checked in order when the step fails; the first whose `if` holds decides. An "
        "uncertain outcome (the ERP may have applied a write) is never handled here: it is reported.",
    )

    def handle(self, error: PipelineError, context: dict[str, Any]) -> Any:
        """The step's result for `error`, from the first handler whose `if` holds; else raise it."""
        if not self.on_error or isinstance(error, UncertainError):
            raise error
        scope = {**context, "error": error_context(error)}
        for handler in self.on_error:
            if truthy(handler.if_.search(scope)):
                if handler.fail is not None:
                    message = handler.fail.render(scope)
                    raise DeliberateFailure(
                        message if isinstance(message, str) else str(message), handler.status
                    )
                return handler.value.render(scope) if handler.value is not None else None
        raise error

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in RESERVED_NAMES:
            raise ValueError(f"'{value}' is a reserved name")
        return value

    def compile(self, scope: Scope) -> Work:
        """The step's work on an event, built once per executor; its result is kept under `name`.
        The step list around it does `when`, `on_error`, `name` and tracing."""
        raise NotImplementedError

    def choose(self, scope: Scope) -> Choice | None:
        """For a step that runs one of its branches: how it picks one, built once per executor (the
        step list then decides and runs the branch inline, and `compile` is not used); None for any
        other step."""
        return None

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        """Report what is wrong with the step beyond its schema (names, targets)."""

    def check_handlers(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        """The names the `on_error` templates read."""
        for index, handler in enumerate(self.on_error or []):
            for field in ("value", "fail"):
                checker.names(loc + ("on_error", index, field), getattr(handler, field), scope | {"error"})

    def branches(self) -> Iterator[tuple[Loc, list[Any]]]:
        """The nested step lists, each with where it sits in the step's YAML."""
        return iter(())


STEPS: Registry[StepModel] = Registry("step")
"""Step types by the key that names them; each module of this package registers its own."""
