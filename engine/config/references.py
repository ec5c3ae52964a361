"""Checks across files: names that must exist, routes that must be unique, names a template reads.

Each finding is located at the YAML node that holds the bad reference: a template's findings at the
string (the leaf of its YAML value) that reads the name, as Jinja's parse tree of that string shows.
Each step type checks its own fields (`StepModel.check`) against the `Checker` here. A connector or
pipeline whose file did not load was reported there once; references to it are not reported again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jinja2 import nodes
from pydantic import BaseModel

from engine import helpers
from engine.config.diagnostic import Diagnostic
from engine.expressions import PathTemplate, Template
from engine.pipeline.sources.poll import PollSource
from engine.pipeline.sources.webhook import WebhookSource
from engine.suggest import did_you_mean

if TYPE_CHECKING:
    from engine.config.root import PipelineEntry, Project, TestEntry

__all__ = ["OPERATION_SCOPE", "check_references", "model_templates", "path_templates"]

_BASE_SCOPE = frozenset({"event", "vars"})
Loc = tuple[Any, ...]


class _Checker:
    """The `Checker` steps report to, for one pipeline."""

    def __init__(self, project: Project, entry: PipelineEntry, found: list[Diagnostic]) -> None:
        self.project = project
        self.entry = entry
        self.found = found

    def report(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.found.append(self.entry.source.diagnostic(loc, message, hint=hint))

    def names(self, loc: Loc, template: Template | None, scope: set[str]) -> None:
        """Names `template` reads that nothing defines, and `vars.X` keys the binding does not define."""
        if template is None:
            return
        for name in sorted(template.names - scope):
            leaf = next(leaf for leaf in template.leaves if name in leaf.names)
            self.report(loc + leaf.path, f"undefined name '{name}' in template", did_you_mean(name, scope))
        self._time_zones(loc, template)
        if "vars" not in scope:
            return
        for leaf, key, hint in self._undefined_vars(template):
            self.report(
                loc + leaf.path, f"'vars.{key}' is not defined in binding '{self.entry.binding}'", hint
            )

    def _time_zones(self, loc: Loc, template: Template) -> None:
        """A `date` filter's time zone written in the template or in the binding's vars (`date('%Y-%m-%d',
        vars.time_zone)`) must be one the time zone database knows: else every run would fail on it."""
        variables: Any = self.project.variables.get(self.entry.binding, {})
        for leaf in template.leaves:
            if "date" not in leaf.filters():
                continue
            for node in leaf.ast.find_all(nodes.Filter):
                if node.name != "date":
                    continue
                given = (
                    node.args[1]
                    if len(node.args) > 1
                    else next((kw.value for kw in node.kwargs if kw.key == "tz"), None)
                )
                zone, where = _literal(given, variables)
                if not isinstance(zone, str) or "${" in zone:
                    continue  # a value of the event, or a ${VAR}: known at run time only
                try:
                    helpers.format_date("2000-01-01T00:00:00Z", "%Y", zone)
                except ValueError as exc:
                    self.report(loc + leaf.path, f"{where}: {exc}" if where else str(exc))

    def no_cursor(self, loc: Loc, template: Template | None) -> None:
        """A poll source without `cursor:` never stores one: a template reading `cursor` reads null."""
        for leaf in template.leaves if template is not None else ():
            if "cursor" in leaf.names:
                self.report(
                    loc + leaf.path,
                    "the source has no `cursor:`, so `cursor` is always null here",
                    "add cursor: {field: <the record's change date>, initial: <where to start>}",
                )

    def _undefined_vars(self, template: Template | PathTemplate) -> Iterator[tuple[Any, str, str | None]]:
        """(leaf, key, hint) for each `vars.key` the template reads that the binding does not define,
        nested keys (`vars.methods.orders`) included as far as the vars are mappings written out."""
        for leaf in template.leaves:
            reported: set[tuple[str, ...]] = set()  # `vars.a.b` reads `vars.a` too: one finding
            for path in leaf.references("vars"):
                known: Any = self.project.variables.get(self.entry.binding, {})
                for depth, key in enumerate(path):
                    if not isinstance(known, dict):
                        break
                    if key not in known:
                        if path[: depth + 1] not in reported:
                            reported.add(path[: depth + 1])
                            hint = did_you_mean(key, known) or (
                                f"defined: {', '.join(known)}" if known and depth == 0 else None
                            )
                            yield leaf, ".".join(path[: depth + 1]), hint
                        break
                    known = known[key]

    def call_target(self, loc: Loc, target: str, *, has_path: bool) -> Any:
        connector_name, _, operation = target.partition(".")
        connector = self.project.connectors.get(connector_name)
        if connector is None:
            if connector_name not in self.project.unloaded_connectors:
                hint = did_you_mean(connector_name, self.project.connectors)
                self.report(loc, f"unknown connector '{connector_name}'", hint)
            return None
        operations = connector.config.operations
        if operation and operation not in operations:
            hint = did_you_mean(operation, operations) or (
                f"known: {', '.join(operations)}" if operations else None
            )
            self.report(loc, f"connector '{connector_name}' has no operation '{operation}'", hint)
            return None
        if not operation and not has_path:
            self.report(loc, "a call needs a `path` or a named operation")
        if operation:
            self._operation_vars(loc, connector_name, operation, operations[operation])
        return operations.get(operation) if operation else None

    def _operation_vars(self, loc: Loc, connector: str, name: str, operation: Any) -> None:
        """The `vars.X` a named operation reads come from the calling binding: each must be defined."""
        for _, template in model_templates(operation):
            for _leaf, key, hint in self._undefined_vars(template):
                self.report(
                    loc,
                    f"operation '{connector}.{name}' reads 'vars.{key}', which binding "
                    f"'{self.entry.binding}' does not define",
                    hint,
                )

    def steps(self, loc: Loc, steps: list[Any], scope: set[str]) -> None:
        for index, step in enumerate(steps):
            step.check(self, loc + (index,), scope)
            step.check_handlers(self, loc + (index,), scope)
            if step.name:
                scope.add(step.name)


OPERATION_SCOPE = frozenset({"args", "vars"})
"""What a named operation's templates read: its `args`, and the `vars` of the binding that calls it."""


def model_templates(model: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Template | PathTemplate]]:
    """Every template of a config model (an operation and its verify, a pipeline with its source,
    steps, handlers and reply), with its YAML location: fields by their YAML name, lists and
    mappings walked."""
    if isinstance(model, Template | PathTemplate):
        yield loc, model
    elif isinstance(model, BaseModel):
        for name, info in type(model).model_fields.items():
            yield from model_templates(getattr(model, name), loc + (info.alias or name,))
    elif isinstance(model, list | tuple):
        for index, item in enumerate(model):
            yield from model_templates(item, loc + (index,))
    elif isinstance(model, dict):
        for key, item in model.items():
            yield from model_templates(item, loc + (key,))


def _check_operations(project: Project, found: list[Diagnostic]) -> None:
    """An operation's templates read only `args` and `vars`: whatever else the calling step has in
    scope differs from one caller to the next."""
    for connector, entry in project.connectors.items():
        for name, operation in entry.config.operations.items():
            for loc, template in model_templates(operation):
                for unknown in sorted(template.names - OPERATION_SCOPE):
                    leaf = next(leaf for leaf in template.leaves if unknown in leaf.names)
                    found.append(
                        entry.source.diagnostic(
                            ("operations", name) + loc + leaf.path,
                            f"operation '{connector}.{name}' reads '{unknown}': an operation's templates "
                            "see only `args` and the calling binding's `vars`",
                            hint="pass it in the call's `args`",
                        )
                    )


def _literal(node: Any, variables: Any) -> tuple[Any, str]:
    """The value of a constant or of a `vars.a.b` path written out in the binding's vars, and where it
    is written (`"vars.a.b"`, `""` for a constant); (None, "") for anything else."""
    if isinstance(node, nodes.Const):
        return node.value, ""
    keys: list[str] = []
    while isinstance(node, nodes.Getattr):
        keys.insert(0, node.attr)
        node = node.node
    if not keys or not (isinstance(node, nodes.Name) and node.name == "vars"):
        return None, ""
    value = variables
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None, ""
        value = value[key]
    return value, f"vars.{'.'.join(keys)}"


def check_references(project: Project) -> list[Diagnostic]:
    """Every cross-file finding of a loaded project."""
    found: list[Diagnostic] = []
    _check_operations(project, found)
    routes: dict[str, PipelineEntry] = {}
    for entry in project.pipelines.values():
        pipeline = entry.pipeline
        checker = _Checker(project, entry, found)
        source = pipeline.source
        if isinstance(source, WebhookSource):
            other = routes.get(source.path)
            if other is not None:
                checker.report(
                    entry.loc + ("source", "path"),
                    f"webhook route {source.path} is already used by pipeline "
                    f"'{other.pipeline.name}' ({other.source.file})",
                )
            else:
                routes[source.path] = entry
        elif isinstance(source, PollSource):
            target = source.connector + (f".{source.operation}" if source.operation else "")
            # a connector that exists: what is found is about the operation, located there
            named = source.operation and source.connector in project.connectors
            checker.call_target(
                entry.loc + ("source", "operation" if named else "connector"), target, has_path=True
            )
            scope = {"cursor", "vars"}
            checker.steps(entry.loc + ("source", "steps"), source.steps, scope)
            for field in ("path", "query", "body", "args"):
                checker.names(entry.loc + ("source", field), getattr(source, field), scope)
                if source.cursor is None:
                    checker.no_cursor(entry.loc + ("source", field), getattr(source, field))
        scope = set(_BASE_SCOPE)
        checker.steps(entry.loc + ("steps",), pipeline.steps, scope)
        checker.names(entry.loc + ("reply", "body"), pipeline.reply.body, scope)
        if pipeline.on_error is not None:
            checker.names(entry.loc + ("on_error", "body"), pipeline.on_error.body, scope | {"error"})
    for test in project.tests:
        case = test.case
        unloaded = case.pipeline in project.unloaded_pipelines or test.binding in project.unloaded_bindings
        if case.pipeline not in project.pipelines and not unloaded:
            found.append(
                test.source.diagnostic(
                    test.loc + ("pipeline",),
                    f"unknown pipeline '{case.pipeline}'",
                    hint=did_you_mean(case.pipeline, project.pipelines),
                )
            )
        for index, response in enumerate(case.responses):
            name = response.connector
            if name not in project.connectors and name not in project.unloaded_connectors:
                found.append(
                    test.source.diagnostic(
                        test.loc + ("responses", index, "connector"),
                        f"unknown connector '{name}'",
                        hint=did_you_mean(name, project.connectors),
                    )
                )
        if case.event_file is not None:
            problem = _event_file_problem(test)
            if problem is not None:
                found.append(test.source.diagnostic(test.loc + ("event_file",), problem))
    return found


def _event_file_problem(test: TestEntry) -> str | None:
    """Why a case's `event_file` cannot be read as `mesbridge test` reads it (missing, not JSON)."""
    try:
        test.event()
    except FileNotFoundError:
        return f"event file not found: {test.case.event_file}"
    except (OSError, ValueError) as exc:
        return f"cannot read event file {test.case.event_file}: {exc}"
    return None


def path_templates(project: Project) -> Iterator[tuple[Any, Loc, PathTemplate]]:
    """Every URL path template of a loaded project, with its file (`source`) and YAML location: poll
    sources, call steps and their verify lookups, connector operations and theirs."""
    from engine.pipeline.executor import step_ids

    for entry in project.pipelines.values():
        source = entry.pipeline.source
        if isinstance(getattr(source, "path", None), PathTemplate):
            yield entry.source, entry.loc + ("source", "path"), source.path
        for step, where in step_ids(entry.pipeline.steps):
            loc = entry.loc + _loc_of(where)
            path = getattr(step, "path", None)
            if isinstance(path, PathTemplate):
                yield entry.source, loc + ("path",), path
            verify = getattr(step, "verify", None)
            if verify is not None and isinstance(verify.path, PathTemplate):
                yield entry.source, loc + ("verify", "path"), verify.path
    for connector in project.connectors.values():
        for name, operation in connector.config.operations.items():
            yield connector.source, ("operations", name, "path"), operation.path
            if operation.verify is not None and operation.verify.path is not None:
                yield connector.source, ("operations", name, "verify", "path"), operation.verify.path


def _loc_of(step_id: str) -> Loc:
    """`steps[0].cases.add[2]` as a YAML location: ("steps", 0, "cases", "add", 2)."""
    loc: list[Any] = []
    for part in step_id.split("."):
        name, _, rest = part.partition("[")
        loc.append(name)
        if rest:
            loc.append(int(rest.rstrip("]")))
    return tuple(loc)
