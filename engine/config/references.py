"""Checks across files: names that must exist, routes that must be unique, names a template reads.

Each finding is located at the YAML node that holds the bad reference: a template's findings at the
string (the leaf of its YAML value) that reads the name, as Jinja's parse tree of that string shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config.diagnostics import Diagnostic
from engine.expressions import Template
from engine.pipeline import models as m
from engine.suggest import did_you_mean

if TYPE_CHECKING:
    from engine.config.root import PipelineEntry, Project

_BASE_SCOPE = frozenset({"event", "vars"})


def check_references(project: Project) -> list[Diagnostic]:
    """Every cross-file finding of a loaded project."""
    found: list[Diagnostic] = []
    routes: dict[str, PipelineEntry] = {}
    for entry in project.pipelines.values():
        pipeline, source = entry.pipeline, entry.source
        if isinstance(pipeline.source, m.WebhookSource):
            other = routes.get(pipeline.source.path)
            if other is not None:
                found.append(
                    source.diagnostic(
                        entry.loc + ("source", "path"),
                        f"webhook route {pipeline.source.path} is already used by pipeline "
                        f"'{other.pipeline.name}' ({other.source.file})",
                    )
                )
            else:
                routes[pipeline.source.path] = entry
        else:
            found.extend(_check_call_target(project, entry, entry.loc + ("source",), pipeline.source))
            scope = {"cursor", "vars"}
            for field in ("path", "query", "body", "args"):
                template = getattr(pipeline.source, field)
                found.extend(_check_names(project, entry, entry.loc + ("source", field), template, scope))
        found.extend(_check_steps(project, entry, entry.loc + ("steps",), pipeline.steps, set(_BASE_SCOPE)))
    for test in project.tests:
        case = test.case
        if case.pipeline not in project.pipelines:
            found.append(
                test.source.diagnostic(
                    test.loc + ("pipeline",),
                    f"unknown pipeline '{case.pipeline}'",
                    hint=did_you_mean(case.pipeline, project.pipelines),
                )
            )
        for index, response in enumerate(case.responses):
            if response.connector not in project.connectors:
                found.append(
                    test.source.diagnostic(
                        test.loc + ("responses", index, "connector"),
                        f"unknown connector '{response.connector}'",
                        hint=did_you_mean(response.connector, project.connectors),
                    )
                )
        if case.event_file is not None and not (test.source.path.parent / case.event_file).is_file():
            found.append(
                test.source.diagnostic(test.loc + ("event_file",), f"event file not found: {case.event_file}")
            )
    return found


def _check_call_target(
    project: Project, entry: PipelineEntry, loc: tuple[Any, ...], step: Any
) -> list[Diagnostic]:
    if isinstance(step, m.CallStep):
        connector_name, _, operation = step.call.partition(".")
        field = "call"
    else:
        connector_name, operation, field = step.connector, step.operation or "", "connector"
    connector = project.connectors.get(connector_name)
    if connector is None:
        return [
            entry.source.diagnostic(
                loc + (field,),
                f"unknown connector '{connector_name}'",
                hint=did_you_mean(connector_name, project.connectors),
            )
        ]
    operations = connector.config.operations
    if operation and operation not in operations:
        return [
            entry.source.diagnostic(
                loc + (field if isinstance(step, m.CallStep) else "operation",),
                f"connector '{connector_name}' has no operation '{operation}'",
                hint=did_you_mean(operation, operations)
                or (f"known: {', '.join(operations)}" if operations else None),
            )
        ]
    if not operation and isinstance(step, m.CallStep) and step.path is None:
        return [entry.source.diagnostic(loc + ("call",), "a call needs a `path` or a named operation")]
    return []


def _check_steps(
    project: Project, entry: PipelineEntry, loc: tuple[Any, ...], steps: list[Any], scope: set[str]
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for index, step in enumerate(steps):
        here = loc + (index,)
        if isinstance(step, m.SetStep):
            for key, template in step.set.items():
                found.extend(_check_names(project, entry, here + ("set", key), template, scope))
                scope.add(key)
        elif isinstance(step, m.CallStep):
            found.extend(_check_call_target(project, entry, here, step))
            call_scope = scope | {"args"} if step.args is not None else scope
            for field in ("path", "query", "headers", "body"):
                found.extend(_check_names(project, entry, here + (field,), getattr(step, field), call_scope))
            found.extend(_check_names(project, entry, here + ("args",), step.args, scope))
            if step.missing is not None:
                found.extend(
                    _check_names(project, entry, here + ("missing", "fail"), step.missing.fail, scope)
                )
                found.extend(
                    _check_names(project, entry, here + ("missing", "default"), step.missing.default, scope)
                )
        elif isinstance(step, m.SwitchStep):
            for case, branch in step.cases.items():
                found.extend(_check_steps(project, entry, here + ("cases", case), branch, scope))
            if step.default is not None:
                found.extend(_check_steps(project, entry, here + ("default",), step.default, scope))
        elif isinstance(step, m.IfStep):
            found.extend(_check_steps(project, entry, here + ("then",), step.then, scope))
            if step.else_ is not None:
                found.extend(_check_steps(project, entry, here + ("else",), step.else_, scope))
        elif isinstance(step, m.ForEachStep):
            inner = scope | {step.as_, "loop"}
            found.extend(_check_steps(project, entry, here + ("steps",), step.steps, inner))
            found.extend(_check_names(project, entry, here + ("collect",), step.collect, inner))
            scope.update(inner - {step.as_, "loop"})
        elif isinstance(step, m.FailStep):
            found.extend(_check_names(project, entry, here + ("fail",), step.fail, scope))
        if step.name:
            scope.add(step.name)
    if loc == entry.loc + ("steps",):
        reply = entry.pipeline.reply
        found.extend(_check_names(project, entry, entry.loc + ("reply", "body"), reply.body, scope))
        if entry.pipeline.on_error is not None:
            found.extend(
                _check_names(
                    project,
                    entry,
                    entry.loc + ("on_error", "body"),
                    entry.pipeline.on_error.body,
                    scope | {"error"},
                )
            )
    return found


def _check_names(
    project: Project, entry: PipelineEntry, loc: tuple[Any, ...], template: Template | None, scope: set[str]
) -> list[Diagnostic]:
    """Names a template reads that nothing defines, and `vars.X` keys the binding does not define."""
    if template is None:
        return []
    found = []
    for name in sorted(template.names - scope):
        leaf = next(leaf for leaf in template.leaves if name in leaf.names)
        found.append(
            entry.source.diagnostic(
                loc + leaf.path, f"undefined name '{name}' in template", hint=did_you_mean(name, scope)
            )
        )
    if "vars" in scope:
        known = project.variables.get(entry.binding, {})
        for leaf in template.leaves:
            for key in dict.fromkeys(leaf.references("vars")):
                if key not in known:
                    found.append(
                        entry.source.diagnostic(
                            loc + leaf.path,
                            f"'vars.{key}' is not defined in binding '{entry.binding}'",
                            hint=did_you_mean(key, known)
                            or (f"defined: {', '.join(known)}" if known else None),
                        )
                    )
    return found
