"""`kind: offset`: limit and offset parameters, e.g. OData `$top`/`$skip`; stops on a short page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import PAGINATORS, Fetch, Paginator, PagingModel, log


class OffsetPagination(PagingModel):
    """Limit/offset query parameters, e.g. OData `$top`/`$skip`; stops on a short page."""

    kind: Literal["offset"] = Field(description="Limit and offset parameters.")
    limit: str = Field("$top", description="Query name of the page size.")
    offset: str = Field("$skip", description="Query name of the number of records to skip.")
    in_: Literal["query", "body"] = Field(
        "query",
        alias="in",
        description="Where the paging values go: query parameters, or (body) paths into the JSON "
        "request body, list indices included (Params.Page, params.args[6].limit), for JSON-RPC APIs.",
    )
    page_size: int = Field(500, ge=1, description="Records asked per page.")
    cap: int | None = Field(
        None,
        ge=1,
        description="Records the server returns at most per reply, silently; a page of exactly "
        "this size is logged as a warning.",
    )

    @model_validator(mode="after")
    def _page_within_cap(self) -> OffsetPagination:
        if self.cap is not None and self.page_size > self.cap:
            raise ValueError(
                f"page_size {self.page_size} is larger than cap {self.cap}: records would be lost"
            )
        return self


@PAGINATORS.register(OffsetPagination)
class Offset(Paginator):
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
        previous = None
        for _ in range(c.max_pages):
            page = await fetch({**query, c.limit: size, c.offset: skip}, None)
            items = self.items(page.result)
            previous = self.advance(previous, items, f"{c.offset}={skip}")
            self._warn_cap(len(items), f"the page at {c.offset}={skip}")
            for item in items:
                yield item
            if len(items) < size or not items:
                return
            skip += len(items)
        log.warning("%s: stopped paging after max_pages=%d", self.connector, c.max_pages)
