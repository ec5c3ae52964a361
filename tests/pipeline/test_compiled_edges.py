"""The compiled step lists (`engine.pipeline.program`) at their edges: an unknown connector, a switch of
thousands of cases, many branches, decisions written inline over any value; the template compiler's
literals under `sameas`; the guide to adding a step type."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment

from engine.connectors.group import Connectors
from engine.expressions import Selection
from engine.expressions.templates import Template
from engine.pipeline.executor import Executor
from engine.pipeline.steps import truthy
from engine.pipeline.steps.switch import case_key
from engine.recorder import Recorder
from tests.pipeline.test_executor import pipeline


def _depth(exc: BaseException) -> int:
    count, tb = 0, exc.__traceback__
    while tb is not None:
        count, tb = count + 1, tb.tb_next
    return count


async def test_an_unknown_connector_raises_a_fresh_error_each_run() -> None:
    """The error of a call to an unknown connector was one object raised again on every run: its
    traceback grew by each run's frames (keeping every run's context alive) and runs shared it."""
    executor = Executor(pipeline([{"call": "nosuch", "method": "GET", "path": "/x"}]), Connectors({}), {})
    errors: list[KeyError] = []
    for index in range(3):
        try:
            await executor.run({"n": index})
        except KeyError as exc:
            errors.append(exc)
    assert len(errors) == 3
    assert errors[0] is not errors[1] is not errors[2]
    assert _depth(errors[0]) == _depth(errors[1]) == _depth(errors[2])
    assert all("unknown connector 'nosuch'" in str(error) for error in errors)


async def test_an_unused_branch_may_name_an_unknown_connector() -> None:
    steps = [
        {
            "switch": "event.k",
            "name": "s",
            "cases": {"a": [{"set": {"x": "1"}}], "b": [{"call": "nosuch", "method": "GET", "path": "/x"}]},
        }
    ]
    outcome = await Executor(pipeline(steps), Connectors({}), {}).run({"k": "a"})
    assert outcome.status == 200 and outcome.values["x"] == "1"


def _switch(count: int) -> dict[str, Any]:
    cases = {f"c{index}": [{"set": {"hit": f"{index}"}}] for index in range(count)}
    return {"switch": "event.k", "name": "s", "cases": cases, "default": [{"set": {"hit": "default"}}]}


async def test_a_switch_with_thousands_of_cases_compiles() -> None:
    """Its branches were one `elif` chain, which Python compiles recursively: past about 2,950 cases
    the executor could not be built (RecursionError), so the service could not start or reload."""
    executor = Executor(pipeline([_switch(3500)]), {}, {})
    for key, hit in (("c0", "0"), ("c3499", "3499"), ("nope", "default")):
        recorder = Recorder()
        outcome = await executor.run({"k": key}, recorder=recorder)
        assert outcome.values["hit"] == hit
        assert [mark.status for mark in recorder.steps] == ["ok", "ok"]


async def test_many_branches_keep_on_error_trace_and_names() -> None:
    count = 40  # more than are written inline (`program.INLINE_BRANCHES`)
    switch = _switch(count)
    switch["cases"]["c1"] = [{"fail": "boom"}]
    switch["on_error"] = [{"if": "`true`", "value": "handled {{ error.message }}"}]
    inner = {"if": "`true`", "name": "i", "then": [switch, {"set": {"after": "yes"}}]}
    executor = Executor(pipeline([inner]), {}, {})
    recorder = Recorder()
    outcome = await executor.run({"k": "c1"}, recorder=recorder)
    assert outcome.values["s"] == "handled boom" and outcome.values["after"] == "yes"
    assert [(mark.id, mark.status) for mark in recorder.steps] == [
        ("steps[0]", "ok"),
        ("steps[0].then[0]", "handled"),
        ("steps[0].then[0].cases.c1[0]", "failed"),
        ("steps[0].then[1]", "ok"),
    ]
    outcome = await executor.run({"k": f"c{count - 1}"})
    assert outcome.values["hit"] == f"{count - 1}" and outcome.values["s"] == f"c{count - 1}"


_keys = st.sampled_from(["a", "b", "c"])
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from(["x", "1", "true", "", "ש"])
    | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(_keys, inner, max_size=3)
        | st.dictionaries(_keys, inner, max_size=3).map(MappingProxyType)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["event", "event.a", "event.a.b", "event.a.b.c", "event.a[0]"]), _values)
async def test_a_decision_written_inline_is_the_selections_own(path: str, event: Any) -> None:
    """A switch, an if and a `when` decide inline, walking a field path while its values are dicts:
    over lists, strings, numbers, null, missing keys and mappings that are not dicts, each decides
    as its selection's own `search` would."""
    cases = {case: [{"set": {"hit": case}}] for case in ("x", "1", "true", "false", "None", "2.0")}
    steps = [
        {"switch": path, "name": "s", "cases": cases, "default": [{"set": {"hit": "default"}}]},
        {"if": path, "name": "i", "then": [{"set": {"t": "yes"}}], "else": [{"set": {"t": "no"}}]},
        {"set": {"w": "ran"}, "when": path},
    ]
    value = Selection(path).search({"event": event})
    outcome = await Executor(pipeline(steps), Connectors({}), {}).run(event)
    assert outcome.ok, outcome.error
    values = outcome.values
    assert values["s"] is value or values["s"] == value  # the switch's result: the value itself
    assert values["hit"] == (case_key(value) if case_key(value) in cases else "default")
    assert (values["i"], values["t"]) == ((True, "yes") if truthy(value) else (False, "no"))
    assert ("w" in values) == truthy(value)


async def test_a_switch_without_default_names_the_value_it_found_no_case_for() -> None:
    steps = [{"switch": "event.k", "cases": {"a": [{"set": {"x": "1"}}]}}]
    outcome = await Executor(pipeline(steps), Connectors({}), {}).run({"k": ["b"]})
    assert outcome.status == 422
    assert outcome.error is not None and outcome.error.message == "no case for event.k = ['b'] (cases: a)"


def test_sameas_of_two_equal_constants_is_jinjas_answer() -> None:
    """Constants written as literals are merged by Python's compiler, so `is sameas` of two equal
    constants became True in the generated function, where Jinja (and the closures) answer False."""
    for source in ("{{ 'abc def' is sameas 'abc def' }}", "{{ 100000 is sameas 100000 }}"):
        expected = Environment().from_string(source).render()
        assert expected == "False"
        assert Template(source).render({}) is False
        assert Template({"k": source}).render({}) == {"k": False}


def test_contributing_guide_names_compile_not_run() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "contributing.md").read_text()
    assert "`run(run)` (what it does)" not in guide


async def test_a_long_field_path_decides_as_its_selection_does() -> None:
    """The inline walk of a field path nested one `if` per field: a path of about a hundred fields
    went past Python's indentation limit, so the executor could not be built (IndentationError),
    where the selection's own walk served it."""
    path = "event." + ".".join(f"f{index}" for index in range(150))
    event: dict[str, Any] = {}
    inner = event
    for index in range(149):
        inner = inner.setdefault(f"f{index}", {})
    inner["f149"] = "x"
    steps = [
        {"switch": path, "name": "s", "cases": {"x": [{"set": {"hit": "x"}}]}, "default": []},
        {"if": path, "name": "i", "then": [{"if": path, "then": [{"set": {"deep": path}, "when": path}]}]},
        {"set": {"w": "ran"}, "when": path},
    ]
    executor = Executor(pipeline(steps), Connectors({}), {})
    outcome = await executor.run(event)
    assert outcome.ok, outcome.error
    assert Selection(path).search({"event": event}) == "x"
    assert (outcome.values["s"], outcome.values["hit"], outcome.values["i"]) == ("x", "x", True)
    assert outcome.values["w"] == "ran" and outcome.values["deep"] == path
    event["f0"] = MappingProxyType(event["f0"])  # not a dict on the way: the selection's own walk
    outcome = await executor.run(event)
    assert outcome.ok, outcome.error
    assert (outcome.values["s"], outcome.values["hit"], outcome.values["w"]) == ("x", "x", "ran")
    inner["f149"] = ""
    outcome = await executor.run(event)
    assert (outcome.values["s"], outcome.values["i"]) == ("", False) and "w" not in outcome.values
