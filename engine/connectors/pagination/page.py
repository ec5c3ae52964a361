"""`kind: page`: page number and page size parameters, e.g. `page`/`pageLimit`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from ._base import PAGINATORS, Fetch, Paginator, PagingModel, log


class PagePagination(PagingModel):
    """Page number and page size parameters, e.g. `page`/`pageLimit`; stops on a short or empty page."""

    kind: Literal["page"] = Field(description="Page number and size parameters.")
    page: str = Field("page", description="Query name of the page number.")
    size: str = Field("pageLimit", description="Query name of the page size.")
    in_: Literal["query", "body"] = Field(
        "query",
        alias="in",
        description="Where the paging values go: query parameters, or (body) paths into the JSON "
        "request body, list indices included (Params.Page, params.args[6].limit), for JSON-RPC APIs.",
    )
    page_size: int = Field(100, ge=1, description="Records asked per page.")
    first_page: Literal[0, 1] = Field(0, description="Number of the first page.")


@PAGINATORS.register(PagePagination)
class Numbered(Paginator):
    config: PagePagination

    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        c = self.config
        size = int(query.get(c.size, c.page_size))
        number = int(query.get(c.page, c.first_page))
        previous = None
        for _ in range(c.max_pages):
            page = await fetch({**query, c.page: number, c.size: size}, None)
            items = self.items(page.result)
            previous = self.advance(previous, items, f"{c.page}={number}")
            for item in items:
                yield item
            if len(items) < size or not items:
                return
            number += 1
        log.warning("%s: stopped paging after max_pages=%d", self.connector, c.max_pages)
