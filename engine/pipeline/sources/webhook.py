"""`kind: webhook`: an HTTP route the MES calls (Integration Builder); the service serves it."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from engine.expressions import SelectionField

from ._base import SOURCES, SourceModel
from .caller_auth import CallerAuth

__all__ = ["VAR_REFERENCE", "WebhookSource"]

VAR_REFERENCE = re.compile(r"^\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
"""`{{ vars.NAME }}`: a value the binding's vars give when the config is loaded."""


def _seconds_or_var(schema: dict[str, Any]) -> None:
    number = {key: schema.pop(key) for key in ("type", "exclusiveMinimum") if key in schema}
    schema["anyOf"] = [number, {"type": "string", "pattern": VAR_REFERENCE.pattern}]


@SOURCES.register()
class WebhookSource(SourceModel):
    """An HTTP route the MES calls (Integration Builder)."""

    kind: Literal["webhook"]
    path: str = Field(pattern=r"^/", description="Route path, e.g. /erp/operation")
    mode: Literal["sync", "queue"] = Field(
        "sync", description="sync: the caller waits for the reply; queue: accepted, delivered by workers"
    )
    deadline: float = Field(
        25.0,
        gt=0,
        description="Seconds before a sync caller is answered 504, or `{{ vars.NAME }}`: the binding's var "
        "that holds them",
        json_schema_extra=_seconds_or_var,
    )
    auth: CallerAuth | None = Field(None, description="How callers authenticate; settings give a default")
    idempotency_key: SelectionField | None = Field(
        None, description="JMESPath over the event: a repeated key gets the stored reply"
    )
    order_key: SelectionField | None = Field(
        None, description="JMESPath over the event: events with the same key are applied in order"
    )
    schema_: str | None = Field(
        None,
        alias="schema",
        description="JSON Schema file (relative to the config root) every event must satisfy, else 422",
    )
    _deadline_var: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _deadline_from_var(cls, data: Any, handler: Any) -> Any:
        """`deadline: "{{ vars.NAME }}"` is kept as the var's name; the loader puts in its value."""
        name = None
        if isinstance(data, dict) and isinstance(data.get("deadline"), str):
            match = VAR_REFERENCE.match(data["deadline"].strip())
            if match is not None:
                name = match.group(1)
                data = {key: value for key, value in data.items() if key != "deadline"}
        source = handler(data)
        source._deadline_var = name
        return source

    @property
    def deadline_var(self) -> str | None:
        """The var the deadline is read from, when it names one."""
        return self._deadline_var
