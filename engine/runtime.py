"""Builds the connectors a config root needs: live ones for the service, offline ones for tests.

Offline connectors send nothing: a `MockBackend` answers, authentication is not exercised (test
cases describe mappings, not logins) and retries do not wait.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from engine.config.env import resolve
from engine.config.root import Project
from engine.connectors import Connectors
from engine.connectors.auth import NoAuthConfig
from engine.errors import MissingVariableError
from engine.redaction import Redactor, is_secret_name
from engine.testing.mock import MockBackend


def environment_redactor(environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor that knows every secret-named environment variable's value."""
    environ = os.environ if environ is None else environ
    return Redactor(value for name, value in environ.items() if is_secret_name(name))


async def _no_wait(_seconds: float) -> None:
    return None


def offline_connectors(
    project: Project, backend: MockBackend, environ: Mapping[str, str] | None = None
) -> Connectors:
    """Connectors whose every request is answered by `backend`."""
    environ = os.environ if environ is None else environ
    configs = {
        name: config.model_copy(update={"auth": NoAuthConfig(kind="none")})
        for name, config in project.connector_configs.items()
    }

    def transport(name: str) -> Any:
        try:
            base_url = str(resolve(configs[name].base_url, environ))
        except MissingVariableError:
            base_url = ""
        return backend.transport(name, base_url)

    return Connectors(
        configs, environ=environ, transport=transport, sleep=_no_wait, redactor=environment_redactor(environ)
    )


def live_connectors(
    project: Project,
    environ: Mapping[str, str] | None = None,
    *,
    on_call: Any = None,
    transport: Any = None,
) -> Connectors:
    """The connectors that really call the external systems."""
    environ = os.environ if environ is None else environ
    return Connectors(
        project.connector_configs,
        environ=environ,
        transport=transport,
        redactor=environment_redactor(environ),
        on_call=on_call,
    )
