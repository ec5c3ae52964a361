"""The connector config: one external system per `connectors/<name>.yaml`.

String values may hold `${VAR}` / `${VAR:-default}`; they are kept raw here and resolved when the
connector is used. `operations` are named request templates that the pipeline executor renders.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.expressions import PathTemplateField, SelectionField, TemplateField

from .auth import AuthConfig
from .auth.none import NoAuthConfig
from .envelope import EnvelopeConfig
from .pagination import PaginationConfig
from .pagination.none import NoPagination
from .retry import RetryConfig

__all__ = [
    "ConnectorConfig",
    "IdempotencyKeyConfig",
    "OperationConfig",
    "PoolConfig",
    "TimeoutConfig",
    "VerifyConfig",
]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class TimeoutConfig(BaseModel):
    """Per-attempt timeouts."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(5.0, gt=0, description="Seconds to establish a connection.")
    read: float = Field(30.0, gt=0, description="Seconds to wait for the reply (also used for writing).")


class PoolConfig(BaseModel):
    """The connection pool of the connector (one per connector)."""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(100, ge=1, description="Most connections open at once.")


class IdempotencyKeyConfig(BaseModel):
    """A request header the system deduplicates on (e.g. `Idempotency-Key`)."""

    model_config = ConfigDict(extra="forbid")

    header: str = Field("Idempotency-Key", description="The header carrying the key.")


class VerifyConfig(BaseModel):
    """A lookup that finds the record an uncertain write created; its result becomes the step's."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    call: str | None = Field(
        None, description="Connector or connector.operation; default: the step's connector"
    )
    method: Method = "GET"
    path: PathTemplateField | None = None
    query: TemplateField | None = None
    headers: TemplateField | None = None
    body: TemplateField | None = None
    args: TemplateField | None = Field(default=None, description="Arguments of a named operation")
    result: SelectionField | None = Field(
        None, description="JMESPath into the lookup's result: the value the write's result would have been"
    )
    found: SelectionField | None = Field(
        None,
        description="JMESPath predicate over that value meaning 'the write was applied'; default: not empty",
    )


class OperationConfig(BaseModel):
    """A named request template; rendered by the pipeline executor with an `args` variable."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", description="What the operation does.")
    method: Method = Field("GET", description="HTTP method.")
    path: PathTemplateField = Field(
        description="Path under base_url; each {{ value }} is one segment's data (`| path_raw`: as written)"
    )
    query: TemplateField | None = Field(None, description="Query parameters; templates allowed in values.")
    headers: TemplateField | None = Field(None, description="Extra headers; templates allowed in values.")
    body: TemplateField | None = Field(None, description="JSON body; templates allowed in leaves.")
    result: SelectionField | None = Field(None, description="JMESPath into the call's result.")
    paginate: bool = Field(False, description="Read every page and return the list of all items.")
    idempotent: bool | None = Field(
        None,
        description="Whether repeating the call changes nothing more (null: by its method: GET, HEAD, "
        "OPTIONS, PUT and DELETE are). An uncertain attempt is repeated only when it does not.",
    )
    verify: VerifyConfig | None = Field(
        None,
        description="The lookup that finds what an uncertain attempt of this operation created; its "
        "templates see the operation's `args`. A step can give its own.",
    )


class ConnectorConfig(BaseModel):
    """One external system: where it is, how to log in, how it answers, how to retry and page."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="Connector name; defaults to the file name.")
    description: str = Field("", description="What the system is.")
    base_url: str = Field(description="Base URL every path is joined to; may be `${VAR:-default}`.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent with every call.")
    content_type: Literal["application/json", "text/plain"] = Field(
        "application/json", description="Content type of request bodies; the body is JSON either way."
    )
    timeout: TimeoutConfig = Field(
        default_factory=lambda: TimeoutConfig.model_validate({}), description="Per-attempt timeouts."
    )
    pool: PoolConfig = Field(
        default_factory=lambda: PoolConfig.model_validate({}), description="Connection pool."
    )
    tls_verify: bool = Field(True, description="Verify TLS certificates.")
    tls_ca_file: str | None = Field(
        None, description="A PEM file of CA certificates to trust instead of the system's."
    )
    auth: AuthConfig = Field(
        default_factory=lambda: NoAuthConfig.model_validate({}),
        description="How to authenticate; chosen by `kind`.",
    )
    envelope: EnvelopeConfig = Field(
        default_factory=lambda: EnvelopeConfig.model_validate({}), description="Success, result and errors."
    )
    retry: RetryConfig = Field(
        default_factory=lambda: RetryConfig.model_validate({}), description="Retrying transient failures."
    )
    pagination: PaginationConfig = Field(
        default_factory=lambda: NoPagination.model_validate({}), description="Paging; chosen by `kind`."
    )
    idempotency_key: IdempotencyKeyConfig | None = Field(
        None,
        description="The system deduplicates on a request header: each call sends a key derived from "
        "the event and the step, so an uncertain attempt can be repeated safely.",
    )
    operations: dict[str, OperationConfig] = Field(
        default_factory=dict, description="Named request templates pipelines can call by name."
    )
