"""Service settings: `mesbridge.yaml` in the config root, overridden by `MESBRIDGE_*` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.pipeline.models import CallerAuth

SETTINGS_FILE = "mesbridge.yaml"


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
    workers: int = Field(4, ge=1, le=256, description="Queue workers per replica")
    shutdown_grace: float = Field(20.0, ge=0, description="Seconds SIGTERM waits for in-flight work")


_ENV_FIELDS = {
    "MESBRIDGE_HOST": "host",
    "MESBRIDGE_PORT": "port",
    "MESBRIDGE_STORE": "store",
    "MESBRIDGE_BINDINGS": "bindings",
    "MESBRIDGE_LOG_LEVEL": "log_level",
    "MESBRIDGE_LOG_FORMAT": "log_format",
    "MESBRIDGE_MAX_BODY_BYTES": "max_body_bytes",
    "MESBRIDGE_WORKERS": "workers",
}


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings taken from `MESBRIDGE_*` variables (comma-separated lists for bindings)."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for variable, name in _ENV_FIELDS.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        found[name] = (
            [part.strip() for part in value.split(",") if part.strip()] if name == "bindings" else value
        )
    return found
