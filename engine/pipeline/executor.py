"""Runs one event through one pipeline: steps, calls, the reply, or the error reply.

The executor is the same in production, in `mesbridge test` and in `dry-run`; only the connectors'
transports differ. It holds no state between events. Each step type does its own work
(`engine.pipeline.steps`), and the pipeline's step lists are compiled once, when the executor is made
(`engine.pipeline.program`); the executor keeps the event's context, the deadline and the ids that
make a call's idempotency key.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine import env, helpers
from engine.errors import (
    ConnectorError,
    MesbridgeError,
    MissingVariableError,
    PipelineError,
    UncertainError,
)
from engine.expressions import templates_in
from engine.expressions.variables import Variables
from engine.pipeline import models as m
from engine.pipeline.program import StepsRunner, compile_steps
from engine.pipeline.steps import StepModel, truthy
from engine.pipeline.steps._base import error_context
from engine.recorder import Recorder, active

__all__ = ["Executor", "Outcome", "StepScope", "new_event_id", "run_steps", "step_ids"]

SAFETY_MARGIN = 2.0
"""Seconds past the deadline after which a run that did not end is cut off (calls end by the deadline)."""


@dataclass(slots=True)
class Outcome:
    """The result of one run: the reply to send, and the error if the run failed."""

    status: int
    body: Any
    error: PipelineError | None = None
    skipped: bool = False
    duration: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    """The time the run's templates read with `now()`; None when they read none."""
    applied: list[str] = field(default_factory=list)
    """The writes not safe to repeat that the run applied (`METHOD path`), in order: a run that fails
    after one must not run again as a whole, or it applies them twice."""

    @property
    def ok(self) -> bool:
        return self.error is None


def step_ids(steps: list[Any], prefix: str = "steps") -> Iterator[tuple[StepModel, str]]:
    """Every step of a tree with its position, e.g. `steps[0].cases.add[2]`: stable for a config."""
    for index, step in enumerate(steps):
        here = f"{prefix}[{index}]"
        yield step, here
        for where, branch in step.branches():
            yield from step_ids(branch, here + "".join(f".{part}" for part in where))


@dataclass
class StepScope:
    """What every run of one step tree shares: the connectors, a name, and the steps' positions.
    Step lists compile here once (`compile`), so a run does no more than the steps' own work."""

    name: str
    connectors: Mapping[str, Any]
    ids: dict[int, str]
    steps: list[Any] = field(default_factory=list)
    """Every step of the tree, in order (what a step's plan may look at: which names a `set` makes)."""

    @classmethod
    def of(
        cls, name: str, steps: list[Any], connectors: Mapping[str, Any], prefix: str = "steps"
    ) -> StepScope:
        tree = list(step_ids(steps, prefix))
        return cls(name, connectors, {id(step): where for step, where in tree}, [step for step, _ in tree])

    def compile(self, steps: list[Any]) -> StepsRunner:
        """Runs `steps` in order: each step's `when`, the deadline before it, its trace, its
        `on_error` and its `name`, around the work the step compiled for this scope (`program`)."""
        return compile_steps(self, steps)


async def run_steps(
    scope: StepScope, steps: list[Any], context: dict[str, Any], *, deadline: float | None = None
) -> dict[str, Any]:
    """Run `steps` in `context` (e.g. a poll source's steps before its listing); the context after."""
    await scope.compile(steps)(_Run(context, deadline, None, False, False, None, None))
    return context


class _Run:
    """One event's run: its context, and what steps ask of the executor (`steps.Run`)."""

    __slots__ = (
        "context",
        "deadline",
        "ends",
        "_event_id",
        "verify_first",
        "refuse_unprotected",
        "on_write",
        "recorder",
        "applied",
    )

    def __init__(
        self,
        context: dict[str, Any],
        deadline: float | None,
        event_id: str | None,
        verify_first: bool,
        refuse_unprotected: bool,
        on_write: Callable[[float], Awaitable[None]] | None,
        recorder: Recorder | None,
    ) -> None:
        """`event_id` None: one is made if a step asks for it."""
        self.context = context
        self.deadline = deadline
        self.ends = None if deadline is None else time.monotonic() + deadline
        self._event_id = event_id
        self.verify_first = verify_first
        self.refuse_unprotected = refuse_unprotected
        self.on_write = on_write
        self.recorder = recorder
        self.applied: list[str] = []

    @property
    def event_id(self) -> str:
        event_id = self._event_id
        if event_id is None:
            event_id = self._event_id = new_event_id()
        return event_id

    def remaining(self) -> float | None:
        return None if self.ends is None else self.ends - time.monotonic()


class Executor:
    """Executes a pipeline against a set of connectors."""

    def __init__(
        self,
        pipeline: m.Pipeline,
        connectors: Mapping[str, Any],
        variables: Mapping[str, Any] | None = None,
        *,
        clock: helpers.Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`clock` is where templates read the time with `now()` (default: the system clock), once per
        run (`helpers.RunInstant`); `environ` is what `${VAR}` in templates and vars read (default:
        `engine.env.current()`, the process's)."""
        self.pipeline = pipeline
        self.environ = environ
        self.connectors = connectors
        self.variables = dict(variables or {})
        self._variables = Variables(self.variables, f"pipeline {pipeline.name}, vars")
        self.scope = StepScope.of(pipeline.name, pipeline.steps, connectors)
        self._steps = self.scope.compile(pipeline.steps)
        self._when, self._reply, self._status = pipeline.when, pipeline.reply.body, pipeline.reply.status
        self._clock = clock
        self._reads_now = "now" in _globals_read(pipeline)
        """Whether any template of the pipeline reads `now()`: only then does a run keep an instant."""

    async def run(
        self,
        event: Any,
        *,
        deadline: float | None = None,
        event_id: str | None = None,
        verify_first: bool = False,
        refuse_unprotected: bool = False,
        on_write: Callable[[float], Awaitable[None]] | None = None,
        recorder: Recorder | None = None,
    ) -> Outcome:
        """Run one event; never raises for a failure the caller should hear about.

        `deadline` (seconds) bounds the whole run: every call's attempts fit in what is left of it.
        `event_id` makes the calls' idempotency keys (the same on every redelivery of the event);
        `verify_first` makes writes with a `verify` look before they send; `refuse_unprotected` (an
        earlier run of the event may have stopped mid-way) fails a write nothing protects as uncertain
        instead of sending it. `on_write(budget)` is awaited before a write that is not safe to repeat:
        the queue keeps the event from a second worker for that long. `recorder` traces the run: its
        steps, and every connector attempt they make.
        """
        started = time.perf_counter()
        environ = self.environ
        bound = None if environ is None else env.enter(environ)
        active_token = None if recorder is None else active.set(recorder)
        context: dict[str, Any] = {"event": event, "vars": self.variables}
        instant = None
        if self._reads_now:
            instant = context["now"] = helpers.RunInstant(self._clock)
        run: _Run | None = None
        try:
            if self._variables.refers:
                context["vars"] = self._variables.value()
            run = _Run(
                context, deadline, event_id or None, verify_first, refuse_unprotected, on_write, recorder
            )
            when = self._when
            if when is not None and not truthy(when.search(context)):
                return Outcome(200, {"skipped": True}, skipped=True, duration=time.perf_counter() - started)
            if deadline is None:
                await self._steps(run)
            else:
                try:
                    async with asyncio.timeout(deadline + SAFETY_MARGIN):
                        await self._steps(run)
                except TimeoutError:
                    raise UncertainError(
                        f"no answer within {deadline:g} s, and a call may still have been in flight: "
                        "the outcome is unknown; check the external system before sending the event again"
                    ) from None
            reply = self._reply
            return Outcome(
                self._status,
                reply.render(context) if reply is not None else {},
                None,
                False,
                time.perf_counter() - started,
                context,
                None if instant is None else instant.moment,
                run.applied,
            )
        except MesbridgeError as exc:
            applied = [] if run is None else run.applied
            outcome = self._error_outcome(_as_pipeline_error(exc), context, applied)
            outcome.duration = time.perf_counter() - started
            outcome.values = context
            outcome.now = None if instant is None else instant.moment
            outcome.applied = applied
            return outcome
        finally:
            if active_token is not None:
                active.reset(active_token)
            if bound is not None:
                env.leave(bound)

    def _error_outcome(self, error: PipelineError, context: dict[str, Any], applied: list[str]) -> Outcome:
        context["error"] = error_context(error)
        if applied and error.kind != "uncertain":  # an uncertain one says what to check already
            context["error"]["message"] = error.message = f"{error.message}{_applied_note(applied)}"
        handler = self.pipeline.on_error
        if handler is not None:
            try:
                body = (
                    handler.body.render(context) if handler.body is not None else {"message": error.message}
                )
                status = handler.status if "status" in handler.model_fields_set else error.status
                return Outcome(status, body, error=error)
            except MesbridgeError:
                pass  # a broken on_error still answers with the original message
        return Outcome(error.status, {"message": error.message}, error=error)


class _EventIds:
    """Event ids for runs given none: a random 64-bit prefix per process (drawn again in a forked
    child) and a counter, so ids never repeat across processes and restarts, without a random draw
    or a system call per event."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.count = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


new_event_id = _EventIds()
"""An event id for a run given none: 32 hex digits, unique per process and across processes."""


def _globals_read(pipeline: m.Pipeline) -> frozenset[str]:
    """The template globals (`now`, `lookup`) that the templates anywhere in a pipeline read."""
    return frozenset().union(*(template.globals for template in templates_in(pipeline)))


def _applied_note(applied: list[str]) -> str:
    """What a failure says of the writes its run applied before it: the event must not run again."""
    return (
        f" (after {', '.join(applied)} had been applied: sending the event again would apply "
        f"{'it' if len(applied) == 1 else 'them'} twice)"
    )


def _as_pipeline_error(exc: MesbridgeError) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, MissingVariableError):
        return ConnectorError(f"configuration error: {exc}", status=500)
    return PipelineError(str(exc), 422)
