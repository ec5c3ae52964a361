"""The `${VAR}` references a served config needs that the environment cannot give.

A reference is read when its value is used, so a connector whose `${ERP_KEY}` is not set would fail
every call that needs it, and a binding's var or a step's template every event. `mesbridge run`
refuses such a config at start and at a reload; `mesbridge check`, which runs where the secrets are
not (CI), warns of them. Each finding is located at the reference (`file:line:col`) and names the
variable, or the `${file:PATH}` that cannot be read, and where it is used.

What counts is what would be read, decided as the values are resolved: the connectors the served
pipelines use (every string, a template's own text only), the `vars` of their bindings (every
string: they are resolved whole for each event), and the templates of the pipelines (their steps,
handlers, sources and replies), whose references are those their parse tree holds
(`engine.expressions.variables.references`): never a `${X}` written inside an expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateSyntaxError

from engine import env
from engine.config.diagnostic import Diagnostic
from engine.config.references import model_templates
from engine.config.yamlsource import LoadedYaml, Mark
from engine.connectors.transports.default import load_ca_file
from engine.errors import CaFileUnloadable, MissingVariableError
from engine.expressions import variables
from engine.expressions.sandbox import environment
from engine.pipeline.executor import step_ids
from engine.pipeline.sources.poll import PollSource
from engine.pipeline.steps.call import CallStep

if TYPE_CHECKING:
    from engine.config.root import Project

__all__ = ["unloadable_ca_files", "unset_references", "used_connectors"]

_JINJA = ("{{", "{%", "{#")

Loc = tuple[Any, ...]


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
    """A finding at each reference without a default, in the connectors the pipelines use, the vars of
    their bindings and their templates, whose variable `environ` does not set (or whose file cannot be
    read)."""
    found = []
    for source, loc, text, match, where in _used_references(project):
        try:
            env.value_of(match, environ, where)
        except MissingVariableError as exc:
            mark = _mark(source, loc, match.group(0), text)
            found.append(source.diagnostic_at(mark, str(exc), severity=severity))
    return found


def unloadable_ca_files(
    project: Project, environ: Mapping[str, str], *, severity: str = "error"
) -> list[Diagnostic]:
    """A finding at the `tls_ca_file` of each connector the pipelines use that cannot be read or loaded
    as PEM certificates (with TLS verified): every call would fail on it. One whose `${VAR}` is not set
    is left to `unset_references`."""
    found = []
    for name in sorted(used_connectors(project)):
        entry = project.connectors.get(name)
        if entry is None or not entry.config.tls_verify or entry.config.tls_ca_file is None:
            continue
        try:
            load_ca_file(env.resolve(entry.config.tls_ca_file, environ, f"connector {name}, tls_ca_file"))
        except MissingVariableError:
            continue
        except CaFileUnloadable as exc:
            message = f"{exc} (needed by connector {name}: every call would fail)"
            found.append(entry.source.diagnostic(("tls_ca_file",), message, severity=severity))
    return found


def _used_references(project: Project) -> Iterator[tuple[LoadedYaml, Loc, str, re.Match[str], str]]:
    """(file, YAML location, the string, reference, where it is used) of every reference a served
    config reads."""
    for name in sorted(used_connectors(project)):
        entry = project.connectors.get(name)
        if entry is None:
            continue
        for loc, text in _strings(entry.source.data):
            for match in _references(text):
                where = f"connector {name}, " + ".".join(str(part) for part in loc)
                yield entry.source, loc, text, match, where
    for binding in sorted({served.binding for served in project.pipelines.values()}):
        files = project.variable_files.get(binding, {})
        for key, value in project.variables.get(binding, {}).items():
            for loc, text in _strings(value, ("vars", key)):
                for match in env.REFERENCE.finditer(text):  # vars are not templates: all of the text
                    yield files[key], loc, text, match, f"binding {binding}, {_dotted(loc)}"
    for name, pipeline in project.pipelines.items():
        for loc, template in model_templates(pipeline.pipeline):
            for leaf in template.leaves:
                where = f"pipeline {name}, {_dotted(loc + leaf.path)}"
                for match in variables.references(leaf.ast):
                    yield pipeline.source, pipeline.loc + loc + leaf.path, leaf.source, match, where


def _dotted(loc: Loc) -> str:
    """("steps", 0, "body", "QTY") as `steps[0].body.QTY`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _strings(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _references(text: str) -> Iterator[re.Match[str]]:
    """The references of a connector string; of a template, only those in its own text (as they
    resolve: the ones its parse tree holds)."""
    if "${" not in text:
        return
    if not any(marker in text for marker in _JINJA):
        yield from env.REFERENCE.finditer(text)
        return
    try:
        ast = variables.with_references(environment().parse(text))
    except TemplateSyntaxError:  # `check` reports it where the template is compiled
        return
    yield from variables.references(ast)


def _mark(source: LoadedYaml, loc: Loc, reference: str, text: str) -> Mark:
    """Where `reference` is written: in the lines of the value `text` from where it starts (a block
    scalar's from the next line), else the value."""
    _, mark = source.locate(loc)
    for offset in range(text.count("\n") + 2):
        start = max(mark.col - 1, 0) if offset == 0 else 0
        column = source.source_line(mark.line + offset).find(reference, start)
        if column >= 0:
            return Mark(mark.line + offset, column + 1)
    return mark
