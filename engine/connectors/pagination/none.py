"""`kind: none`: one request; its result is the list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from ._base import PAGINATORS, Fetch, Paginator, PagingModel


class NoPagination(PagingModel):
    """One request; its result is the list."""

    kind: Literal["none"] = Field("none", description="No paging.")


@PAGINATORS.register(NoPagination)
class Single(Paginator):
    async def iterate(self, fetch: Fetch, query: dict[str, Any]) -> AsyncIterator[Any]:
        page = await fetch(dict(query), None)
        for item in self.items(page.result):
            yield item
