"""Paginators on both transports against fake servers, the cap warning, and the no-skip-no-repeat property."""

import asyncio
import logging

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.connectors import Connector
from engine.errors import ConnectorError, ListingChanged
from tests.connectors.kit import FakeTime, config, mock_transport, reply

RECORDS = [{"ID": i} for i in range(23)]


def offset_server(records, cap=None, calls=None):
    def handler(request: httpx.Request) -> httpx.Response:
        top, skip = int(request.url.params.get("$top", 10_000)), int(request.url.params.get("$skip", 0))
        if cap is not None:
            top = min(top, cap)
        if calls is not None:
            calls.append((top, skip))
        return reply(200, {"value": records[skip : skip + top]})

    return handler


def page_server(records, first_page=0, max_size=None):
    def handler(request: httpx.Request) -> httpx.Response:
        size = int(request.url.params["pageLimit"])
        if max_size is not None:
            size = min(size, max_size)
        page = int(request.url.params["page"]) - first_page
        return reply(200, {"meta": {"status_code": 200}, "data": records[page * size : (page + 1) * size]})

    return handler


def link_server(records, size):
    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("start", 0))
        body = {"value": records[start : start + size]}
        if start + size < len(records):
            body["@odata.nextLink"] = f"items?start={start + size}"  # a reference, resolved against this page
        return reply(200, body)

    return handler


def build(handler, **fields):
    time = FakeTime()
    return Connector(
        "erp",
        config(**fields),
        environ={},
        transport=mock_transport(handler),
        sleep=time.sleep,
        clock=time.clock,
    )


OFFSET = {"kind": "offset", "page_size": 5, "items": "value"}
PAGE = {"kind": "page", "page_size": 5}
LINK = {"kind": "next_link", "next": '"@odata.nextLink"', "items": "value"}


@pytest.mark.parametrize(
    ("handler", "pagination", "envelope"),
    [
        pytest.param(offset_server(RECORDS), OFFSET, {}, id="offset"),
        pytest.param(page_server(RECORDS), PAGE, {"result": "data"}, id="page-from-0"),
        pytest.param(
            page_server(RECORDS, first_page=1),
            {**PAGE, "first_page": 1},
            {"result": "data"},
            id="page-from-1",
        ),
        pytest.param(link_server(RECORDS, 4), LINK, {}, id="next-link"),
        pytest.param(
            lambda r: reply(200, {"value": RECORDS}), {"kind": "none", "items": "value"}, {}, id="none"
        ),
    ],
)
async def test_paginators_read_every_record_once(make, handler, pagination, envelope):
    connector = make(handler, pagination=pagination, envelope=envelope)
    response = await connector.request("GET", "/items", paginate=True)
    assert response.result == RECORDS


async def test_offset_keeps_other_query_parameters_and_stops_on_a_short_page(make):
    calls = []
    seen = []

    def handler(request):
        seen.append(request.url.params.get("$filter"))
        return offset_server(RECORDS, calls=calls)(request)

    connector = make(handler, pagination={**OFFSET, "page_size": 10})
    response = await connector.request("GET", "/items", query={"$filter": "A eq 'x'"}, paginate=True)
    assert response.result == RECORDS
    assert calls == [(10, 0), (10, 9), (10, 18)]  # each page after the first starts at the last record read
    assert set(seen) == {"A eq 'x'"}


async def test_offset_exactly_divisible_stops_on_the_short_page_after(make):
    calls = []
    connector = make(offset_server(RECORDS[:19], calls=calls), pagination={**OFFSET, "page_size": 10})
    assert (await connector.request("GET", "/items", paginate=True)).result == RECORDS[:19]
    assert calls == [(10, 0), (10, 9), (10, 18)]


def changing_server(records, moved, after_calls):
    """An offset server ordered by change date: after `after_calls` pages, the record `moved` changes
    and goes to the end, and the records behind it move one place forward."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == after_calls + 1:
            records.append({**records.pop(moved), "changed": True})
        top, skip = int(request.url.params["$top"]), int(request.url.params["$skip"])
        return reply(200, {"value": records[skip : skip + top]})

    return handler


async def test_a_listing_that_changes_between_pages_is_not_read_with_a_gap(make):
    records = [dict(r) for r in RECORDS]
    connector = make(changing_server(records, moved=3, after_calls=1), pagination={**OFFSET, "page_size": 10})
    read = []
    with pytest.raises(ListingChanged, match=r"the listing changed while it was paged .* \$skip=9"):
        async for item in connector.iterate("GET", "/items"):
            read.append(item)
    # the first page is whole; the record behind it (ID 10, now at offset 9) was not skipped silently
    assert read == RECORDS[:10]


async def test_a_listing_that_changes_past_the_pages_read_is_read_whole(make):
    records = [dict(r) for r in RECORDS]
    connector = make(
        changing_server(records, moved=20, after_calls=1), pagination={**OFFSET, "page_size": 10}
    )
    result = (await connector.request("GET", "/items", paginate=True)).result
    assert [r["ID"] for r in result] == [*range(20), 21, 22, 20]  # the change read at its new place


async def test_offset_warns_when_a_page_comes_back_at_the_cap(make, caplog):
    connector = make(offset_server(RECORDS * 3), pagination={**OFFSET, "page_size": 10, "cap": 10})
    with caplog.at_level(logging.WARNING, logger="mesbridge.connectors.pagination"):
        await connector.request("GET", "/items", paginate=True)
    assert any("exactly 10 records" in m and "cap" in m for m in caplog.messages)


async def test_an_unpaged_query_at_the_cap_warns(make, caplog):
    connector = make(offset_server(RECORDS, cap=20), pagination={**OFFSET, "page_size": 20, "cap": 20})
    with caplog.at_level(logging.WARNING, logger="mesbridge.connectors.pagination"):
        response = await connector.request("GET", "/items")
    assert len(response.result["value"]) == 20
    assert any("an unpaged query returned exactly 20 records" in m for m in caplog.messages)


def test_page_size_over_the_cap_is_a_config_error():
    with pytest.raises(ValueError, match="page_size 5000 is larger than cap 2000"):
        config(pagination={"kind": "offset", "page_size": 5000, "cap": 2000})


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'next_link', 'none', 'offset', 'page'"):
        config(pagination={"kind": "cursor"})


async def test_iterate_streams_pages(make):
    connector = make(page_server(RECORDS), pagination=PAGE, envelope={"result": "data"})
    got = []
    async for item in connector.iterate("GET", "/items"):
        got.append(item)
    assert got == RECORDS


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total=st.integers(0, 120),
    page_size=st.integers(1, 30),
    kind=st.sampled_from(["offset", "page", "next_link"]),
    first_page=st.sampled_from([0, 1]),
    server_max=st.one_of(st.none(), st.integers(1, 40)),
    ignores_paging=st.booleans(),
)
def test_paginators_never_skip_repeat_or_loop(total, page_size, kind, first_page, server_max, ignores_paging):
    """Every record exactly once, in order; a server that ignores the paging values (always the first
    page) is stopped with an error within three requests instead of being read forever."""
    records = [{"ID": f"R{i}"} for i in range(total)]
    requests: list[httpx.Request] = []
    if kind == "offset":
        # A server cap below the page size would lose records silently; the config refuses it.
        cap = None if server_max is None else max(server_max, page_size)
        handler = offset_server(records, cap=cap)
        pagination, envelope = {**OFFSET, "page_size": page_size, "cap": cap}, {}
    elif kind == "page":
        handler = page_server(records, first_page=first_page)
        pagination = {**PAGE, "page_size": page_size, "first_page": first_page}
        envelope = {"result": "data"}
    else:
        handler, pagination, envelope = link_server(records, page_size), LINK, {}
    loops = False  # would a walk that ignores the server's answer read the same page forever?
    if ignores_paging:
        query = f"page={first_page}&pageLimit={page_size}&$top={page_size}&$skip=0"
        first = handler(httpx.Request("GET", f"http://erp.test/api/items?{query}"))
        page = first.json().get("value", first.json().get("data"))
        loops = len(page) == page_size if kind != "next_link" else total > page_size
        if kind == "next_link" and loops:
            first = reply(200, {**first.json(), "@odata.nextLink": "items"})

        def handler(request: httpx.Request, first=first) -> httpx.Response:  # noqa: F811
            return first

    def counted(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    async def run():
        connector = build(counted, pagination=pagination, envelope=envelope)
        logging.getLogger("mesbridge.connectors.pagination").disabled = True
        try:
            return (await connector.request("GET", "/items", paginate=True)).result
        finally:
            logging.getLogger("mesbridge.connectors.pagination").disabled = False
            await connector.aclose()

    if loops:
        with pytest.raises(ConnectorError, match="same page again|repeats"):
            asyncio.run(run())
        assert len(requests) <= 3
    else:
        assert asyncio.run(run()) == records


def same_page_server(calls: list[httpx.Request]):
    """A server that ignores the paging values: every request gets the same full page."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        size = int(request.url.params.get("$top", request.url.params.get("pageLimit", 5)))
        return reply(200, {"value": RECORDS[:size], "data": RECORDS[:size]})

    return handler


@pytest.mark.parametrize(
    ("pagination", "envelope"),
    [
        pytest.param(OFFSET, {}, id="offset"),
        pytest.param({**PAGE, "page": "pagina"}, {"result": "data"}, id="page-with-a-misnamed-parameter"),
    ],
)
async def test_a_page_that_does_not_advance_stops_the_walk_within_three_requests(make, pagination, envelope):
    calls: list[httpx.Request] = []
    connector = make(same_page_server(calls), pagination=pagination, envelope=envelope)
    with pytest.raises(ConnectorError, match=rf"the {pagination['kind']} paginator got the same page again"):
        await connector.request("GET", "/items", paginate=True)
    assert len(calls) <= 3


async def test_a_repeated_next_link_stops_the_walk(make):
    calls: list[httpx.Request] = []

    def handler(request):
        calls.append(request)
        return reply(200, {"value": RECORDS[:2], "@odata.nextLink": "items?start=2"})

    connector = make(handler, pagination=LINK)
    with pytest.raises(ConnectorError, match="repeats"):
        await connector.request("GET", "/items", paginate=True)
    assert len(calls) <= 3


@pytest.mark.parametrize(
    "link",
    [
        "https://elsewhere.test/api/items?start=2",
        "//elsewhere.test/api/items",
        "{scheme}s://{host}/api/items",
    ],
)
async def test_a_next_link_to_another_server_is_not_followed_with_the_credentials(make, link):
    """Another host, or the same host over another scheme (http to https, or back), gets no call."""
    calls: list[httpx.Request] = []

    def handler(request):
        calls.append(request)
        named = link.format(scheme=request.url.scheme, host=request.url.netloc.decode())
        return reply(200, {"value": RECORDS[:2], "@odata.nextLink": named})

    connector = make(
        handler,
        pagination=LINK,
        environ={"ERP_KEY": "k-123456"},
        auth={"kind": "header", "name": "X-Api-Key", "value": "${ERP_KEY}"},
    )
    with pytest.raises(ConnectorError, match="leads to another server than the page that named it"):
        await connector.request("GET", "/items", paginate=True)
    assert len(calls) == 1
