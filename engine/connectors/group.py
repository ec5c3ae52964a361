"""`Connectors`: every connector of a config root, built from its configs and closed together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from engine.redaction import Redactor

from .connector import CallRecord, Connector
from .models import ConnectorConfig
from .transports import Transport

__all__ = ["Connectors"]

TransportFactory = Callable[[str], Transport | None]


class Connectors(Mapping[str, Connector]):
    """The connectors of one config root, by name, sharing one redactor and one call hook."""

    def __init__(
        self,
        configs: Mapping[str, ConnectorConfig],
        *,
        environ: Mapping[str, str] | None = None,
        transport: Transport | TransportFactory | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        redactor: Redactor | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.redactor = redactor if redactor is not None else Redactor()
        self._connectors: dict[str, Connector] = {}
        for name, config in configs.items():
            chosen = transport(name) if callable(transport) else transport
            self._connectors[name] = Connector(
                name,
                config,
                environ=environ,
                transport=chosen,
                sleep=sleep,
                clock=clock,
                redactor=self.redactor,
                on_call=on_call,
            )

    def __getitem__(self, name: str) -> Connector:
        try:
            return self._connectors[name]
        except KeyError:
            known = ", ".join(sorted(self._connectors)) or "none"
            raise KeyError(f"unknown connector {name!r}; known: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._connectors)

    def __len__(self) -> int:
        return len(self._connectors)

    async def aclose(self) -> None:
        """Close every connector's connections."""
        await asyncio.gather(*(c.aclose() for c in self._connectors.values()))
