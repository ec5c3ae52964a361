"""The exceptions mesbridge raises, and what the caller sees of each.

    MesbridgeError
    ├── ConfigError              a config root that does not load; carries Diagnostics
    ├── MissingVariableError     a ${VAR} needed now and not set
    ├── ExpressionError          a template or JMESPath failed on this event
    │   ├── TemplateLimitError   a template would build a value over a documented size limit
    │   └── PathValueError       a value cannot be put into a URL path as data
    └── PipelineError            a pipeline run failed; `status` and `message` answer the caller
        ├── FailStep             a `fail:` step stopped the pipeline on purpose
        ├── NotFoundError        a lookup found nothing and `missing` said to fail
        └── ConnectorError       an external system call failed
            ├── BusinessError    the system answered and refused (never retried)
            ├── TransientError   connect error, timeout, 408, 429, 5xx: retried, then raised
            │   └── DeadlineExceeded  the retry deadline or the pipeline deadline passed
            └── AuthError        the login itself failed

The CLI turns every one into a message and an exit code; the service into a reply. None becomes a
traceback for a user.
"""

from __future__ import annotations

from typing import Any


class MesbridgeError(Exception):
    """Base class of every error mesbridge raises on purpose."""


class ConfigError(MesbridgeError):
    """The config root has findings; `diagnostics` lists each with its location."""

    def __init__(self, diagnostics: list[Any]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        super().__init__(f"{len(diagnostics)} config error(s)" + (f"; first: {first}" if first else ""))


class MissingVariableError(MesbridgeError):
    """An environment variable referenced as ${NAME} is needed now and is not set."""

    def __init__(self, name: str, where: str = "") -> None:
        self.name = name
        suffix = f" (needed by {where})" if where else ""
        super().__init__(f"environment variable {name} is not set{suffix}")


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


class PipelineError(MesbridgeError):
    """A pipeline run failed. `status` and `message` are what the caller is answered."""

    kind = "error"
    default_status = 422

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.default_status


class FailStep(PipelineError):
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

    def __init__(
        self,
        message: str,
        *,
        connector: str = "",
        status: int | None = None,
        http_status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, status)
        self.connector = connector
        self.http_status = http_status
        self.body = body


class BusinessError(ConnectorError):
    """The external system answered and refused the request. Never retried."""

    kind = "business"
    default_status = 422


class TransientError(ConnectorError):
    """The external system could not be reached or was overloaded, after every retry."""

    kind = "transient"
    default_status = 502


class DeadlineExceeded(TransientError):
    """The retry deadline or the pipeline's deadline passed."""

    kind = "deadline"
    default_status = 504


class AuthError(ConnectorError):
    """Logging in to the external system failed."""

    kind = "auth"
    default_status = 502
