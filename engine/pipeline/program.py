"""A step list compiled into one Python coroutine function, so that a run does the steps' own work and
little else.

`compile_steps` writes the source of one function for a list of steps. Around each step it writes
what every step has: its `when`, the deadline before it, its trace when the run is traced, its
`on_error` handlers and its `name`. A step that runs one of its branches (`switch`, `if`: it has a
`StepModel.choose`) has its decision and its branches written inline: the value it selects (a field
path walked inline), that value's key, the branch of the key. Any other step's work is the coroutine
function the step compiled (`StepModel.compile`), awaited. Branches nested deeper than
`INLINE_DEPTH`, steps with more than `INLINE_BRANCHES` branches and lists longer than `INLINE_STEPS`
become functions of their own, so the source stays within Python's limits and compiles in time that
grows with its size.
"""

from __future__ import annotations

import time
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from engine.codegen import define
from engine.errors import DeadlineExceeded, PipelineError
from engine.expressions import Selection
from engine.pipeline.steps import truthy
from engine.pipeline.steps._base import Choice

__all__ = ["INLINE_BRANCHES", "INLINE_DEPTH", "INLINE_STEPS", "compile_steps", "message_of"]

INLINE_DEPTH = 4
"""Branch levels written into one function; deeper ones are awaited as functions of their own."""

INLINE_BRANCHES = 16
"""Most branches a step has written inline as one `if`/`elif` chain: Python compiles an `elif` chain
recursively, so a switch with thousands of cases would fail to compile (RecursionError); a step with
more branches picks its branch's function from a tuple by index."""

INLINE_STEPS = 64
"""Most steps of one list written into one function; a longer list is run as functions of this many
in turn (Python compiles a function in time that grows faster than its length)."""

StepsRunner = Callable[[Any], Awaitable[None]]


def compile_steps(scope: Any, steps: list[Any]) -> StepsRunner:
    """One coroutine function that runs `steps` on a run (`executor._Run`), each as `scope` compiles it."""
    writer = _Writer(scope)
    writer.steps(steps, 1, 0)
    lines = [
        "async def run_steps(run):",
        "    _c = run.context",
        "    _r = run.recorder",
        "    _ends = run.ends",
        *writer.lines,
    ]
    runner: StepsRunner = define(lines, writer.objects, "<mesbridge steps>", _RUNTIME)
    return runner


class _Writer:
    """The source lines of one step list's function, and the objects they refer to (`_o0`, ...)."""

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        self.objects: list[Any] = []
        self.lines: list[str] = []
        self.count = 0

    def ref(self, obj: Any) -> str:
        self.objects.append(obj)
        return f"_o{len(self.objects) - 1}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def steps(self, steps: list[Any], indent: int, depth: int) -> None:
        if not steps:
            self.emit(indent, "pass")
        elif len(steps) > INLINE_STEPS:
            for start in range(0, len(steps), INLINE_STEPS):
                part = compile_steps(self.scope, steps[start : start + INLINE_STEPS])
                self.emit(indent, f"await {self.ref(part)}(run)")
        else:
            for step in steps:
                self.step(step, indent, depth)

    def select(self, selection: Selection, target: str, indent: int) -> None:
        """`target = selection.search(_c)`. A field path is walked inline while its values are dicts
        (the run's context is one), else by the selection's own walk from the start. The walk is one
        condition, not an `if` per field: a long path stays within Python's indentation limit."""
        fields = selection.fields
        if fields is None:
            self.emit(indent, f"{target} = {self.ref(selection.search)}(_c)")
            return
        self.emit(indent, f"{target} = _c.get({fields[0]!r})")
        if len(fields) == 1:
            return
        walked = [f"{target}.__class__ is dict"]
        walked += [f"({target} := {target}.get({name!r})).__class__ is dict" for name in fields[1:-1]]
        self.emit(indent, f"if {' and '.join(walked)}:")
        self.emit(indent + 1, f"{target} = {target}.get({fields[-1]!r})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target} = {self.ref(selection.search)}(_c)")

    def choice(self, choice: Choice, n: int, indent: int) -> None:
        """The decision of a step that runs one of its branches: its result `_x{n}`, its branch `_b{n}`."""
        self.select(choice.select, f"_x{n}", indent)
        key = f"{self.ref(choice.key)}(_x{n})"
        if choice.text_keys:
            key = f"_x{n} if _x{n}.__class__ is str else {key}"
        self.emit(indent, f"_k{n} = {key}")
        self.emit(indent, f"_b{n} = {self.ref(choice.branches)}.get(_k{n}, {choice.default!r})")
        if choice.unmatched is not None and choice.default is None:
            self.emit(indent, f"if _b{n} is None: raise {self.ref(choice.unmatched)}(_x{n})")
        if choice.result_is_key:
            self.emit(indent, f"_x{n} = _k{n}")

    def step(self, step: Any, indent: int, depth: int) -> None:
        n, self.count = self.count, self.count + 1
        where = self.scope.ids.get(id(step), "")
        label = f"{where!r}, {step.kind!r}, {step.name!r}"
        self.emit(indent, f"# {where!r}")  # repr: a case name may hold a line break
        if step.when is not None:
            self.select(step.when, f"_w{n}", indent)
            self.emit(indent, f"if not _truthy(_w{n}):")
            self.emit(indent + 1, f"if _r is not None: _r.skipped({label})")
            self.emit(indent, "else:")
            indent += 1
        self.emit(indent, "if _ends is not None and _ends <= _monotonic(): raise _late(run)")
        self.emit(indent, f"_t{n} = None if _r is None else _r.enter({label})")
        self.emit(indent, "try:")
        choice = step.choose(self.scope)
        if choice is None:
            self.emit(indent + 1, f"_x{n} = await {self.ref(step.compile(self.scope))}(run)")
        else:
            self.choice(choice, n, indent + 1)
            branches = [branch for _, branch in step.branches()]
            if len(branches) > INLINE_BRANCHES:  # one function per branch, picked by index
                table = tuple(compile_steps(self.scope, branch) for branch in branches)
                self.emit(indent + 1, f"if _b{n} is not None: await {self.ref(table)}[_b{n}](run)")
            else:
                for index, branch in enumerate(branches):
                    self.emit(indent + 1, f"{'if' if index == 0 else 'elif'} _b{n} == {index}:")
                    if depth + 1 < INLINE_DEPTH:
                        self.steps(branch, indent + 2, depth + 1)
                    else:
                        self.emit(indent + 2, f"await {self.ref(compile_steps(self.scope, branch))}(run)")
        self.emit(indent, "except _PipelineError as _e:")
        self.emit(indent + 1, f"_x{n} = _handled({self.ref(step)}, _e, _c, _r, _t{n})")
        self.emit(indent, "except BaseException as _e:")
        self.emit(indent + 1, f"if _t{n} is not None: _r.leave(_t{n}, 'failed', _message(_e))")
        self.emit(indent + 1, "raise")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"if _t{n} is not None: _r.leave(_t{n}, 'ok', None)")
        if step.name:
            self.emit(indent, f"_c[{step.name!r}] = _x{n}")


def _handled(step: Any, error: PipelineError, context: dict[str, Any], recorder: Any, mark: Any) -> Any:
    """The step's result for a failure, from its `on_error` handlers (`StepModel.handle`), marked in
    the trace as handled, or as failed when no handler answers."""
    if mark is None:
        return step.handle(error, context)
    try:
        result = step.handle(error, context)
    except BaseException as final:
        recorder.leave(mark, "failed", message_of(final))
        raise
    recorder.leave(mark, "handled", error.message)
    return result


def _late(run: Any) -> DeadlineExceeded:
    return DeadlineExceeded(f"no answer within {run.deadline:g} s; stopped before the next step")


def message_of(exc: BaseException) -> str:
    """What a trace says of a failure."""
    if isinstance(exc, PipelineError):
        return exc.message
    if isinstance(exc, CancelledError):
        return "cancelled"
    return str(exc) or type(exc).__name__


_RUNTIME: dict[str, Any] = {
    "_truthy": truthy,
    "_monotonic": time.monotonic,
    "_late": _late,
    "_PipelineError": PipelineError,
    "_handled": _handled,
    "_message": message_of,
}
"""The globals of every generated function."""
