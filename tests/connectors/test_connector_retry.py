"""Retry rules, envelopes and business errors over HTTP, with injected sleep and clock."""

import email.utils

import httpx
import pytest

from engine.errors import BusinessError, ConnectorError, DeadlineExceeded, TransientError
from tests.connectors.connector_kit import reply

HEBREW = 'פק"ע WO-9 לא קיימת במערכת'
ROMANIAN = "Stoc insuficient pentru articolul MP-001 în gestiunea Depozit central."
RETRY = {
    "max_attempts": 4,
    "backoff": {"initial": 1, "multiplier": 2, "max": 5, "jitter": False},
    "deadline": 60,
}


def flaky(first, then=None):
    """A handler failing with `first` (a reply or an exception) once, then answering 200."""
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            if isinstance(first, Exception):
                raise first
            return first
        return then or reply(200, {"ok": True})

    return handler, calls


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(httpx.ConnectError("connection refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("read timed out"), id="timeout"),
        pytest.param(reply(408, "timeout"), id="408"),
        pytest.param(reply(429, {"error": {"message": "too many"}}), id="429"),
        pytest.param(reply(503, "unavailable"), id="503"),
        pytest.param(reply(502, ""), id="502"),
    ],
)
async def test_transient_failures_are_retried(make, fake_time, first):
    handler, calls = flaky(first)
    response = await make(handler, retry=RETRY).request("GET", "/x")
    assert response.body == {"ok": True} and response.attempts == 2 and len(calls) == 2
    assert fake_time.sleeps == [1]


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [pytest.param("7", 7.0, id="seconds"), pytest.param("http-date", 30.0, id="http-date")],
)
async def test_retry_after_is_honoured(make, fake_time, monkeypatch, retry_after, expected):
    now = 1_700_000_000.0
    monkeypatch.setattr("engine.connectors.retry.time.time", lambda: now)
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(now + 30, usegmt=True)
    handler, _ = flaky(reply(429, "slow down", {"Retry-After": retry_after}))
    await make(handler, retry=RETRY).request("GET", "/x")
    assert fake_time.sleeps == [pytest.approx(expected)]


async def test_retry_after_past_the_deadline_fails_at_once(make, fake_time):
    handler, calls = flaky(reply(429, "slow down", {"Retry-After": "120"}))
    with pytest.raises(DeadlineExceeded, match="Retry-After 120") as info:
        await make(handler, retry=RETRY).request("GET", "/x")
    assert fake_time.sleeps == [] and info.value.attempts == 1 and info.value.http_status == 429


async def test_backoff_grows_and_attempts_run_out(make, fake_time):
    calls = []
    connector = make(
        lambda r: calls.append(r) or reply(503, {"message": "down"}),
        retry=RETRY,
        envelope={"error": ["message"]},
    )
    with pytest.raises(TransientError) as info:
        await connector.request("GET", "/x")
    assert not isinstance(info.value, DeadlineExceeded)
    assert len(calls) == 4 and info.value.attempts == 4
    assert fake_time.sleeps == [1, 2, 4]
    assert "HTTP 503: down" in str(info.value) and info.value.http_status == 503


async def test_full_jitter_stays_within_the_backoff(make, fake_time):
    connector = make(lambda r: reply(503), retry={**RETRY, "backoff": {**RETRY["backoff"], "jitter": True}})
    connector.retry.rng = lambda: 0.25
    with pytest.raises(TransientError):
        await connector.request("GET", "/x")
    assert fake_time.sleeps == [0.25, 0.5, 1.0]


async def test_deadline(make, fake_time):
    retry = {
        "max_attempts": 10,
        "backoff": {"initial": 4, "multiplier": 2, "max": 100, "jitter": False},
        "deadline": 10,
    }
    with pytest.raises(DeadlineExceeded, match="deadline of 10 s") as info:
        await make(lambda r: reply(503), retry=retry).request("GET", "/x")
    assert fake_time.sleeps == [4] and info.value.attempts == 2


async def test_call_deadline_shortens_the_connector_deadline(make, fake_time):
    with pytest.raises(DeadlineExceeded):
        await make(lambda r: reply(503), retry=RETRY).request("GET", "/x", deadline=0.5)
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("answer", "envelope", "message"),
    [
        pytest.param(
            reply(400, {"FORM": {"@TYPE": "ALINE_ONE", "InterfaceErrors": {"text": HEBREW}}}),
            {"error": ["FORM.InterfaceErrors.text", "error.message"]},
            HEBREW,
            id="priority-hebrew",
        ),
        pytest.param(
            reply(500, {"error": {"code": "", "message": "שגיאה כללית"}}),
            {"error": ["FORM.InterfaceErrors.text", "error.message"]},
            "שגיאה כללית",
            id="priority-500",
        ),
        pytest.param(
            reply(200, {"Result": False, "Error": ROMANIAN}),
            {"success": "Error == null", "result": "Result", "error": ["Error"]},
            ROMANIAN,
            id="nextup-romanian",
        ),
        pytest.param(
            reply(422, {"meta": {"message": "branch_id là bắt buộc", "status_code": 422}, "data": []}),
            {"result": "data", "error": ["meta.message"]},
            "branch_id là bắt buộc",
            id="nextx",
        ),
        pytest.param(
            reply(422, {"error": {"statusCode": 422, "message": "`sku` can't be blank"}}),
            {"error": ["error.message"]},
            "`sku` can't be blank",
            id="loopback",
        ),
        pytest.param(reply(404, "Not Found"), {"error": ["error.message"]}, "Not Found", id="text"),
    ],
)
async def test_business_errors_are_not_retried_and_keep_their_message(make, answer, envelope, message):
    calls = []
    connector = make(
        lambda r: calls.append(r) or answer, envelope=envelope, retry={"statuses": [408, 429, 502, 503, 504]}
    )
    with pytest.raises(BusinessError) as info:
        await connector.request("POST", "/x", body={})
    assert str(info.value) == message and info.value.message == message
    assert len(calls) == 1 and info.value.connector == "erp"


async def test_long_messages_are_cut(make):
    connector = make(lambda r: reply(400, {"Error": "x" * 10_000}), envelope={"error": ["Error"]})
    with pytest.raises(BusinessError) as info:
        await connector.request("GET", "/x")
    assert 1000 < len(str(info.value)) <= 4000


async def test_result_path(make):
    connector = make(
        lambda r: reply(200, {"meta": {"status_code": 200}, "data": [1, 2]}), envelope={"result": "data"}
    )
    assert (await connector.request("GET", "/x")).result == [1, 2]


async def test_empty_body_gives_a_clear_error(make):
    connector = make(lambda r: reply(200, ""), envelope={"success": "Error == null", "result": "Result"})
    with pytest.raises(ConnectorError, match=r"^empty response from erp \(HTTP 200\)"):
        await connector.request("POST", "/x", body={})


async def test_non_json_body_gives_a_clear_error(make):
    connector = make(lambda r: reply(200, "<html>proxy error</html>"), envelope={"result": "Result"})
    with pytest.raises(ConnectorError, match=r"non-JSON response from erp \(HTTP 200\): <html>proxy"):
        await connector.request("GET", "/x")


async def test_empty_body_is_fine_without_an_envelope(make):
    assert (await make(lambda r: reply(204)).request("DELETE", "/x")).result is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
async def test_body_is_json_in_the_configured_content_type(make, content_type):
    seen = []
    connector = make(
        lambda r: seen.append(r) or reply(200, {"Result": 1, "Error": None}), content_type=content_type
    )
    await connector.request("POST", "/NextUpServices/Services/POST/", body={"Method": "Ș", "Params": {}})
    assert seen[0].headers["content-type"] == content_type
    assert seen[0].content.decode("utf-8") == '{"Method": "Ș", "Params": {}}'
    assert seen[0].url.path == "/api/NextUpServices/Services/POST/"
