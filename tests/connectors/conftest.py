"""Fixtures for connector tests: fake time and a connector over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from engine.connectors import Connector
from tests.connectors.connector_kit import FakeTime, config


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make(fake_time: FakeTime) -> Callable[..., Connector]:
    """make(handler, **config) -> Connector over httpx.MockTransport with fake time, no jitter."""

    def build(
        handler: Callable[[httpx.Request], Any], environ: dict[str, str] | None = None, **fields: Any
    ) -> Connector:
        return Connector(
            "erp",
            config(**fields),
            environ=environ or {},
            transport=httpx.MockTransport(handler),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            rng=lambda: 1.0,
        )

    return build
