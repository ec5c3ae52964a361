"""Config loading: located YAML (`load_yaml`) and diagnostics (`validate_model`, the printers)."""

from engine.config.diagnostics import (
    Diagnostic,
    format_github,
    format_json,
    format_text,
    sort_diagnostics,
    validate_model,
)
from engine.config.yamlsource import LoadedYaml, Mark, load_yaml, locate_path

__all__ = [
    "Diagnostic",
    "LoadedYaml",
    "Mark",
    "format_github",
    "format_json",
    "format_text",
    "load_yaml",
    "locate_path",
    "sort_diagnostics",
    "validate_model",
]
