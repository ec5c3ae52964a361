"""`kind: next_link`: the server names the next page, e.g. OData `@odata.nextLink`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from engine.connectors.urls import origin, resolve_reference
from engine.errors import ConnectorError
from engine.expressions import SelectionField

from ._base import PAGINATORS, Fetch, Paginator, PagingModel, log


class NextLinkPagination(PagingModel):
    """The server names the next page, e.g. OData `@odata.nextLink`."""

    kind: Literal["next_link"] = Field(description="Follow a next-page link.")
    next: SelectionField = Field(
        description="JMESPath over the whole body to the next page's URL: absolute, or a reference "
        "resolved against the URL of the page that names it (RFC 3986); on that page's scheme, host and "
        "port, else it is not followed."
    )


@PAGINATORS.register(NextLinkPagination)
class NextLink(Paginator):
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
            if not isinstance(link, str):
                raise ConnectorError(f"{self.connector}: bad next link {link!r}", connector=self.connector)
            url = resolve_reference(page.url, link)
            if origin(url) != origin(page.url):  # the call carries the connector's credentials
                raise ConnectorError(
                    f"{self.connector}: the next link {link!r} leads to another server than the page "
                    "that named it; it is not followed",
                    connector=self.connector,
                )
            if url in seen:
                raise ConnectorError(
                    f"{self.connector}: the next link {link!r} repeats", connector=self.connector
                )
            seen.add(url)
        log.warning("%s: stopped paging after max_pages=%d", self.connector, self.config.max_pages)
