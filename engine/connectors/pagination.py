"""Paginators: how a connector walks a listing page by page.

Each kind is a config model plus a paginator class, registered together in `PAGINATORS` by `kind`.
A paginator drives a `fetch(query, url)` function supplied by the connector and yields items.
`items` selects the list from each page's result (after the envelope's `result` path).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import ConnectorError
from engine.expressions import SelectionField

from .kinds import Kinds

__all__ = [
    "PAGINATORS",
    "NextLinkPagination",
    "NoPagination",
    "OffsetPagination",
    "Page",
    "PagePagination",
    "PaginationConfig",
    "Paginator",
    "build_paginator",
    "collect",
]

log = logging.getLogger("mesbridge.connectors.pagination")


class Page:
    """One fetched page: the whole parsed body and the envelope's result."""

    __slots__ = ("body", "result")

    def __init__(self, body: Any, result: Any) -> None:
        self.body = body
        self.result = result


Fetch = Callable[[dict[str, Any], str | None], Awaitable[Page]]
"""fetch(query, url): one page; `url` (absolute or relative) replaces the call's path when given."""


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_pages: int = Field(10_000, ge=1, description="Safety stop: most pages read in one listing.")


class NoPagination(_Base):
    """One request; its result is the list."""

    kind: Literal["none"] = Field("none", description="No paging.")
    items: SelectionField | None = Field(
        None, description="JMESPath to the list in the result; null: the result."
    )


class OffsetPagination(_Base):
    """Limit/offset query parameters, e.g. OData `$top`/`$skip`; stops on a short page."""

    kind: Literal["offset"] = Field(description="Limit and offset parameters.")
    limit: str = Field("$top", description="Query name of the page size.")
    offset: str = Field("$skip", description="Query name of the number of records to skip.")
    in_: Literal["query", "body"] = Field(
        "query",
        alias="in",
        description="Where the paging values go: query parameters, or (body) dotted paths into the "
        "JSON request body, e.g. Params.Page, for APIs that page in the body (JSON-RPC).",
    )
    page_size: int = Field(500, ge=1, description="Records asked per page.")
    cap: int | None = Field(
        None,
        ge=1,
        description="Records the server returns at most per reply, silently; a page of exactly "
        "this size is logged as a warning.",
    )
    items: SelectionField | None = Field(
        None, description="JMESPath to the list in the result; null: the result."
    )

    @model_validator(mode="after")
    def _page_within_cap(self) -> OffsetPagination:
        if self.cap is not None and self.page_size > self.cap:
            raise ValueError(
                f"page_size {self.page_size} is larger than cap {self.cap}: records would be lost"
            )
        return self


class PagePagination(_Base):
    """Page number and page size parameters, e.g. `page`/`pageLimit`; stops on a short or empty page."""

    kind: Literal["page"] = Field(description="Page number and size parameters.")
    page: str = Field("page", description="Query name of the page number.")
    size: str = Field("pageLimit", description="Query name of the page size.")
    in_: Literal["query", "body"] = Field(
        "query",
        alias="in",
        description="Where the paging values go: query parameters, or (body) dotted paths into the "
        "JSON request body, e.g. Params.Page, for APIs that page in the body (JSON-RPC).",
    )
    page_size: int = Field(100, ge=1, description="Records asked per page.")
    first_page: Literal[0, 1] = Field(0, description="Number of the first page.")
    items: SelectionField | None = Field(
        None, description="JMESPath to the list in the result; null: the result."
    )


class NextLinkPagination(_Base):
    """The server names the next page, e.g. OData `@odata.nextLink`."""

    kind: Literal["next_link"] = Field(description="Follow a next-page link.")
    next: SelectionField = Field(description="JMESPath over the whole body to the next page's URL.")
    items: SelectionField | None = Field(
        None, description="JMESPath to the list in the result; null: the result."
    )


PaginationConfig = Annotated[
    NoPagination | OffsetPagination | PagePagination | NextLinkPagination, Field(discriminator="kind")
]


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


_KINDS: Kinds[Paginator] = Kinds("pagination")
PAGINATORS = _KINDS.classes
register = _KINDS.register


def build_paginator(config: Any, connector: str) -> Paginator:
    """The paginator for a config; an unknown kind names the valid ones."""
    return _KINDS.build(config, connector)


@register("none")
class _Single(Paginator):
    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        page = await fetch(dict(query), None)
        for item in self.items(page.result):
            yield item


@register("offset")
class _Offset(Paginator):
    config: OffsetPagination

    def _warn_cap(self, count: int, what: str) -> None:
        if self.config.cap is not None and count == self.config.cap:
            log.warning(
                "%s: %s returned exactly %d records, the server's cap; the server may have truncated it",
                self.connector,
                what,
                count,
            )

    def check_unpaged(self, result: Any) -> None:
        found = self.config.items.search(result) if self.config.items is not None else result
        if isinstance(found, list):
            self._warn_cap(len(found), "an unpaged query")

    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        c = self.config
        size = int(query.get(c.limit, c.page_size))
        skip = int(query.get(c.offset, 0))
        for _ in range(c.max_pages):
            page = await fetch({**query, c.limit: size, c.offset: skip}, None)
            items = self.items(page.result)
            self._warn_cap(len(items), f"the page at {c.offset}={skip}")
            for item in items:
                yield item
            if len(items) < size or not items:
                return
            skip += len(items)
        log.warning("%s: stopped paging after max_pages=%d", self.connector, c.max_pages)


@register("page")
class _Numbered(Paginator):
    config: PagePagination

    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        c = self.config
        size = int(query.get(c.size, c.page_size))
        number = int(query.get(c.page, c.first_page))
        for _ in range(c.max_pages):
            page = await fetch({**query, c.page: number, c.size: size}, None)
            items = self.items(page.result)
            for item in items:
                yield item
            if len(items) < size or not items:
                return
            number += 1
        log.warning("%s: stopped paging after max_pages=%d", self.connector, c.max_pages)


@register("next_link")
class _NextLink(Paginator):
    config: NextLinkPagination

    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        url: str | None = None
        seen: set[str] = set()
        for _ in range(self.config.max_pages):
            page = await fetch(dict(query) if url is None else {}, url)
            for item in self.items(page.result):
                yield item
            link = self.config.next.search(page.body) if isinstance(page.body, dict | list) else None
            if not link:
                return
            if not isinstance(link, str) or link in seen:
                raise ConnectorError(
                    f"{self.connector}: bad or repeated next link {link!r}", connector=self.connector
                )
            seen.add(link)
            url = link
        log.warning("%s: stopped paging after max_pages=%d", self.connector, self.config.max_pages)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    """Every item of an async iterator, in order."""
    return [item async for item in items]
