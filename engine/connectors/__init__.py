"""The generic HTTP connector, configured entirely by YAML (see docs/connectors.md)."""

from .auth import AUTH_KINDS, AuthConfig
from .client import CallRecord, Connector, Response, encode_query
from .envelope import EnvelopeConfig
from .models import ConnectorConfig, OperationConfig
from .pagination import PAGINATORS, PaginationConfig
from .registry import Connectors
from .retry import RetryConfig

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
