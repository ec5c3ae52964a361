"""mesbridge: a declarative integration engine between Next Plus MES and ERPs.

The library surface (docs/api.md); names are imported on first use, so `import engine` is cheap::

    from engine import load_project, Executor, Connectors

    project = load_project("path/to/root")           # never raises: project.diagnostics, project.ok
    connectors = Connectors(project.connector_configs)
    entry = project.pipelines["erp.operation"]
    variables = project.variables_for(entry.pipeline.name)
    outcome = await Executor(entry.pipeline, connectors, variables).run(event, deadline=20)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "Project": "engine.config.root",
    "load_project": "engine.config.root",
    "Diagnostic": "engine.config.diagnostic",
    "Selection": "engine.expressions",
    "Template": "engine.expressions",
    "compile_selection": "engine.expressions",
    "compile_template": "engine.expressions",
    "Executor": "engine.pipeline.executor",
    "Outcome": "engine.pipeline.executor",
    "run_pipeline_offline": "engine.testing.runner",
    "Connector": "engine.connectors.connector",
    "ConnectorConfig": "engine.connectors.models",
    "Connectors": "engine.connectors.group",
    "open_store": "engine.store",
    "AuthError": "engine.errors",
    "BusinessError": "engine.errors",
    "ConfigError": "engine.errors",
    "ConnectorError": "engine.errors",
    "DeadlineExceeded": "engine.errors",
    "DeliberateFailure": "engine.errors",
    "ExpressionError": "engine.errors",
    "MesbridgeError": "engine.errors",
    "MissingVariableError": "engine.errors",
    "NotFoundError": "engine.errors",
    "PipelineError": "engine.errors",
    "StoreError": "engine.errors",
    "TransientError": "engine.errors",
    "UncertainError": "engine.errors",
}

__all__ = [
    "__version__",
    "AuthError",
    "BusinessError",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "Connectors",
    "DeadlineExceeded",
    "DeliberateFailure",
    "Diagnostic",
    "Executor",
    "ExpressionError",
    "MesbridgeError",
    "MissingVariableError",
    "NotFoundError",
    "Outcome",
    "PipelineError",
    "Project",
    "Selection",
    "StoreError",
    "Template",
    "TransientError",
    "UncertainError",
    "compile_selection",
    "compile_template",
    "load_project",
    "open_store",
    "run_pipeline_offline",
]

if TYPE_CHECKING:
    from engine.config.diagnostic import Diagnostic
    from engine.config.root import Project, load_project
    from engine.connectors.connector import Connector
    from engine.connectors.group import Connectors
    from engine.connectors.models import ConnectorConfig
    from engine.errors import (
        AuthError,
        BusinessError,
        ConfigError,
        ConnectorError,
        DeadlineExceeded,
        DeliberateFailure,
        ExpressionError,
        MesbridgeError,
        MissingVariableError,
        NotFoundError,
        PipelineError,
        StoreError,
        TransientError,
        UncertainError,
    )
    from engine.expressions import Selection, Template, compile_selection, compile_template
    from engine.pipeline.executor import Executor, Outcome
    from engine.store import open_store
    from engine.testing.runner import run_pipeline_offline


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
