"""Source kinds: where a pipeline's events come from. Each module of this package is one kind (its
model, registered in `SOURCES` by `kind`); `Source`, the union a pipeline's `source:` uses, is built
from the registry. `caller_auth` holds how webhook callers authenticate, a registry of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

from ._base import SOURCES, SourceModel, fingerprint

Registry.load(__name__)

if TYPE_CHECKING:
    Source = Any
else:
    Source = SOURCES.union()

__all__ = ["SOURCES", "Source", "SourceModel", "fingerprint"]
