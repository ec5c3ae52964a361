"""The base and the registry of source kinds: where a pipeline's events come from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.registry import Registry

__all__ = ["SOURCES", "SourceModel", "fingerprint"]


def fingerprint(value: Any) -> str:
    """A digest of a JSON value's content, whatever its key order: what tells two events under one
    idempotency key, or two versions of a polled record, apart (20 hex digits of SHA-256)."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class SourceModel(BaseModel):
    """Base of the source kinds: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


SOURCES: Registry[SourceModel] = Registry("source")
"""Source kinds by `kind`; each module of this package registers its own."""
