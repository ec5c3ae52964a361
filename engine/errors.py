"""The exceptions mesbridge raises, and what the caller sees of each.

    MesbridgeError
    ├── ConfigError               a config root that does not load; carries Diagnostics
    ├── SchemaFileError           a payload schema file that is missing, not JSON or outside the subset
    ├── MissingVariableError      a ${VAR} needed now and not set
    ├── ExpressionError           a template or JMESPath failed on this event
    │   ├── TemplateLimitError    a template would build a value over a documented size limit
    │   └── PathValueError        a value cannot be put into a URL path as data
    ├── StartupError              `mesbridge run` cannot start; the message says what to do
    ├── StoreError                the state store failed (also: unreachable, locked too long)
    │   ├── LeaseLostError        another worker took the job; this outcome was not recorded
    │   └── StoreMissingError     no store where the URL points (a SQLite file); none was created
    ├── EventConflict             a known event id given for a different event; nothing was queued
    ├── RequestRejected           an inbound request refused with a 4xx before any pipeline ran
    ├── TransportError            one HTTP attempt failed below the request path (internal)
    │   ├── NotSent               nothing reached the system: connect refused, DNS, TLS, pool wait
    │   │   ├── CertificateRefused    its TLS certificate was refused: not transient
    │   │   └── CaFileUnloadable      the connector's tls_ca_file cannot be loaded: not transient
    │   └── NoReply               the request went out and no reply came: read timeout, reset
    └── PipelineError             a pipeline run failed; `status` and `message` answer the caller
        ├── DeliberateFailure     a `fail:` step stopped the pipeline on purpose
        ├── NotFoundError         a lookup found nothing and `missing` said to fail
        └── ConnectorError        an external system call failed
            ├── BusinessError     the system answered and refused (never retried)
            ├── TransientError    not applied: not sent, or refused unapplied (429, 503); retried, then raised
            │   ├── ListingChanged    a listing paged by offset changed between two pages; read it again
            │   └── DeadlineExceeded  the deadline passed between attempts
            ├── NotSentError      nothing was sent, and trying again cannot help (a certificate refused,
            │                     a tls_ca_file that cannot be loaded)
            ├── UncertainError    the system may have applied it (500, 502, 504, a lost reply): not repeated
            └── AuthError         the login itself failed

The CLI turns every one into a message and an exit code; the service into a reply. None becomes a
traceback for a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar


class MesbridgeError(Exception):
    """Base class of every error mesbridge raises on purpose."""


class ConfigError(MesbridgeError):
    """The config root has findings; `diagnostics` lists each with its location."""

    def __init__(self, diagnostics: list[Any]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        super().__init__(f"{len(diagnostics)} config error(s)" + (f"; first: {first}" if first else ""))


class SchemaFileError(MesbridgeError):
    """A payload schema file that is missing, not JSON, or uses what the validator does not know."""


class MissingVariableError(MesbridgeError):
    """A `${NAME}` needed now and not set, or a `${file:PATH}` that cannot be read."""

    def __init__(self, name: str, where: str = "", message: str = "") -> None:
        self.name = name
        suffix = f" (needed by {where})" if where else ""
        super().__init__(message or f"environment variable {name} is not set{suffix}")


class ExpressionError(MesbridgeError):
    """A template or JMESPath expression failed while evaluating an event.

    The message is for the operator: the reason, and the field of the value where it happened. It never
    quotes the template; `template` (its source) and `where` (the field) locate it for the integrator.
    """

    def __init__(self, message: str, *, template: str | None = None, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.template = template
        self.where = where


class TemplateLimitError(ExpressionError):
    """A template would build a string, list or number over a documented limit; nothing large was built."""


class PathValueError(ExpressionError):
    """A value cannot be put into a URL path as one segment's data (a dot segment, a lone surrogate)."""


class StartupError(MesbridgeError):
    """The service cannot start; the message says why and what to do."""


class StoreError(MesbridgeError):
    """The state store could not do what was asked (also: database unreachable, locked too long)."""


class EventConflict(MesbridgeError):
    """`Store.enqueue` was given a known event id for an event whose content differs from the one it
    holds under that id (two events share an idempotency key): nothing was queued."""

    def __init__(self, event_id: str, enqueued_at: datetime) -> None:
        super().__init__(
            f"event id {event_id} names a different event, accepted {enqueued_at:%Y-%m-%d %H:%M:%S}"
        )
        self.event_id = event_id
        self.enqueued_at = enqueued_at


class LeaseLostError(StoreError):
    """The job's lease was taken by another worker; the caller's outcome was not recorded."""


class StoreMissingError(StoreError):
    """`Store.check_schema` found no store where the URL points (`where`: a SQLite file's absolute
    path) and created none: only `migrate` (`mesbridge run`) creates a store."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"{where} does not exist")


class RequestRejected(MesbridgeError):
    """An inbound request refused before any pipeline ran; `status` and `message` are the reply."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class TransportError(MesbridgeError):
    """One HTTP attempt failed before a reply was read. Transports raise it; the request path
    classes it and never lets it reach a caller."""

    sent: ClassVar[bool]
    """True when the request may have reached the system."""


class NotSent(TransportError):
    """Nothing reached the system: connection refused, DNS, TLS, a connect or pool timeout."""

    sent = False


class CertificateRefused(NotSent):
    """Nothing was sent: the system's TLS certificate was refused (an unknown CA, another host name,
    expired). Not transient: it is refused again until the certificate or the connector changes."""


class CaFileUnloadable(NotSent):
    """Nothing was sent: the connector's `tls_ca_file` cannot be read or is not PEM certificates. Not
    transient: a configuration error, the same at every attempt until the file or the connector is
    fixed."""


class NoReply(TransportError):
    """The request was sent (or may have been) and no reply came: a read timeout, a reset."""

    sent = True


class PipelineError(MesbridgeError):
    """A pipeline run failed. `status` and `message` are what the caller is answered.

    `settled`: the answer stands for a repeat of the same event (a refusal, a `fail:`, an outcome that
    is unknown and must not be sent blindly again), so an idempotent webhook keeps it as its reply.
    `retryable`: nothing was applied and trying again later may succeed, so a queued event is retried.
    """

    kind: ClassVar[str] = "error"
    default_status: ClassVar[int] = 422
    settled: ClassVar[bool] = True
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.default_status


class DeliberateFailure(PipelineError):
    """A `fail:` step stopped the pipeline with a message of the mapping's own."""

    kind = "fail"


class NotFoundError(PipelineError):
    """A lookup found nothing and its `missing` said to fail."""

    kind = "not_found"
    default_status = 404


class ConnectorError(PipelineError):
    """A call to an external system failed."""

    kind = "connector"
    default_status = 502
    settled = False

    def __init__(
        self,
        message: str,
        *,
        connector: str = "",
        status: int | None = None,
        http_status: int | None = None,
        body: Any = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, status)
        self.connector = connector
        self.http_status = http_status
        self.body = body
        self.attempts = attempts


class BusinessError(ConnectorError):
    """The external system answered and refused the request. Never retried."""

    kind = "business"
    default_status = 422
    settled = True


class TransientError(ConnectorError):
    """After every allowed attempt, the request was not applied (not sent, or refused unapplied), or
    it may have been but repeating it applies nothing more (a read, an idempotent or keyed write):
    sending the event again later is safe."""

    kind = "transient"
    default_status = 502
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after
        """Seconds the system asked to wait (Retry-After), when it did."""


class ListingChanged(TransientError):
    """A listing paged by offset changed between two of its pages (a record moved past the page
    boundary, so a record behind it may have been skipped): what was read before the change is
    whole, the rest must be read again."""

    kind = "listing_changed"


class DeadlineExceeded(TransientError):
    """The retry deadline or the pipeline's deadline passed with no request in flight."""

    kind = "deadline"
    default_status = 504


class NotSentError(ConnectorError):
    """Nothing reached the system, and trying again cannot help until its cause is fixed (a TLS
    certificate refused): not retried, and not kept as an idempotent webhook's reply. Sending the event
    again after the fix is safe."""

    kind = "not_sent"
    default_status = 502


class UncertainError(ConnectorError):
    """The system may have applied the request: a 500, 502 or 504, a reply that never came.

    It is repeated only when the call is safe to repeat (an idempotent method, `idempotent: true`,
    an idempotency key, or a `verify` lookup); otherwise the caller is told the outcome is unknown.
    """

    kind = "uncertain"
    default_status = 502
    settled = True


class AuthError(ConnectorError):
    """Logging in to the external system failed."""

    kind = "auth"
    default_status = 502
