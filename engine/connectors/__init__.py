"""The generic HTTP connector, configured entirely by YAML (see docs/connectors.md).

    connector.py    the request path: auth, envelope, retry and its failure classes, paging, records
    transports/     below it, the bytes: `default` (HTTP/1.1, pooled) and `mock`
    auth/           one module per auth kind          pagination/   one module per paginator
    envelope.py     reading a reply                   retry.py      failure classes and backoff
    urls.py         joining, requoting, queries       models.py     the connector config
    group.py        every connector of a config root

Names are imported on first use, so validating a config (`mesbridge check`) never loads the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connector import CallRecord, Connector, Response
    from .group import Connectors
    from .models import ConnectorConfig, OperationConfig

_WHERE = {
    "CallRecord": "connector",
    "Connector": "connector",
    "Response": "connector",
    "Connectors": "group",
    "ConnectorConfig": "models",
    "OperationConfig": "models",
}

__all__ = ["CallRecord", "Connector", "ConnectorConfig", "Connectors", "OperationConfig", "Response"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
