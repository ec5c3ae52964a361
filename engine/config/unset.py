"""The `${VAR}` references of the connectors a config uses that the environment cannot give.

A reference is read when its value is used, so a connector whose `${ERP_KEY}` is not set would fail
every call that needs it. `mesbridge run` refuses such a config at start and at a reload; `mesbridge
check`, which runs where the secrets are not (CI), warns of them. Each finding is located at the
reference (`file:line:col`) and names the variable, or the `${file:PATH}` that cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateSyntaxError, nodes

from engine import env
from engine.config.diagnostic import Diagnostic
from engine.config.yamlsource import LoadedYaml, Mark
from engine.errors import MissingVariableError
from engine.expressions.sandbox import environment
from engine.pipeline.executor import step_ids
from engine.pipeline.sources.poll import PollSource
from engine.pipeline.steps.call import CallStep

if TYPE_CHECKING:
    from engine.config.root import Project

__all__ = ["unset_references", "used_connectors"]

_JINJA = ("{{", "{%", "{#")


def used_connectors(project: Project) -> set[str]:
    """The connectors the pipelines of the project call or poll: a poll source's connector, and every
    call step's (of the pipeline's steps and of a poll source's `steps`), with the connector its
    verify lookup asks, its own `verify.call` or that of the named operation it calls."""
    configs = project.connector_configs
    used = set()
    for entry in project.pipelines.values():
        source = entry.pipeline.source
        steps = list(step_ids(entry.pipeline.steps))
        if isinstance(source, PollSource):
            used.add(source.connector)
            steps += step_ids(source.steps, "source.steps")
        for step, _ in steps:
            if isinstance(step, CallStep):
                used.add(step.call.partition(".")[0])
                verify = step.verify_spec(configs)
                if verify is not None and verify.call is not None:
                    used.add(verify.call.partition(".")[0])
    return used


def unset_references(
    project: Project, environ: Mapping[str, str], *, severity: str = "error"
) -> list[Diagnostic]:
    """A finding at each reference without a default, in the connectors the pipelines use, whose
    variable `environ` does not set (or whose file cannot be read)."""
    found = []
    for name in sorted(used_connectors(project)):
        entry = project.connectors.get(name)
        if entry is None:
            continue
        for loc, text in _strings(entry.source.data):
            for reference in _references(text):
                where = f"connector {name}, " + ".".join(str(part) for part in loc)
                try:
                    env.value_of(reference, environ, where)
                except MissingVariableError as exc:
                    mark = _mark(entry.source, loc, reference.group(0))
                    found.append(entry.source.diagnostic_at(mark, str(exc), severity=severity))
    return found


def _strings(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _references(text: str) -> Iterator[Any]:
    """The references of a string; of a template, only those in its own text (as they resolve)."""
    if "${" not in text:
        return
    parts = [text]
    if any(marker in text for marker in _JINJA):
        try:
            parts = [node.data for node in environment().parse(text).find_all(nodes.TemplateData)]
        except TemplateSyntaxError:  # `check` reports it where the template is compiled
            return
    for part in parts:
        yield from env.REFERENCE.finditer(part)


def _mark(source: LoadedYaml, loc: tuple[Any, ...], reference: str) -> Mark:
    """Where `reference` is written: in the value's first line when it is there, else the value."""
    _, mark = source.locate(loc)
    column = source.source_line(mark.line).find(reference, max(mark.col - 1, 0))
    return Mark(mark.line, column + 1) if column >= 0 else mark
