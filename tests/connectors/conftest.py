"""Fixtures for connector tests: fake time, and connectors over the mock or the production transport.

`make(handler, **config)` builds a connector named `erp` with fake time and no jitter. The fixture is
parametrized: each test runs once behind the mock transport and once over a real loopback server
through the production transport. `make_mock` is the mock transport only, for handlers that play a
transport failure (`httpx.ConnectError`, `httpx.ReadTimeout`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.connectors import Connector
from tests.connectors.kit import (
    FakeTime,
    Handler,
    LoopbackERP,
    config,
    loopback_erp,
    mock_transport,
    on_loopback,
)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="session")
def loopback() -> Iterator[LoopbackERP]:
    with loopback_erp() as erp:
        yield erp


def _builder(fake_time: FakeTime, erp: LoopbackERP | None) -> Callable[..., Connector]:
    built: list[Connector] = []

    def build(handler: Handler, environ: dict[str, str] | None = None, **fields: Any) -> Connector:
        if erp is None:
            transport: Any = mock_transport(handler)
        else:
            erp.handler = handler
            fields = on_loopback({"base_url": "http://erp.test/api", **fields}, erp.url)
            transport = None  # the production transport
        connector = Connector(
            "erp",
            config(**fields),
            environ=environ or {},
            transport=transport,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            rng=lambda: 1.0,
        )
        built.append(connector)
        return connector

    build.built = built  # type: ignore[attr-defined]
    return build


@pytest.fixture(params=["mock", "loopback"])
async def make(request: pytest.FixtureRequest, fake_time: FakeTime) -> Any:
    """make(handler, **config) -> Connector; once per transport."""
    erp = request.getfixturevalue("loopback") if request.param == "loopback" else None
    build = _builder(fake_time, erp)
    yield build
    for connector in build.built:  # type: ignore[attr-defined]
        await connector.aclose()


@pytest.fixture
async def make_mock(fake_time: FakeTime) -> Any:
    """make_mock(handler, **config) -> Connector behind the mock transport only."""
    build = _builder(fake_time, None)
    yield build
    for connector in build.built:  # type: ignore[attr-defined]
        await connector.aclose()
