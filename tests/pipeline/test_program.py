"""The compiled step lists (`engine.pipeline.program`) run a step tree as a plain interpreter of the
step models would: the same results, replies, calls and trace, over generated trees nested deeper
than the part written inline."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import DeliberateFailure, PipelineError
from engine.pipeline.executor import Executor
from engine.pipeline.models import Pipeline
from engine.pipeline.program import INLINE_DEPTH, INLINE_STEPS, message_of
from engine.pipeline.steps import truthy
from engine.pipeline.steps.fail import as_text
from engine.pipeline.steps.switch import case_key
from engine.recorder import Recorder
from tests.pipeline.test_executor import FakeConnector, FakeResponse

# --- a plain interpreter of the step models: what the compiled lists must mean --------------------


async def interpret(steps: list[Any], run: Any, *, scope: Any) -> None:
    context, recorder = run.context, run.recorder
    for step in steps:
        where = scope.ids[id(step)]
        if step.when is not None and not truthy(step.when.search(context)):
            if recorder is not None:
                recorder.skipped(where, step.kind, step.name)
            continue
        entered = recorder.enter(where, step.kind, step.name) if recorder is not None else None
        try:
            result = await work(step, run, scope)
        except PipelineError as error:
            try:
                result = step.handle(error, context)
            except BaseException as final:
                if entered is not None:
                    recorder.leave(entered, "failed", message_of(final))
                raise
            if entered is not None:
                recorder.leave(entered, "handled", error.message)
        except BaseException as exc:
            if entered is not None:
                recorder.leave(entered, "failed", message_of(exc))
            raise
        else:
            if entered is not None:
                recorder.leave(entered, "ok", None)
        if step.name:
            context[step.name] = result


async def work(step: Any, run: Any, scope: Any) -> Any:
    context = run.context
    if step.kind == "set":
        for key, template in step.set.items():
            context[key] = template.render(context)
        return {key: context[key] for key in step.set}
    if step.kind == "fail":
        raise DeliberateFailure(as_text(step.fail.render(context)), step.status)
    if step.kind == "switch":
        value = step.switch.search(context)
        case = case_key(value)
        branch = step.cases.get(case) if case is not None else None
        if branch is None:
            branch = step.default
        if branch is None:
            raise PipelineError(
                f"no case for {step.switch.source} = {value!r} (cases: {', '.join(step.cases)})"
            )
        await interpret(branch, run, scope=scope)
        return value
    if step.kind == "if":
        chosen = truthy(step.if_.search(context))
        await interpret(step.then if chosen else (step.else_ or []), run, scope=scope)
        return chosen
    if step.kind == "for_each":
        items = step.for_each.search(context) or []
        collected = []
        for index, item in enumerate(items):
            context[step.as_] = item
            context["loop"] = {
                "index": index + 1,
                "index0": index,
                "first": index == 0,
                "last": index == len(items) - 1,
                "length": len(items),
            }
            await interpret(step.steps, run, scope=scope)
            if step.collect is not None:
                collected.append(step.collect.render(context))
        context.pop(step.as_, None)
        context.pop("loop", None)
        return collected
    assert step.kind == "call"
    return await step.compile(scope)(run)  # a call's own work is the same on both sides


# --- generated step trees ------------------------------------------------------------------------

names = st.sampled_from(["r0", "r1", "r2"])
leaves = st.one_of(
    st.builds(lambda k: {"set": {f"v{k}": f"{{{{ event.a + {k} }}}}"}}, st.integers(0, 2)),
    st.builds(lambda s: {"fail": "stopped at {{ event.a }}", "status": s}, st.sampled_from([400, 409])),
    st.builds(
        lambda k: {"call": "erp", "method": "POST", "path": f"/p{k}", "body": {"a": "{{ event.a }}"}},
        st.integers(0, 2),
    ),  # fmt: skip
)


def lists(children: Any) -> Any:
    return st.lists(children, max_size=3)


branching = st.deferred(
    lambda: st.one_of(
        st.builds(
            lambda cases, default: {
                "switch": "event.a",
                "cases": {str(k): steps for k, steps in enumerate(cases)},
                **({"default": default} if default is not None else {}),
            },
            st.lists(lists(trees), min_size=1, max_size=3),
            st.none() | lists(trees),
        ),
        st.builds(
            lambda then, otherwise: {
                "if": "event.b == `1`",
                "then": then,
                **({"else": otherwise} if otherwise is not None else {}),
            },
            lists(trees),
            st.none() | lists(trees),
        ),
        st.builds(
            lambda body: {"for_each": "event.items", "steps": body, "collect": "{{ item }}"}, lists(trees)
        ),
    )
)
handlers = st.sampled_from(
    [
        None,
        [{"if": "error.status == `409`", "value": "handled {{ error.status }}"}],
        [{"if": "error.http_status == `500`", "skip": True}],
        [{"if": "`true`", "fail": "refused: {{ error.message }}", "status": 418}],
    ]
)


def decorated(step: dict[str, Any], name: str | None, when: bool, on_error: Any) -> dict[str, Any]:
    extra = {"name": name} if name and "set" not in step else {}
    if when:
        extra["when"] = "event.b != `2`"
    if on_error is not None:
        extra["on_error"] = on_error
    return {**step, **extra}


trees = st.deferred(
    lambda: st.builds(decorated, leaves | branching, st.none() | names, st.booleans(), handlers)
)
events = st.fixed_dictionaries(
    {"a": st.integers(0, 3), "b": st.integers(0, 2), "items": st.lists(st.integers(0, 9), max_size=2)}
)


class Erp(FakeConnector):
    """Answers `/p1` with a server error and `/p2` with a refusal when `a` is odd; else a record."""

    async def request(self, method: str, path: str, **kwargs: Any) -> FakeResponse:
        from engine.errors import BusinessError, TransientError

        self.calls.append({"method": method, "path": path, "body": kwargs.get("body")})
        odd = (kwargs.get("body") or {}).get("a", 0) % 2 == 1
        if odd and path == "/p1":
            raise TransientError("erp said 500", connector=self.name, http_status=500)
        if odd and path == "/p2":
            raise BusinessError("erp refused it", connector=self.name, http_status=409)
        return FakeResponse({"id": path})


async def outcomes(pipeline: Pipeline, event: dict[str, Any], traced: bool) -> list[Any]:
    results = []
    for interpreted in (False, True):
        erp = Erp("erp", [])
        executor = Executor(pipeline, {"erp": erp})
        if interpreted:
            executor._steps = functools.partial(interpret, pipeline.steps, scope=executor.scope)
        recorder = Recorder() if traced else None
        outcome = await executor.run(event, recorder=recorder)
        steps = [(m.id, m.kind, m.name, m.status, m.error) for m in recorder.steps] if recorder else []
        message = outcome.error.message if outcome.error is not None else None
        results.append(
            (outcome.status, outcome.body, message, outcome.values, outcome.applied, erp.calls, steps)
        )
    return results


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trees, min_size=1, max_size=3), events, st.booleans())
def test_compiled_steps_mean_what_the_step_models_say(
    steps: list[Any], event: dict[str, Any], traced: bool
) -> None:
    pipeline = Pipeline.model_validate(
        {"name": "p", "source": {"kind": "webhook", "path": "/p"}, "steps": steps}
    )
    compiled, interpreted = asyncio.run(outcomes(pipeline, event, traced))
    assert compiled == interpreted


@pytest.mark.parametrize("levels", range(1, 2 * INLINE_DEPTH + 2))
def test_branches_deeper_than_the_inline_part_run_as_functions_of_their_own(levels: int) -> None:
    steps: list[Any] = [{"set": {"deepest": "{{ event.a }}"}}, {"set": {"after": "{{ deepest + 1 }}"}}]
    for _ in range(levels):
        steps = [{"if": "`true`", "then": steps}]
    pipeline = Pipeline.model_validate(
        {"name": "p", "source": {"kind": "webhook", "path": "/p"}, "steps": steps}
    )
    recorder = Recorder()
    outcome = asyncio.run(Executor(pipeline, {}).run({"a": 7}, recorder=recorder))
    assert outcome.ok and (outcome.values["deepest"], outcome.values["after"]) == (7, 8)
    deepest = "steps[0]" + ".then[0]" * (levels - 1) + ".then"
    assert [(mark.id, mark.status) for mark in recorder.steps] == [
        *(("steps[0]" + ".then[0]" * level, "ok") for level in range(levels)),
        (f"{deepest}[0]", "ok"),
        (f"{deepest}[1]", "ok"),
    ]


def test_a_case_name_is_data_in_the_generated_source_never_code() -> None:
    hostile = "a\nraise SystemExit('escaped')\n#"
    pipeline = Pipeline.model_validate(
        {
            "name": "p",
            "source": {"kind": "webhook", "path": "/p"},
            "steps": [{"switch": "event.k", "cases": {hostile: [{"set": {"hit": "{{ true }}"}}]}}],
        }
    )
    outcome = asyncio.run(Executor(pipeline, {}).run({"k": hostile}))
    assert outcome.ok and outcome.values["hit"] is True


@pytest.mark.parametrize("length", [INLINE_STEPS, INLINE_STEPS + 1, 2 * INLINE_STEPS + 3])
def test_a_list_longer_than_one_function_holds_runs_every_step_in_order(length: int) -> None:
    steps = [{"set": {"n": "{{ (n if n is defined else 0) + 1 }}"}} for _ in range(length)]
    steps.insert(length // 2, {"fail": "stopped", "when": "`false`"})
    pipeline = Pipeline.model_validate(
        {"name": "p", "source": {"kind": "webhook", "path": "/p"}, "steps": steps}
    )
    recorder = Recorder()
    outcome = asyncio.run(Executor(pipeline, {}).run({}, recorder=recorder))
    assert outcome.ok and outcome.values["n"] == length
    assert [mark.id for mark in recorder.steps] == [f"steps[{index}]" for index in range(length + 1)]
    assert recorder.steps[length // 2].status == "skipped"
