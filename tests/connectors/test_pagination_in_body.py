"""Paging values placed in the JSON request body (`in: body`), for JSON-RPC style listings."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from engine.connectors import Connector, ConnectorConfig
from engine.connectors.transports.mock import MockTransport
from engine.errors import ConnectorError
from tests.connectors.kit import mock_transport

RECORDS = [{"Code": f"R{i:03d}"} for i in range(23)]


def rpc_server(sent: list[Any]) -> MockTransport:
    """Pages like a JSON-RPC listing: Params.Page (from 1) and Params.PageSize in the body."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append({"query": dict(request.url.params), "body": body})
        page, size = body["Params"]["Page"], body["Params"]["PageSize"]
        return httpx.Response(200, json={"Result": RECORDS[(page - 1) * size : page * size], "Error": None})

    return mock_transport(handle)


def connector(sent: list[Any], pagination: dict[str, Any]) -> Connector:
    config = ConnectorConfig.model_validate(
        {
            "base_url": "http://erp.test",
            "envelope": {"success": "Error == null", "result": "Result", "error": ["Error"]},
            "pagination": pagination,
        }
    )
    return Connector("rpc", config, environ={}, transport=rpc_server(sent))


BODY_PAGING = {
    "kind": "page",
    "in": "body",
    "page": "Params.Page",
    "size": "Params.PageSize",
    "first_page": 1,
    "page_size": 10,
}


async def test_page_numbers_go_into_the_body_and_every_record_comes_once() -> None:
    sent: list[Any] = []
    body = {"Method": "GetOrders", "Params": {"ModifiedSince": "2025-01-01"}}
    async with connector(sent, BODY_PAGING) as rpc:
        items = [item async for item in rpc.iterate("POST", "/rpc", body=body)]
        response = await rpc.request("POST", "/rpc", body=body, paginate=True)
    assert items == RECORDS
    assert response.result == RECORDS
    first = sent[:3]
    assert [s["body"]["Params"]["Page"] for s in first] == [1, 2, 3]
    assert all(s["body"]["Params"]["PageSize"] == 10 for s in first)
    assert all(s["body"]["Params"]["ModifiedSince"] == "2025-01-01" for s in first)
    assert all(s["body"]["Method"] == "GetOrders" for s in first)
    assert all(s["query"] == {} for s in sent)
    assert body == {"Method": "GetOrders", "Params": {"ModifiedSince": "2025-01-01"}}, "caller's body kept"


async def test_missing_parents_are_created_and_offset_paging_works_in_the_body() -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        skip, top = body["Paging"]["Skip"], body["Paging"]["Take"]
        return httpx.Response(200, json={"Result": RECORDS[skip : skip + top], "Error": None})

    config = ConnectorConfig.model_validate(
        {
            "base_url": "http://erp.test",
            "envelope": {"success": "Error == null", "result": "Result", "error": ["Error"]},
            "pagination": {
                "kind": "offset",
                "in": "body",
                "limit": "Paging.Take",
                "offset": "Paging.Skip",
                "page_size": 20,
            },
        }
    )
    async with Connector("rpc", config, environ={}, transport=mock_transport(handle)) as rpc:
        response = await rpc.request("POST", "/rpc", body={"Method": "List"}, paginate=True)
    assert response.result == RECORDS
    # the second page starts at the last record of the first, which tells that nothing moved between
    assert [b["Paging"] for b in sent] == [{"Take": 20, "Skip": 0}, {"Take": 20, "Skip": 19}]


async def test_query_paging_is_unchanged_by_default() -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(dict(request.url.params))
        page, size = int(request.url.params["page"]), int(request.url.params["size"])
        return httpx.Response(200, json={"Result": RECORDS[page * size : (page + 1) * size], "Error": None})

    config = ConnectorConfig.model_validate(
        {
            "base_url": "http://erp.test",
            "envelope": {"success": "Error == null", "result": "Result", "error": ["Error"]},
            "pagination": {"kind": "page", "page": "page", "size": "size", "page_size": 10},
        }
    )
    async with Connector("rpc", config, environ={}, transport=mock_transport(handle)) as rpc:
        response = await rpc.request("POST", "/rpc", body={"Method": "List"}, paginate=True)
    assert response.result == RECORDS
    assert sent[0] == {"page": "0", "size": "10"}


async def test_a_body_that_is_not_an_object_is_refused_with_a_clear_message() -> None:
    async with connector([], BODY_PAGING) as rpc:
        with pytest.raises(
            ConnectorError, match="cannot page in this body: cannot write at Params.Page: it is not an object"
        ):
            await rpc.request("POST", "/rpc", body=["not", "an", "object"], paginate=True)
