"""`call:` calls a connector, directly or through one of its named operations.

A write can say how it is protected against being applied twice when an attempt's outcome is
uncertain (see `engine.connectors.retry`): `idempotent: true` when repeating it changes nothing more,
or `verify`, a lookup run before it is sent again that finds what the uncertain attempt created and
uses it as the result. `missing` turns "not there" (404, or an empty result) into a value or a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.connectors.models import VerifyConfig
from engine.errors import BusinessError, NotFoundError, UncertainError
from engine.expressions import PathTemplate, PathTemplateField, SelectionField, Template, TemplateField

from ._base import STEPS, Checker, Loc, Run, StepModel, truthy
from .fail import as_text

__all__ = ["CallStep", "Missing"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class Missing(BaseModel):
    """What a call does when the record is not there (404, or an empty/null result)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    fail: TemplateField | None = Field(default=None, description="Fail with this message")
    status: int = Field(404, ge=400, le=599)
    default: TemplateField | None = Field(default=None, description="Use this value instead")


class _Request:
    """A call's request fields, each from the step or else from the named operation."""

    def __init__(self, spec: Any, operation: Any, context: dict[str, Any]) -> None:
        self.spec = spec
        self.operation = operation
        args = getattr(spec, "args", None)
        self.scope = context
        if args is not None or operation is not None:
            self.scope = {**context, "args": _render(args, context) or {}}

    def pick(self, field: str) -> Any:
        own = getattr(self.spec, field, None)
        if own is not None:
            return own
        return getattr(self.operation, field, None) if self.operation is not None else None

    def render(self, field: str) -> Any:
        return _render(self.pick(field), self.scope)

    @property
    def method(self) -> str:
        return self.spec.method or (self.operation.method if self.operation is not None else None) or "GET"

    @property
    def path(self) -> str:
        return as_text(self.render("path") or "")


def _render(template: Template | PathTemplate | None, context: Mapping[str, Any]) -> Any:
    return None if template is None else template.render(context)


def _target(run: Run, call: str) -> tuple[Any, Any]:
    connector_name, _, operation_name = call.partition(".")
    connector = run.connectors[connector_name]
    operation = connector.config.operations.get(operation_name) if operation_name else None
    return connector, operation


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

    async def run(self, run: Run) -> Any:
        connector, operation = _target(run, self.call)
        request = _Request(self, operation, run.context)
        spec = self.verify or getattr(operation, "verify", None)
        verify = self._verifier(run, connector, spec, request.scope) if spec is not None else None
        if verify is not None and run.verify_first:
            found, value = await verify()
            if found:
                return value
        paginate = self.paginate if self.paginate is not None else bool(getattr(operation, "paginate", False))
        idempotent = (
            self.idempotent if self.idempotent is not None else getattr(operation, "idempotent", None)
        )
        options = run.call_options(self)
        method = request.method
        if run.refuse_unprotected and verify is None and not paginate:
            if not connector.safe_to_repeat(method, idempotent, options.get("idempotency_key")):
                raise UncertainError(
                    f"outcome unknown: an earlier delivery of this event stopped mid-run, and {method} "
                    f"{request.path} on {connector.name} has no verify lookup and is not idempotent, so it "
                    f"is not sent again. Check {connector.name}, then replay the event with --force if "
                    "it is not there",
                    connector=connector.name,
                )
        if not paginate and not connector.safe_to_repeat(method, idempotent, options.get("idempotency_key")):
            # every attempt of the write ends within the connector's retry deadline and the run's
            remaining, own = options.get("deadline"), connector.config.retry.deadline
            await run.before_write(own if remaining is None else min(remaining, own))
        try:
            response = await connector.request(
                method,
                request.path,
                query=request.render("query"),
                headers=request.render("headers"),
                body=request.render("body"),
                paginate=paginate,
                idempotent=idempotent,
                verify=verify,
                **options,
            )
        except BusinessError as exc:
            if self.missing is not None and exc.http_status == 404:
                return self._missing(run.context)
            raise
        if response.verified:
            return response.result
        result = response.result
        selector = self.result or (operation.result if operation is not None else None)
        if selector is not None:
            result = selector.search(result)
        if self.missing is not None and (result is None or result == []):
            return self._missing(run.context)
        return result

    def describe(self, connectors: Mapping[str, Any]) -> str:
        """`METHOD path` of the call as written, from the step or its named operation."""
        method, operation, _ = self._resolved(connectors)
        path = self.path if self.path is not None else getattr(operation, "path", None)
        return f"{method} {path.source if path is not None else self.call}"

    def _resolved(self, connectors: Mapping[str, Any]) -> tuple[str, Any, Any]:
        connector_name, _, operation_name = self.call.partition(".")
        config = connectors.get(connector_name)
        operation = config.operations.get(operation_name) if config is not None and operation_name else None
        method = (self.method or (operation.method if operation is not None else None) or "GET").upper()
        return method, operation, config

    def protection(self, connectors: Mapping[str, Any]) -> str | None:
        """What makes repeating this call safe, from the connector configs: `read` (an idempotent
        method), `idempotent`, `verify` or `idempotency key`; None for a write nothing protects."""
        method, operation, config = self._resolved(connectors)
        idempotent = (
            self.idempotent if self.idempotent is not None else getattr(operation, "idempotent", None)
        )
        if self.verify is not None or getattr(operation, "verify", None) is not None:
            return "verify"
        if idempotent is not None:
            return "idempotent" if idempotent else None
        if method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
            return "read" if method in ("GET", "HEAD", "OPTIONS") else "idempotent"
        if config is not None and config.idempotency_key is not None:
            return "idempotency key"
        return None

    def _verifier(
        self, run: Run, write_connector: Any, spec: VerifyConfig, scope: dict[str, Any]
    ) -> Callable[[], Awaitable[tuple[bool, Any]]]:
        """The verify lookup, rendered in the write's own scope (its `args` included)."""

        async def look() -> tuple[bool, Any]:
            connector, operation = _target(run, spec.call) if spec.call else (write_connector, None)
            request = _Request(spec, operation, scope)
            try:
                response = await connector.request(
                    request.method,
                    request.path,
                    query=request.render("query"),
                    headers=request.render("headers"),
                    body=request.render("body"),
                    deadline=run.call_options(self).get("deadline"),
                )
            except BusinessError as exc:
                if exc.http_status == 404:
                    return False, None
                raise
            selector = spec.result or (operation.result if operation is not None else None)
            value = selector.search(response.result) if selector is not None else response.result
            found = truthy(spec.found.search(value)) if spec.found is not None else truthy(value)
            return found, value

        return look

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
