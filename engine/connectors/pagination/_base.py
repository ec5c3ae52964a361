"""What every paginator is built on: a fetched page, the `fetch` it drives, the base class, the registry.

A paginator drives a `fetch(query, url)` function supplied by the connector and yields items. `items`
selects the list from each page's result (after the envelope's `result` path).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

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
        JSON body at their dotted paths (a copy; the call's own body is not changed)."""
        if getattr(self.config, "in_", "query") != "body":
            return query, body
        fields = ("limit", "offset", "page", "size")
        names = [getattr(self.config, n) for n in fields if hasattr(self.config, n)]
        if not any(name in query for name in names):
            return query, body
        if body is not None and not isinstance(body, dict):
            raise ConnectorError(
                f"{self.connector}: paging in the body needs a JSON object body, got {type(body).__name__}",
                connector=self.connector,
            )
        query, body = dict(query), copy.deepcopy(body) if body is not None else {}
        for name in names:
            if name in query:
                *parents, leaf = name.split(".")
                node = body
                for part in parents:
                    child = node.get(part)
                    if child is None:
                        child = node[part] = {}
                    if not isinstance(child, dict):
                        raise ConnectorError(
                            f"{self.connector}: cannot page at {name!r}: {part!r} is not an object",
                            connector=self.connector,
                        )
                    node = child
                node[leaf] = query.pop(name)
        return query, body

    def check_unpaged(self, result: Any) -> None:
        """Called on the result of a call made without paging."""


PAGINATORS: Registry[Paginator] = Registry("pagination")
"""Paginators by `kind`; each module of this package registers its own."""


def build_paginator(config: Any, connector: str) -> Paginator:
    """The paginator for a config; an unknown kind names the valid ones."""
    return PAGINATORS.build(config, connector)
