"""What every paginator is built on: a fetched page, the `fetch` it drives, the base class, the registry.

A paginator drives a `fetch(query, url)` function supplied by the connector and yields items. `items`
selects the list from each page's result (after the envelope's `result` path).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from engine.connectors.bodypath import parse_body_path
from engine.errors import ConnectorError
from engine.expressions import SelectionField
from engine.registry import Registry

__all__ = ["PAGINATORS", "Fetch", "Page", "Paginator", "PagingModel", "build_paginator", "log"]

log = logging.getLogger("mesbridge.connectors.pagination")


class Page:
    """One fetched page: the whole parsed body, the envelope's result, the URL it came from and the
    reply's headers (case-insensitive)."""

    __slots__ = ("body", "headers", "result", "url")

    def __init__(
        self, body: Any, result: Any, url: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.result = result
        self.url = url
        self.headers: Mapping[str, str] = headers if headers is not None else {}


Fetch = Callable[[dict[str, Any], str | None], Awaitable[Page]]
"""fetch(query, url): one page; `url` (absolute) replaces the call's path when given."""


class PagingModel(BaseModel):
    """Base of the paginator config models."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_pages: int = Field(10_000, ge=1, description="Safety stop: most pages read in one listing.")
    items: SelectionField | None = Field(
        None, description="JMESPath to the list in the result; null: the result."
    )


class Paginator:
    """Base paginator: `iterate` yields items; `check_unpaged` looks at an unpaged reply."""

    kind: ClassVar[str]

    def __init__(self, config: Any, connector: str) -> None:
        self.config = config
        self.connector = connector

    def items(self, result: Any) -> list[Any]:
        """The list of a page's result."""
        found = self.config.items.search(result) if self.config.items is not None else result
        if found is None:
            return []
        if not isinstance(found, list):
            raise ConnectorError(
                f"{self.connector}: expected a list of records in the page, got {type(found).__name__}",
                connector=self.connector,
            )
        return found

    def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        raise NotImplementedError

    def place(self, query: dict[str, Any], body: Any) -> tuple[dict[str, Any], Any]:
        """The page's query and body: with `in: body` the paging values move from the query into the
        JSON body at their paths, list indices included (a copy; the call's own body is not changed)."""
        if getattr(self.config, "in_", "query") != "body":
            return query, body
        query = dict(query)
        for name in ("limit", "offset", "page", "size"):
            where = getattr(self.config, name, None)
            if where is None or where not in query:
                continue
            try:
                body = parse_body_path(where).write(body, query.pop(where))
            except ValueError as exc:
                raise ConnectorError(
                    f"{self.connector}: the {self.kind} paginator cannot page in this body: {exc}",
                    connector=self.connector,
                ) from None
        return query, body

    def advance(self, previous: str | None, items: list[Any], where: str) -> str:
        """A page's fingerprint; a full page equal to the one before stops the walk with an error (the
        server ignores the paging values, and the walk would read the same page forever)."""
        fingerprint = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
        if items and fingerprint == previous:
            raise ConnectorError(
                f"{self.connector}: the {self.kind} paginator got the same page again at {where}: the "
                "system does not page by these parameters (check their names and `in`); stopped",
                connector=self.connector,
            )
        return fingerprint

    def check_unpaged(self, result: Any) -> None:
        """Called on the result of a call made without paging."""


PAGINATORS: Registry[Paginator] = Registry("pagination")
"""Paginators by `kind`; each module of this package registers its own."""


def build_paginator(config: Any, connector: str) -> Paginator:
    """The paginator for a config; an unknown kind names the valid ones."""
    return PAGINATORS.build(config, connector)
