"""A generation resolves `${VAR}` in its templates and binding vars against the environment it was
given, as its connectors do: `ServiceHost(environ=...)`, `Service(environ=...)`, `mesbridge demo`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.config.root import load_project
from engine.service.generation import Generation

MAPPING = """\
vars:
  database: ${REVIEW_ERP_DB}
pipelines:
  - name: demo.environ
    source: {kind: webhook, path: /demo/environ}
    reply:
      body: {db: "{{ vars.database }}", tenant: "${REVIEW_TENANT}"}
"""


def test_templates_and_vars_read_the_generations_environment(tmp_path: Path) -> None:
    (tmp_path / "mappings" / "demo").mkdir(parents=True)
    (tmp_path / "mappings" / "demo" / "environ.yaml").write_text(MAPPING, encoding="utf-8")
    environ = {"REVIEW_ERP_DB": "prod", "REVIEW_TENANT": "acme"}  # not in os.environ
    project = load_project(tmp_path, environ=environ)
    assert project.ok, project.diagnostics
    generation = Generation(project, environ=environ)
    outcome = asyncio.run(generation.executors["demo.environ"].run({}))
    assert outcome.body == {"db": "prod", "tenant": "acme"}, outcome.body
