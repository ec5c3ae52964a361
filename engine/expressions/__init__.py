"""Compiled expressions: JMESPath for selecting, sandboxed Jinja for composing.

Both are compiled once, when the config loads, so a syntax error carries its YAML location and nothing
is parsed per event.

- `selection`: JMESPath expressions (`Selection`, `SelectionField`);
- `templates`: YAML values whose strings are Jinja templates (`Template`, `TemplateField`);
- `paths`: URL path templates, each value one segment's data (`PathTemplate`, `PathTemplateField`);
- `sandbox`: the one Jinja environment; `compiler`: the compiled subset; `limits`: the size limits.

`templates_in` finds every template a config model holds (what a pipeline or a lookup reads).
"""

from typing import Any

from pydantic import BaseModel

from engine.expressions.paths import PathTemplate, PathTemplateField, compile_path_template
from engine.expressions.sandbox import environment
from engine.expressions.selection import Selection, SelectionField, compile_selection
from engine.expressions.templates import Template, TemplateCompileError, TemplateField, compile_template

__all__ = [
    "PathTemplate",
    "PathTemplateField",
    "Selection",
    "SelectionField",
    "Template",
    "TemplateCompileError",
    "TemplateField",
    "compile_path_template",
    "compile_selection",
    "compile_template",
    "environment",
    "templates_in",
]


def templates_in(value: Any) -> list[Template | PathTemplate]:
    """Every template and path template in a value: a config model, and the models, mappings and lists
    it holds, at any depth."""
    if isinstance(value, Template | PathTemplate):
        return [value]
    if isinstance(value, BaseModel):
        items: Any = value.__dict__.values()
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return []
    return [template for item in items for template in templates_in(item)]
