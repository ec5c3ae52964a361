"""Poll sources: the cursor sent keeps its stored form through `overlap`, and steps run before the
listing with their results in the request's templates."""

from __future__ import annotations

from typing import Any

import pytest

from engine.connectors import ConnectorConfig, Connectors
from engine.errors import ExpressionError
from engine.pipeline.models import Pipeline
from engine.pipeline.sources.poll import effective_cursor, read_changes
from tests.connectors.kit import mock_transport, reply, sent_json


def source(**fields: Any) -> Any:
    fields.setdefault("cursor", {"field": "changed", "initial": "2000-01-01T00:00:00Z"})
    pipeline = Pipeline.model_validate(
        {"name": "p", "source": {"kind": "poll", "connector": "erp", "key": "id", **fields}}
    )
    return pipeline.source


@pytest.mark.parametrize(
    ("stored", "overlap", "fmt", "sent"),
    [
        pytest.param("2026-11-20 10:00:00", 60, None, "2026-11-20 09:59:00", id="space-separated"),
        pytest.param("2026-11-20T10:00:00Z", 60, None, "2026-11-20T09:59:00Z", id="zulu"),
        pytest.param("2026-11-20T10:00:00+02:00", 120, None, "2026-11-20T09:58:00+02:00", id="offset-kept"),
        pytest.param("2026-11-20T10:00:00.500Z", 1, None, "2026-11-20T09:59:59.500Z", id="fraction-kept"),
        pytest.param("2026-11-20", 86400, None, "2026-11-19", id="date-only"),
        pytest.param(1700000000, 30, None, 1699999970, id="number"),
        pytest.param(
            "2026-11-20T10:00:00Z", 60, "%Y-%m-%d %H:%M:%S", "2026-11-20 09:59:00", id="stated-format"
        ),
        pytest.param("2026-11-20T10:00:00Z", None, "%d/%m/%Y", "20/11/2026", id="format-without-overlap"),
        pytest.param("2026-11-20 10:00:00", None, None, "2026-11-20 10:00:00", id="no-overlap-unchanged"),
    ],
)
def test_the_cursor_keeps_its_form_through_overlap(stored, overlap, fmt, sent):
    cursor = {"field": "changed", "initial": stored}
    if fmt:
        cursor["format"] = fmt
    assert effective_cursor(source(overlap=overlap, cursor=cursor), stored) == sent


async def test_steps_run_before_the_listing_and_its_templates_see_them():
    seen = []

    def handler(request):
        seen.append(request)
        if request.url.path.endswith("/login"):
            return reply(200, {"result": {"uid": 42}})
        return reply(200, {"result": [{"id": 1, "changed": "2026-11-20 10:00:00"}]})

    polled = source(
        method="POST",
        path="/jsonrpc",
        body={"uid": "{{ session.uid }}", "since": "{{ cursor }}"},
        steps=[{"name": "session", "call": "erp", "method": "POST", "path": "/login", "idempotent": True}],
    )
    connectors = Connectors(
        {
            "erp": ConnectorConfig.model_validate(
                {"base_url": "http://erp.test", "envelope": {"result": "result || @"}}
            )
        },
        transport=mock_transport(handler),
    )
    records = [r async for r in read_changes(polled, connectors, None, {})]
    await connectors.aclose()
    assert [r.key for r in records] == ["1"]
    assert [s.url.path for s in seen] == ["/login", "/jsonrpc"]
    assert sent_json(seen[1]) == {"uid": 42, "since": "2000-01-01T00:00:00Z"}


async def test_a_given_clock_is_the_time_the_listing_reads_with_now():
    from datetime import UTC, datetime

    seen = []

    def handler(request):
        seen.append(request)
        return reply(200, [])

    polled = source(path="/orders", query={"until": "{{ now() }}", "since": "{{ cursor }}"})
    connectors = Connectors(
        {"erp": ConnectorConfig.model_validate({"base_url": "http://erp.test"})},
        transport=mock_transport(handler),
    )
    moment = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert [r async for r in read_changes(polled, connectors, None, {}, clock=lambda: moment)] == []
    await connectors.aclose()
    assert seen[0].url.params["until"] == "2026-11-20T10:00:00.000Z"


async def test_items_that_find_nothing_in_the_listing_say_so():
    """`items: rowz` (misspelt) is named, not reported as a null record without a key."""
    polled = source(path="/orders", items="rowz")
    connectors = Connectors(
        {"erp": ConnectorConfig.model_validate({"base_url": "http://erp.test"})},
        transport=mock_transport(lambda request: reply(200, [{"rows": [{"id": 1}]}])),
    )
    with pytest.raises(ExpressionError, match=r"the listing holds nothing at items \('rowz'\): \{\"rows\""):
        [r async for r in read_changes(polled, connectors, None, {})]
    await connectors.aclose()
