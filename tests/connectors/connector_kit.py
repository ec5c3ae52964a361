"""Helpers for connector tests: a config from a dict, mock replies, fake time."""

from __future__ import annotations

import json
from typing import Any

import httpx

from engine.connectors import ConnectorConfig


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def config(**fields: Any) -> ConnectorConfig:
    fields.setdefault("base_url", "http://erp.test/api")
    return ConnectorConfig.model_validate(fields)


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None
