"""`call:` calls a connector, directly or through one of its named operations.

A write can say how it is protected against being applied twice when an attempt's outcome is
uncertain (see `engine.connectors.retry`): `idempotent: true` when repeating it changes nothing more,
or `verify`, a lookup run before it is sent again that finds what the uncertain attempt created and
uses it as the result. `missing` turns "not there" (404, or an empty result) into a value or a failure.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping
from time import monotonic
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.connectors.models import VerifyConfig
from engine.errors import BusinessError, NotFoundError, UncertainError
from engine.expressions import (
    PathTemplate,
    PathTemplateField,
    SelectionField,
    Template,
    TemplateField,
    templates_in,
)

from ._base import STEPS, Checker, Loc, Run, Scope, StepModel, Work, truthy
from .fail import as_text
from .set_values import SetStep

__all__ = ["CallStep", "Missing"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class Missing(BaseModel):
    """What a call does when the record is not there (404, or an empty/null result)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    fail: TemplateField | None = Field(default=None, description="Fail with this message")
    status: int = Field(404, ge=400, le=599)
    default: TemplateField | None = Field(default=None, description="Use this value instead")


class _Fields:
    """A request's fields, each from the spec (a call step, a verify) or else from its named operation."""

    __slots__ = ("method", "path", "constant_path", "query", "headers", "body", "args", "scoped")

    def __init__(self, spec: Any, operation: Any) -> None:
        def pick(field: str) -> Any:
            own = getattr(spec, field, None)
            return own if own is not None or operation is None else getattr(operation, field, None)

        self.method: str = spec.method or (operation.method if operation is not None else None) or "GET"
        self.path = pick("path")
        self.constant_path: str | None = "" if self.path is None else self.path.constant
        self.query = pick("query")
        self.headers = pick("headers")
        self.body = pick("body")
        self.args = getattr(spec, "args", None)
        self.scoped = self.args is not None or operation is not None
        """Whether the templates see `args` (a named operation's always do, `{}` without any)."""

    def scope(self, context: dict[str, Any]) -> dict[str, Any]:
        """The context the fields render in: with `args` when they take any."""
        if not self.scoped:
            return context
        return {**context, "args": _render(self.args, context) or {}}

    def path_in(self, scope: Mapping[str, Any]) -> str:
        if self.constant_path is not None:
            return self.constant_path
        return as_text(self.path.render(scope) or "")


class _Verify:
    """A verify lookup resolved: the connector it asks, its fields and what it reads of the answer."""

    __slots__ = ("connector", "fields", "result", "found", "anew")

    def __init__(
        self, spec: VerifyConfig, write_connector: Any, connectors: Mapping[str, Any], steps: list[Any]
    ) -> None:
        connector, operation = _target(connectors, spec.call) if spec.call else (write_connector, None)
        self.connector = connector
        self.fields = _Fields(spec, operation)
        self.result = spec.result or (operation.result if operation is not None else None)
        self.found = spec.found
        self.anew = reads_anew(spec, operation, steps)
        """What it reads that a later run reads anew (`reads_anew`): then it protects no later run."""


class _Plan:
    """What a call step resolves once per executor, when it compiles: its target and fields, how a
    repeat of it is protected, and the part of its idempotency key that names the step."""

    __slots__ = (
        "connector",
        "operation",
        "fields",
        "result",
        "paginate",
        "idempotent",
        "verify",
        "unprotected",
        "budget",
        "key",
        "sends_key",
    )

    def __init__(self, step: CallStep, scope: Any) -> None:
        connector, operation = _target(scope.connectors, step.call)
        self.connector = connector
        self.operation = operation
        self.fields = _Fields(step, operation)
        self.result = step.result or (operation.result if operation is not None else None)
        self.paginate = (
            step.paginate if step.paginate is not None else bool(getattr(operation, "paginate", False))
        )
        self.idempotent = (
            step.idempotent if step.idempotent is not None else getattr(operation, "idempotent", None)
        )
        spec = step.verify or getattr(operation, "verify", None)
        self.verify = _Verify(spec, connector, scope.connectors, scope.steps) if spec is not None else None
        self.key = f":{scope.name}:{scope.ids.get(id(step), '')}"
        self.sends_key = getattr(connector.config, "idempotency_key", None) is not None
        """Whether the connector sends an idempotency key: else the key would change nothing."""
        # every call carries an idempotency key, so whether a repeat is safe is known now
        safe = connector.safe_to_repeat(self.fields.method, self.idempotent, self.key)
        self.unprotected = not self.paginate and not safe
        """A write that must not overlap a second delivery of the event (and that an interrupted
        earlier run forbids sending again, unless a verify lookup can tell)."""
        self.budget: float = connector.config.retry.deadline
        """How long every attempt of the call may take: the connector's retry deadline."""


def _looker(run: Run, verify: _Verify, scope: dict[str, Any]) -> Callable[[], Awaitable[tuple[bool, Any]]]:
    """The verify lookup of one write, rendered in the write's own scope (its `args` included):
    whether it found the record, and what it found."""

    async def look() -> tuple[bool, Any]:
        fields = verify.fields
        lookup_scope = fields.scope(scope)
        try:
            response = await verify.connector.request(
                fields.method,
                fields.path_in(lookup_scope),
                query=_render(fields.query, lookup_scope),
                headers=_render(fields.headers, lookup_scope),
                body=_render(fields.body, lookup_scope),
                deadline=run.remaining(),
            )
        except BusinessError as exc:
            if exc.http_status == 404:
                return False, None
            raise
        value = verify.result.search(response.result) if verify.result is not None else response.result
        found = truthy(verify.found.search(value)) if verify.found is not None else truthy(value)
        return found, value

    return look


def _render(template: Template | PathTemplate | None, context: Mapping[str, Any]) -> Any:
    return None if template is None else template.render(context)


def _configured(configs: Mapping[str, Any], call: str) -> tuple[Any, Any]:
    """The connector config and the named operation (or None) that `connector[.operation]` names."""
    connector_name, _, operation_name = call.partition(".")
    config = configs.get(connector_name)
    return config, config.operations.get(operation_name) if config is not None and operation_name else None


def _target(connectors: Mapping[str, Any], call: str) -> tuple[Any, Any]:
    connector_name, _, operation_name = call.partition(".")
    connector = connectors[connector_name]
    operation = connector.config.operations.get(operation_name) if operation_name else None
    return connector, operation


def reads_anew(spec: VerifyConfig, operation: Any, steps: Iterable[Any]) -> str | None:
    """What a verify lookup reads, directly or through `set` values, that a later run of the event reads
    anew: the result of a call of the same run (a baseline such as `before`) or the time (`now()`); None
    if nothing. Such a lookup, run by a later run, may look for another record than the one the earlier
    run made. `operation` is the named operation the lookup calls, if any; `steps` the pipeline's."""
    values: dict[str, list[Template | PathTemplate]] = {}
    calls = set()
    for step in steps:
        if isinstance(step, SetStep):
            for key, template in step.set.items():
                values.setdefault(key, []).append(template)
        elif isinstance(step, CallStep) and step.name:
            calls.add(step.name)
    pending = templates_in(spec) + templates_in(operation)
    seen: set[str] = set()
    while pending:
        read = pending.pop()
        if "now" in read.globals:
            return "now()"
        for name in sorted(read.names - seen):
            seen.add(name)
            if name in calls:
                return f"`{name}`, the result of a call"
            pending.extend(values.get(name, []))
    return None


@STEPS.register(name="call")
class CallStep(StepModel):
    """Calls a connector (directly, or through one of its named operations)."""

    call: str = Field(description="Connector name, or connector.operation")
    method: Method | None = None
    path: PathTemplateField | None = Field(
        None,
        description="Path under base_url; each {{ value }} is one segment's data (`| path_raw`: as written)",
    )
    query: TemplateField | None = None
    headers: TemplateField | None = None
    body: TemplateField | None = None
    args: TemplateField | None = Field(default=None, description="Arguments of a named operation")
    result: SelectionField | None = Field(None, description="JMESPath into the response result")
    paginate: bool | None = None
    missing: Missing | None = None
    idempotent: bool | None = Field(
        None,
        description="Repeating the call changes nothing more (null: by its method, or the operation's "
        "`idempotent`): an uncertain attempt may then be repeated",
    )
    verify: VerifyConfig | None = Field(
        None,
        description="The lookup that finds what an uncertain attempt created, run before any repeat "
        "(default: the named operation's own `verify`)",
    )

    def compile(self, scope: Scope) -> Work:
        try:
            plan = _Plan(self, scope)
        except KeyError as exc:  # no such connector: each run says so, as a lookup of it would
            unknown = exc

            async def unresolved(run: Run) -> Any:
                # a fresh error each run: raising the one object again would grow its traceback by
                # every run's frames (and keep their contexts alive), and share it between runs
                raise copy.copy(unknown).with_traceback(None) from None

            return unresolved
        # what every run reads of the plan, bound once: this is every call's hot path
        connector, fields, lookup = plan.connector, plan.fields, plan.verify
        method, constant_path, scoped = fields.method, fields.constant_path, fields.scoped
        query, headers, body = fields.query, fields.headers, fields.body
        paginate, idempotent = plan.paginate, plan.idempotent
        unprotected, budget = plan.unprotected, plan.budget
        key = plan.key if plan.sends_key else None
        label = None if constant_path is None else f"{method} {constant_path}"  # what `applied` says
        select, missing = plan.result, self.missing

        async def call(run: Run) -> Any:
            context = run.context
            values = fields.scope(context) if scoped else context
            verify = None
            if lookup is not None:
                verify = _looker(run, lookup, values)
                if run.verify_first:
                    found, value = await verify()
                    if found:  # an earlier delivery applied it
                        if unprotected:
                            run.applied.append(f"{method} {fields.path_in(values)}")
                        return value
            if unprotected:
                if run.refuse_unprotected and (lookup is None or lookup.anew is not None):
                    raise self._refused(plan, fields.path_in(values))
                if run.on_write is not None:
                    # every attempt of the write ends within the connector's retry deadline and the run's
                    remaining = run.remaining()
                    await run.on_write(budget if remaining is None else min(remaining, budget))
            path = constant_path if constant_path is not None else fields.path_in(values)
            ends = run.ends
            try:
                response = await connector.request(
                    method,
                    path,
                    query=None if query is None else query.render(values),
                    headers=None if headers is None else headers.render(values),
                    body=None if body is None else body.render(values),
                    paginate=paginate,
                    idempotent=idempotent,
                    verify=verify,
                    deadline=None if ends is None else ends - monotonic(),
                    idempotency_key=None if key is None else run.event_id + key,
                )
            except BusinessError as exc:
                if missing is not None and exc.http_status == 404:
                    return self._missing(context)
                raise
            except UncertainError as exc:  # the operator must know which write to look for
                if not exc.message.endswith(self._which()):
                    exc.message = f"{exc.message}{self._which()}"
                    exc.args = (exc.message,)
                raise
            if unprotected:  # applied (or found applied by its verify): a rerun would send it again
                run.applied.append(label or f"{method} {path}")
            if response.verified:
                return response.result
            result = response.result
            if select is not None:
                result = select.search(result)
            if missing is not None and (result is None or result == []):
                return self._missing(context)
            return result

        return call

    def _refused(self, plan: _Plan, path: str) -> UncertainError:
        """Why a write nothing protects is not sent again after an earlier delivery stopped mid-run."""
        connector, verify = plan.connector.name, plan.verify
        lookup = (
            "has no verify lookup"
            if verify is None
            else f"has a verify lookup that reads {verify.anew}, which this delivery read anew,"
        )
        return UncertainError(
            f"outcome unknown: an earlier delivery of this event stopped mid-run, and {plan.fields.method} "
            f"{path} on {connector} {lookup} and is not idempotent, so it is not sent again. Check "
            f"{connector}, then replay the event with --force if it is not there{self._which()}",
            connector=connector,
        )

    def _which(self) -> str:
        """Which call an uncertain outcome is of, for the operator: one path (an RPC endpoint) may serve
        every write of a system, the step's name and target tell them apart."""
        return f" (step {self.name}: {self.call})" if self.name else f" (call {self.call})"

    def describe(self, connectors: Mapping[str, Any]) -> str:
        """`METHOD path` of the call as written, from the step or its named operation."""
        method, operation, _ = self._resolved(connectors)
        path = self.path if self.path is not None else getattr(operation, "path", None)
        return f"{method} {path.source if path is not None else self.call}"

    def _resolved(self, connectors: Mapping[str, Any]) -> tuple[str, Any, Any]:
        config, operation = _configured(connectors, self.call)
        method = (self.method or (operation.method if operation is not None else None) or "GET").upper()
        return method, operation, config

    def protection(self, connectors: Mapping[str, Any], *, verify: bool = True) -> str | None:
        """What makes repeating this call safe, from the connector configs: `read` (an idempotent
        method), `idempotent`, `verify` or `idempotency key`; None for a write nothing protects.
        With `verify` False, what protects it apart from a verify lookup."""
        method, operation, config = self._resolved(connectors)
        idempotent = (
            self.idempotent if self.idempotent is not None else getattr(operation, "idempotent", None)
        )
        if verify and self.verify_spec(connectors) is not None:
            return "verify"
        if idempotent is not None:
            return "idempotent" if idempotent else None
        if method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
            return "read" if method in ("GET", "HEAD", "OPTIONS") else "idempotent"
        if config is not None and config.idempotency_key is not None:
            return "idempotency key"
        return None

    def verify_spec(self, connectors: Mapping[str, Any]) -> VerifyConfig | None:
        """The verify lookup of this call: its own, else its named operation's (from the configs)."""
        _, operation, _ = self._resolved(connectors)
        return self.verify or getattr(operation, "verify", None)

    def verify_reads_anew(self, connectors: Mapping[str, Any], steps: Iterable[Any]) -> str | None:
        """What this call's verify lookup reads that a later run reads anew (`reads_anew`), from the
        configs and the pipeline's `steps`; None when it reads nothing so, or has no lookup."""
        spec = self.verify_spec(connectors)
        if spec is None:
            return None
        _, operation = _configured(connectors, spec.call) if spec.call else (None, None)
        return reads_anew(spec, operation, steps)

    def _missing(self, context: dict[str, Any]) -> Any:
        missing = self.missing
        assert missing is not None
        if missing.fail is not None:
            raise NotFoundError(as_text(missing.fail.render(context)), missing.status)
        return missing.default.render(context) if missing.default is not None else None

    def check(self, checker: Checker, loc: Loc, scope: set[str]) -> None:
        checker.call_target(loc + ("call",), self.call, has_path=self.path is not None)
        call_scope = scope | {"args"} if self.args is not None or "." in self.call else scope
        for field in ("path", "query", "headers", "body"):
            checker.names(loc + (field,), getattr(self, field), call_scope)
        checker.names(loc + ("args",), self.args, scope)
        if self.missing is not None:
            checker.names(loc + ("missing", "fail"), self.missing.fail, scope)
            checker.names(loc + ("missing", "default"), self.missing.default, scope)
        if self.verify is not None:
            verify = self.verify
            here = loc + ("verify",)
            if verify.call is not None:
                checker.call_target(here + ("call",), verify.call, has_path=verify.path is not None)
            elif verify.path is None:
                checker.call_target(here, self.call.partition(".")[0], has_path=False)
            verify_scope = scope | {"args"} if verify.args is not None else scope
            for field in ("path", "query", "headers", "body"):
                checker.names(here + (field,), getattr(verify, field), verify_scope)
            checker.names(here + ("args",), verify.args, scope)
