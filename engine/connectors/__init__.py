"""The generic HTTP connector, configured entirely by YAML (see docs/connectors.md).

Names are imported on first use, so validating a config (`mesbridge check`) never loads the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth import AUTH_KINDS, AuthConfig
    from .client import CallRecord, Connector, Response, encode_query
    from .envelope import EnvelopeConfig
    from .models import ConnectorConfig, OperationConfig
    from .pagination import PAGINATORS, PaginationConfig
    from .registry import Connectors
    from .retry import RetryConfig

_WHERE = {
    "AUTH_KINDS": "auth",
    "AuthConfig": "auth",
    "CallRecord": "client",
    "Connector": "client",
    "Response": "client",
    "encode_query": "client",
    "EnvelopeConfig": "envelope",
    "ConnectorConfig": "models",
    "OperationConfig": "models",
    "PAGINATORS": "pagination",
    "PaginationConfig": "pagination",
    "Connectors": "registry",
    "RetryConfig": "retry",
}

__all__ = [
    "AUTH_KINDS",
    "PAGINATORS",
    "AuthConfig",
    "CallRecord",
    "Connector",
    "ConnectorConfig",
    "Connectors",
    "EnvelopeConfig",
    "OperationConfig",
    "PaginationConfig",
    "Response",
    "RetryConfig",
    "encode_query",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
