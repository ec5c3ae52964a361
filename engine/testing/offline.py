"""Connectors that send nothing: a `MockBackend` answers every request, and retries do not wait.

A base URL whose variable is not set is replaced by `http://<connector>.offline`: paths are what
cases mock and expect, so a case runs without the addresses of the real systems.

Authentication is left out unless a case asks for its connectors' real auth kinds (`real_auth`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from engine.config.root import Project
from engine.connectors.auth.none import NoAuthConfig
from engine.connectors.group import Connectors
from engine.connectors.transports.mock import MockTransport
from engine.env import resolve
from engine.errors import MissingVariableError
from engine.redaction import environment_redactor
from engine.testing.mock import MockBackend

__all__ = ["offline_connectors"]


async def _no_wait(_seconds: float) -> None:
    return None


def offline_connectors(
    project: Project,
    backend: MockBackend,
    environ: Mapping[str, str] | None = None,
    *,
    real_auth: bool = False,
) -> Connectors:
    """Connectors whose every request is answered by `backend`; with `real_auth` their own auth kinds
    run too (logins are answered by the backend like any call), else auth is left out."""
    environ = os.environ if environ is None else environ
    configs = {
        name: config if real_auth else config.model_copy(update={"auth": NoAuthConfig(kind="none")})
        for name, config in project.connector_configs.items()
    }

    for name, config in configs.items():
        try:
            resolve(config.base_url, environ)
        except MissingVariableError:  # nothing is sent: a case needs no address
            configs[name] = config.model_copy(update={"base_url": f"http://{name}.offline"})

    def transport(name: str) -> MockTransport:
        return backend.transport(name, str(resolve(configs[name].base_url, environ)))

    backend.redactor = environment_redactor(environ)  # the connectors add what they resolve and obtain
    return Connectors(
        configs, environ=environ, transport=transport, sleep=_no_wait, redactor=backend.redactor
    )
