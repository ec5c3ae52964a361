"""`kind: offset`: limit and offset parameters, e.g. OData `$top`/`$skip`; stops on a short page.

A listing can change while it is paged: a record that changes moves to the end of a listing ordered
by change date, and every record behind it moves one place forward, so the record at the next page's
first offset would be skipped. Each page after the first therefore starts one record early, at the
last record of the page before: when that is not the same record as before, the listing changed
between the two pages, and the walk stops with ListingChanged after yielding what it read whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.errors import ListingChanged

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
        last: list[Any] = []  # the last record read, which the next page starts with again
        for _ in range(c.max_pages):
            start = skip - len(last)
            page = await fetch({**query, c.limit: size, c.offset: start}, None)
            items = self.items(page.result)
            previous = self.advance(previous, items, f"{c.offset}={start}")
            self._warn_cap(len(items), f"the page at {c.offset}={start}")
            if last:
                if items[:1] != last:
                    raise ListingChanged(
                        f"{self.connector}: the listing changed while it was paged (the record at "
                        f"{c.offset}={start} is no longer the one the page before ended with); what "
                        "follows it is read again",
                        connector=self.connector,
                    )
                new = items[1:]
            else:
                new = items
            for item in new:
                yield item
            if len(items) < size or not new:
                return
            skip += len(new)
            last = items[-1:] if size > 1 else []  # a page of one record has no room to overlap
        log.warning("%s: stopped paging after max_pages=%d", self.connector, c.max_pages)
