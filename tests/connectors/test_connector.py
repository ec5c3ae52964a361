"""The request path on both transports: URLs as written, the call hook, strict bodies, headers."""

from __future__ import annotations

import pytest

from engine.errors import MissingVariableError, PipelineError
from tests.connectors.kit import reply


async def test_odata_paths_and_query_reach_the_server_unmangled(make):
    seen = []
    connector = make(
        lambda r: seen.append(r) or reply(200, {"value": []}),
        base_url="http://erp.test/odata/Priority/tabula.ini/demo/",
    )
    await connector.request(
        "GET",
        "/SERIAL('WO1')/KITITEMS_SUBFORM",
        query={"$filter": "QUANT gt 1 and UDATE ge 2025-01-01T00:00:00+02:00", "$top": 5},
    )
    url = seen[0].url
    assert seen[0].extensions["target"] == (
        "/odata/Priority/tabula.ini/demo/SERIAL('WO1')/KITITEMS_SUBFORM"
        "?$filter=QUANT%20gt%201%20and%20UDATE%20ge%202025-01-01T00:00:00%2B02:00&$top=5"
    )
    assert url.params["$filter"] == "QUANT gt 1 and UDATE ge 2025-01-01T00:00:00+02:00"


async def test_dot_segments_are_sent_as_written(make):
    seen = []
    connector = make(lambda r: seen.append(r) or reply(200, {}))
    await connector.request("GET", "/a/../b/./c")
    assert seen[0].extensions["target"] == "/api/a/../b/./c"


async def test_call_hook_reports_each_attempt(make):
    records = []
    answers = iter([reply(503), reply(200, {})])
    connector = make(
        lambda r: next(answers),
        environ={"ERP_KEY": "key-123456"},
        auth={"kind": "query", "name": "key", "value": "${ERP_KEY}"},
    )
    connector.on_call = records.append
    response = await connector.request("GET", "/x")
    assert [(r.status, r.attempt, r.method, r.path, r.failure) for r in records] == [
        (503, 1, "GET", "/x", "unapplied"),
        (200, 2, "GET", "/x", None),
    ]
    assert all("key-123456" not in r.url and "key=***" in r.url for r in records)
    assert response.attempts == 2 and response.elapsed >= 0


async def test_json_body_and_content_type(make):
    seen = []
    connector = make(lambda r: seen.append(r) or reply(201, {"FORM": 7}), content_type="text/plain")
    response = await connector.request("POST", "/ALINE_ONE", body={"QUANT": 3, "PART": "מארז"})
    assert response.status == 201 and response.result == {"FORM": 7}
    assert seen[0].headers["content-type"] == "text/plain"
    assert seen[0].content.decode("utf-8") == '{"QUANT":3,"PART":"מארז"}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"QUANT": float("nan")}, "not finite", id="nan"),
        pytest.param({"QUANT": float("inf")}, "not finite", id="infinity"),
        pytest.param({"SERIALNAME": "WO-\ud800"}, "lone surrogate", id="surrogate"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_never_sent(make, body, message):
    seen = []
    connector = make(lambda r: seen.append(r) or reply(201, {}))
    with pytest.raises(PipelineError, match=message) as info:
        await connector.request("POST", "/x", body=body)
    assert info.value.status == 422 and seen == []


@pytest.mark.parametrize(
    ("path", "query"),
    [pytest.param("/WO-\udc00", None, id="path"), pytest.param("/x", {"q": "\ud800"}, id="query")],
)
async def test_a_lone_surrogate_in_the_url_is_never_dropped(make, path, query):
    seen = []
    connector = make(lambda r: seen.append(r) or reply(200, {}))
    with pytest.raises(PipelineError, match="lone surrogate"):
        await connector.request("GET", path, query=query)
    assert seen == []


async def test_header_values_cannot_carry_line_breaks(make):
    seen = []
    connector = make(lambda r: seen.append(r) or reply(200, {}))
    with pytest.raises(PipelineError, match="line break"):
        await connector.request("GET", "/x", headers={"X-Ref": "a\r\nX-Admin: 1"})
    assert seen == []


async def test_missing_password_fails_only_when_a_call_uses_it(make):
    calls = []

    def handler(request):
        calls.append(request)
        return reply(200, {})

    connector = make(handler, auth={"kind": "basic", "username": "u", "password": "${ERP_PASSWORD}"})
    assert calls == []  # building the connector did not need the variable
    with pytest.raises(MissingVariableError, match="ERP_PASSWORD") as info:
        await connector.request("GET", "/x")
    assert info.value.name == "ERP_PASSWORD"
    assert calls == []


async def test_base_url_from_environment(make_mock):
    seen = []
    connector = make_mock(
        lambda r: seen.append(str(r.url)) or reply(200, {}),
        environ={"ERP_URL": "http://real.test/base"},
        base_url="${ERP_URL:-http://x}",
    )
    await connector.request("GET", "/A")
    assert seen == ["http://real.test/base/A"]
