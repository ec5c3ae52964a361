"""`kind: webhook`: an HTTP route the MES calls (Integration Builder); the service serves it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.expressions import SelectionField

from ._base import SOURCES, SourceModel
from .caller_auth import CallerAuth


@SOURCES.register()
class WebhookSource(SourceModel):
    """An HTTP route the MES calls (Integration Builder)."""

    kind: Literal["webhook"]
    path: str = Field(pattern=r"^/", description="Route path, e.g. /erp/operation")
    mode: Literal["sync", "queue"] = Field(
        "sync", description="sync: the caller waits for the reply; queue: accepted, delivered by workers"
    )
    deadline: float = Field(25.0, gt=0, description="Seconds before a sync caller is answered 504")
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
