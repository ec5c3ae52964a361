"""Runs one event through one pipeline: steps, calls, the reply, or the error reply.

The executor is the same in production, in `mesbridge test` and in `dry-run`; only the connectors'
transports differ. It holds no state between events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import (
    BusinessError,
    ConnectorError,
    DeadlineExceeded,
    DeliberateFailure,
    ExpressionError,
    MesbridgeError,
    MissingVariableError,
    NotFoundError,
    PipelineError,
)
from engine.expressions import Template
from engine.pipeline import models as m


class ConnectorLike(Protocol):
    """What the executor needs of a connector."""

    name: str
    config: Any

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Any = None,
        headers: Any = None,
        body: Any = None,
        paginate: bool = False,
    ) -> Any: ...


@dataclass
class Outcome:
    """The result of one run: the reply to send, and the error if the run failed."""

    status: int
    body: Any
    error: PipelineError | None = None
    skipped: bool = False
    duration: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    """Executes a pipeline against a set of connectors."""

    def __init__(
        self,
        pipeline: m.Pipeline,
        connectors: Mapping[str, ConnectorLike],
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.connectors = connectors
        self.variables = dict(variables or {})

    async def run(self, event: Any, *, deadline: float | None = None) -> Outcome:
        """Run one event; never raises for a failure the caller should hear about."""
        started = time.perf_counter()
        context: dict[str, Any] = {"event": event, "vars": self.variables}
        try:
            if self.pipeline.when is not None and not _truthy(self.pipeline.when.search(context)):
                return Outcome(200, {"skipped": True}, skipped=True, duration=time.perf_counter() - started)
            if deadline is None:
                await self._steps(self.pipeline.steps, context)
            else:
                try:
                    async with asyncio.timeout(deadline):
                        await self._steps(self.pipeline.steps, context)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"no answer within {deadline:g} s; the external system is slow or down"
                    ) from None
            reply = self.pipeline.reply
            body = reply.body.render(context) if reply.body is not None else {}
            outcome = Outcome(reply.status, body)
        except MesbridgeError as exc:
            outcome = self._error_outcome(_as_pipeline_error(exc), context)
        outcome.duration = time.perf_counter() - started
        outcome.values = context
        return outcome

    def _error_outcome(self, error: PipelineError, context: dict[str, Any]) -> Outcome:
        context["error"] = {
            "message": error.message,
            "status": error.status,
            "kind": error.kind,
            "connector": getattr(error, "connector", None),
            "http_status": getattr(error, "http_status", None),
        }
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

    async def _steps(self, steps: list[Any], context: dict[str, Any]) -> None:
        for step in steps:
            if step.when is not None and not _truthy(step.when.search(context)):
                continue
            await self._step(step, context)

    async def _step(self, step: Any, context: dict[str, Any]) -> None:
        if isinstance(step, m.SetStep):
            for key, template in step.set.items():
                context[key] = template.render(context)
            result: Any = {key: context[key] for key in step.set}
        elif isinstance(step, m.CallStep):
            result = await self._call(step, context)
        elif isinstance(step, m.SwitchStep):
            value = step.switch.search(context)
            case = _case_key(value)
            branch = step.cases.get(case) if case is not None else None
            if branch is None:
                branch = step.default
            if branch is None:
                known = ", ".join(step.cases)
                raise PipelineError(f"no case for {step.switch.source} = {value!r} (cases: {known})", 422)
            await self._steps(branch, context)
            result = value
        elif isinstance(step, m.IfStep):
            chosen = _truthy(step.if_.search(context))
            branch = step.then if chosen else (step.else_ or [])
            await self._steps(branch, context)
            result = chosen
        elif isinstance(step, m.ForEachStep):
            result = await self._for_each(step, context)
        elif isinstance(step, m.FailStep):
            raise DeliberateFailure(_text(step.fail.render(context)), step.status)
        else:  # pragma: no cover - the models admit no other step
            raise TypeError(f"unknown step {type(step).__name__}")
        if step.name:
            context[step.name] = result

    async def _for_each(self, step: m.ForEachStep, context: dict[str, Any]) -> list[Any]:
        items = step.for_each.search(context)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise ExpressionError(f"for_each {step.for_each.source!r} is not a list: {items!r}")
        if len(items) > step.limit:
            raise PipelineError(
                f"for_each {step.for_each.source!r} has {len(items)} items (limit {step.limit})"
            )
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
            await self._steps(step.steps, context)
            if step.collect is not None:
                collected.append(step.collect.render(context))
        context.pop(step.as_, None)
        context.pop("loop", None)
        return collected

    async def _call(self, step: m.CallStep, context: dict[str, Any]) -> Any:
        connector_name, _, operation_name = step.call.partition(".")
        connector = self.connectors[connector_name]
        operation = connector.config.operations.get(operation_name) if operation_name else None
        scope = context
        if step.args is not None or operation is not None:
            scope = {**context, "args": _render(step.args, context) or {}}

        def pick(name: str) -> Any:
            own = getattr(step, name)
            if own is not None:
                return own
            return getattr(operation, name, None) if operation is not None else None

        method = step.method or (operation.method if operation is not None else None) or "GET"
        path = _text(_render(pick("path"), scope) or "")
        paginate = step.paginate if step.paginate is not None else bool(getattr(operation, "paginate", False))
        try:
            response = await connector.request(
                method,
                path,
                query=_render(pick("query"), scope),
                headers=_render(pick("headers"), scope),
                body=_render(pick("body"), scope),
                paginate=paginate,
            )
        except BusinessError as exc:
            if step.missing is not None and exc.http_status == 404:
                return self._missing(step, context)
            raise
        result = response.result
        selector = step.result or (operation.result if operation is not None else None)
        if selector is not None:
            result = selector.search(result)
        if step.missing is not None and (result is None or result == []):
            return self._missing(step, context)
        return result

    def _missing(self, step: m.CallStep, context: dict[str, Any]) -> Any:
        missing = step.missing
        assert missing is not None
        if missing.fail is not None:
            raise NotFoundError(_text(missing.fail.render(context)), missing.status)
        return missing.default.render(context) if missing.default is not None else None


def _render(template: Template | None, context: Mapping[str, Any]) -> Any:
    return None if template is None else template.render(context)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return str(value)


def _case_key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return None
    return str(value)


def _truthy(value: Any) -> bool:
    """JMESPath truth: false, null, empty string/list/object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _as_pipeline_error(exc: MesbridgeError) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, MissingVariableError):
        return ConnectorError(f"configuration error: {exc}", status=500)
    return PipelineError(str(exc), 422)
