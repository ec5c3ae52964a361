"""Paginators: how a connector walks a listing page by page. Each module of this package is one kind,
its config model and its paginator, registered in `PAGINATORS` by `kind`; `PaginationConfig` (the
union the connector config uses) is built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

from ._base import PAGINATORS, Fetch, Page, Paginator, build_paginator

Registry.load(__name__)

if TYPE_CHECKING:
    PaginationConfig = Any
else:
    PaginationConfig = PAGINATORS.union()
"""Any registered paginator config, chosen by `kind`."""

__all__ = ["PAGINATORS", "Fetch", "Page", "PaginationConfig", "Paginator", "build_paginator"]
