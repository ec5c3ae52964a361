"""Service settings: `mesbridge.yaml` in the config root, overridden by `MESBRIDGE_*` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.config.diagnostic import Diagnostic
from engine.errors import StoreError
from engine.pipeline.sources.caller_auth import CallerAuth

SETTINGS_FILE = "mesbridge.yaml"

ENVIRONMENT = "environment "
"""Where a finding in a `MESBRIDGE_*` variable is: `environment MESBRIDGE_STORE` (no line in a file)."""


class Delivery(BaseModel):
    """How queue workers deliver: leases, retries with exponential backoff and jitter, dead letters."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        20,
        ge=1,
        description="Deliveries before an event nothing was applied of goes to the dead letters (the "
        "default waits out about 45 minutes of an ERP outage)",
    )
    initial: float = Field(1.0, gt=0, description="Seconds before the first retry")
    multiplier: float = Field(2.0, ge=1, description="Backoff growth per attempt")
    max: float = Field(300.0, gt=0, description="Longest wait between attempts, seconds")
    jitter: bool = Field(True, description="Randomise each wait (full jitter on the upper half)")
    lease: float = Field(
        15.0,
        gt=0,
        description="Seconds a job is leased to a worker, renewed every third of it while the worker runs "
        "it; a dead worker's jobs return after it",
    )
    deadline: float = Field(
        60.0,
        gt=0,
        description="Seconds one delivery of a polled record may take, every call's attempts included "
        "(webhooks use their own `deadline`); a call is never abandoned and sent again within it",
    )
    poll_interval: float = Field(0.5, gt=0, description="Longest idle wait of a worker between claims")


class Traces(BaseModel):
    """What the service keeps of each run it handles (see docs/operations.md, Traces)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Keep a trace of every event handled (pipelines may opt out)")
    keep_hours: float = Field(168.0, gt=0, description="Traces older than this are deleted, hours")
    keep_count: int = Field(100_000, ge=1, description="At most this many traces are kept, the newest")
    max_body_bytes: int = Field(
        16_384, ge=256, description="Larger bodies (event, reply, each call's) are cut to this many bytes"
    )
    buffer: int = Field(
        10_000,
        ge=100,
        description="Traces waiting to be written; past it the oldest are dropped (and counted), never "
        "an event",
    )


class Settings(BaseModel):
    """How `mesbridge run` serves a config root."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Listen address")
    port: int = Field(8600, ge=0, le=65535, description="Listen port")
    store: str = Field("sqlite:///mesbridge.db", description="State store URL: sqlite:///… or postgresql://…")
    bindings: list[str] | None = Field(None, description="Bindings to serve; all when absent")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    webhook_auth: CallerAuth | None = Field(
        None, description="Caller authentication for webhook routes that set none of their own"
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest webhook body accepted")
    max_json_depth: int = Field(
        64, ge=1, le=500, description="Deepest nesting of objects and arrays in a webhook body"
    )
    max_integer_digits: int = Field(
        100, ge=1, le=4300, description="Most digits of an integer in a webhook body"
    )
    max_string_chars: int = Field(
        100_000, ge=1, description="Most characters of a string (or key) in a webhook body"
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's headers, from connecting or from the "
        "first byte of the request; then 408 and the connection is closed",
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a webhook request has to send its whole body; then 408"
    )
    workers: int = Field(4, ge=1, le=256, description="Queue workers per replica")
    shutdown_grace: float = Field(20.0, ge=0, description="Seconds SIGTERM waits for in-flight work")
    delivery: Delivery = Field(default_factory=Delivery, description="Queue delivery and retries")
    reload: bool = Field(True, description="Watch the config root and apply valid edits without a restart")
    traces: Traces = Field(default_factory=Traces, description="Traces of the events handled")

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        from engine.store import scheme_of

        try:
            scheme_of(value)
        except StoreError as exc:
            raise ValueError(str(exc)) from None
        return value

    poll_lease: float = Field(
        30.0,
        gt=0,
        description="Seconds a replica's poller lease lasts, renewed every third of it. When the polling "
        "replica dies, another takes its pipelines over within 4/3 of this and polls at once from the "
        "stored cursor. Keep it longer than one poll round.",
    )


_ENV_FIELDS = {
    "MESBRIDGE_HOST": "host",
    "MESBRIDGE_PORT": "port",
    "MESBRIDGE_STORE": "store",
    "MESBRIDGE_BINDINGS": "bindings",
    "MESBRIDGE_LOG_LEVEL": "log_level",
    "MESBRIDGE_LOG_FORMAT": "log_format",
    "MESBRIDGE_MAX_BODY_BYTES": "max_body_bytes",
    "MESBRIDGE_MAX_JSON_DEPTH": "max_json_depth",
    "MESBRIDGE_MAX_INTEGER_DIGITS": "max_integer_digits",
    "MESBRIDGE_MAX_STRING_CHARS": "max_string_chars",
    "MESBRIDGE_HEADER_TIMEOUT": "header_timeout",
    "MESBRIDGE_BODY_TIMEOUT": "body_timeout",
    "MESBRIDGE_WORKERS": "workers",
    "MESBRIDGE_TRACES": "traces.enabled",
}


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings taken from `MESBRIDGE_*` variables (comma-separated lists for bindings)."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for variable, name in _ENV_FIELDS.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        parsed: Any = (
            [part.strip() for part in value.split(",") if part.strip()] if name == "bindings" else value
        )
        section, _, field = name.partition(".")
        if field:
            found.setdefault(section, {})[field] = parsed
        else:
            found[name] = parsed
    return found


def with_overrides(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`data` (from mesbridge.yaml) with the `MESBRIDGE_*` overrides on top, section by section."""
    merged = dict(data)
    for name, value in environment_overrides(environ).items():
        section = merged.get(name)
        merged[name] = (
            {**section, **value} if isinstance(value, dict) and isinstance(section, dict) else value
        )
    return merged


def environment_finding(variable: str, message: str, hint: str | None = None) -> Diagnostic:
    """A finding in the `MESBRIDGE_*` variable `variable`, located at it rather than at a file."""
    return Diagnostic(ENVIRONMENT + variable, 0, 0, message, hint=hint, environment=True)


def is_settings_finding(diagnostic: Diagnostic) -> bool:
    """Whether a finding is in the settings: `mesbridge.yaml` or a `MESBRIDGE_*` variable."""
    return diagnostic.file == SETTINGS_FILE or diagnostic.file.startswith(ENVIRONMENT + "MESBRIDGE_")


def override_findings(exc: ValidationError) -> list[Diagnostic]:
    """What `Settings` refused in the `MESBRIDGE_*` overrides, one finding per variable, without the
    values: a store URL's password, say, is not repeated."""
    variables = {tuple(name.split(".")): variable for variable, name in _ENV_FIELDS.items()}
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(part) for part in error["loc"])
        named = [variable for path, variable in variables.items() if loc[: len(path)] == path]
        message = str(error["msg"]).removeprefix("Value error, ")
        if named:
            found.append(environment_finding(named[0], f"invalid setting {'.'.join(loc)}: {message}"))
        else:  # not one override's alone: where the settings are
            found.append(Diagnostic(SETTINGS_FILE, 0, 0, f"invalid setting {'.'.join(loc)}: {message}"))
    return found
