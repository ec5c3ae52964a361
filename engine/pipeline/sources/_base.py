"""The base and the registry of source kinds: where a pipeline's events come from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from engine.registry import Registry

__all__ = ["SOURCES", "SourceModel"]


class SourceModel(BaseModel):
    """Base of the source kinds: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


SOURCES: Registry[SourceModel] = Registry("source")
"""Source kinds by `kind`; each module of this package registers its own."""
