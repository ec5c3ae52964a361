"""`mesbridge schema`: JSON Schema of the config files, generated from the models."""

from __future__ import annotations

import json
from typing import Any

import click


def build_schemas() -> dict[str, Any]:
    """One schema per file kind: connector, mapping, settings."""
    from engine.config.settings import Settings
    from engine.connectors.models import ConnectorConfig
    from engine.pipeline.models import MappingFile

    return {
        "connector": ConnectorConfig.model_json_schema(),
        "mapping": MappingFile.model_json_schema(),
        "settings": Settings.model_json_schema(),
    }


@click.command("schema")
@click.option(
    "--kind",
    type=click.Choice(["connector", "mapping", "settings", "all"]),
    default="all",
    show_default=True,
    help="Which file kind; `all` prints an object keyed by kind",
)
def schema(kind: str) -> None:
    """Print the JSON Schema for editors (yaml-language-server) and CI."""
    schemas = build_schemas()
    document = schemas if kind == "all" else schemas[kind]
    if kind != "all":
        document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))
