"""Retry rules by failure class, envelopes and business errors, on both transports, with fake time.

Not sent and refused unapplied attempts are retried for every method; an uncertain one only when the
call is safe to repeat (an idempotent method, `idempotent`, an idempotency key, or a verify lookup).
"""

import email.utils

import httpx
import pytest

from engine.connectors.retry import parse_retry_after
from engine.errors import (
    BusinessError,
    CertificateRefused,
    ConnectorError,
    DeadlineExceeded,
    NotSentError,
    TransientError,
    UncertainError,
)
from tests.connectors.kit import reply

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
    ("first", "failure"),
    [
        pytest.param(reply(408, "timeout"), "unapplied", id="408"),
        pytest.param(reply(429, {"error": {"message": "too many"}}), "unapplied", id="429"),
        pytest.param(reply(503, "unavailable"), "unapplied", id="503"),
        pytest.param(reply(500, "oops"), "uncertain", id="500"),
        pytest.param(reply(502, ""), "uncertain", id="502"),
        pytest.param(reply(504, ""), "uncertain", id="504"),
    ],
)
async def test_a_get_is_retried_whatever_the_failure_class(make, fake_time, first, failure):
    handler, calls = flaky(first)
    records = []
    connector = make(handler, retry=RETRY)
    connector.on_call = records.append
    response = await connector.request("GET", "/x")
    assert response.body == {"ok": True} and response.attempts == 2 and len(calls) == 2
    assert fake_time.sleeps == [1] and [r.failure for r in records] == [failure, None]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(httpx.ConnectError("connection refused"), id="not-sent"),
        pytest.param(reply(429, "slow down"), id="429"),
        pytest.param(reply(503, "unavailable"), id="503"),
        pytest.param(reply(408, "request timeout"), id="408"),
    ],
)
async def test_a_post_not_applied_is_retried(make_mock, fake_time, first):
    handler, calls = flaky(first)
    response = await make_mock(handler, retry=RETRY).request("POST", "/ALINE_ONE", body={"QUANT": 1})
    assert response.attempts == 2 and len(calls) == 2


@pytest.mark.parametrize(
    ("first", "detail"),
    [
        pytest.param(
            httpx.ReadTimeout("read timed out"), "erp did not answer: read timed out", id="no-reply"
        ),
        pytest.param(
            reply(500, {"error": {"message": "saved, then failed"}}), "HTTP 500: saved, then failed", id="500"
        ),
        pytest.param(reply(502, "bad gateway"), "HTTP 502: bad gateway", id="502"),
        pytest.param(reply(504, ""), "HTTP 504", id="504"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_an_uncertain_write_is_not_repeated(make_mock, fake_time, first, detail, method):
    handler, calls = flaky(first)
    connector = make_mock(handler, retry=RETRY, envelope={"error": ["error.message"]})
    with pytest.raises(UncertainError) as info:
        await connector.request(method, "/ALINE_ONE", body={"QUANT": 1})
    assert len(calls) == 1 and fake_time.sleeps == []
    assert info.value.status == 502 and info.value.kind == "uncertain"
    assert (
        info.value.message.startswith(f"outcome unknown after {method} /ALINE_ONE: ")
        and detail in info.value.message
    )
    assert info.value.message.endswith("erp may have applied it. Check erp before sending the event again")


@pytest.mark.parametrize(
    ("how", "expected_attempts"),
    [
        pytest.param({"idempotent": True}, 2, id="marked-idempotent"),
        pytest.param({"idempotency_key": "evt-1:report"}, 2, id="idempotency-key"),
    ],
)
async def test_an_uncertain_write_safe_to_repeat_is_repeated(make, fake_time, how, expected_attempts):
    handler, calls = flaky(reply(500, "oops"))
    connector = make(handler, retry=RETRY, idempotency_key={"header": "Idempotency-Key"})
    response = await connector.request("POST", "/x", body={}, **how)
    assert response.attempts == expected_attempts and len(calls) == expected_attempts
    if "idempotency_key" in how:
        assert {c.headers["idempotency-key"] for c in calls} == {"evt-1:report"}


async def test_an_idempotency_key_without_the_connector_header_is_not_sent_nor_trusted(make_mock):
    handler, calls = flaky(reply(500, "oops"))
    with pytest.raises(UncertainError):
        await make_mock(handler, retry=RETRY).request("POST", "/x", body={}, idempotency_key="k")
    assert "idempotency-key" not in calls[0].headers and len(calls) == 1


async def test_verify_finds_what_the_uncertain_attempt_created(make, fake_time):
    handler, calls = flaky(reply(500, "saved, then failed"))
    looked: list[int] = []

    async def verify():
        looked.append(1)
        return True, {"FORM": 12}

    response = await make(handler, retry=RETRY).request(
        "POST", "/ALINE_ONE", body={"QUANT": 1}, verify=verify
    )
    assert response.verified and response.result == {"FORM": 12}
    assert len(calls) == 1 and looked == [1] and fake_time.sleeps == []


async def test_verify_that_finds_nothing_lets_the_write_be_sent_again(make, fake_time):
    handler, calls = flaky(reply(502, "bad gateway"), then=reply(201, {"FORM": 13}))

    async def verify():
        return False, None

    response = await make(handler, retry=RETRY).request(
        "POST", "/ALINE_ONE", body={"QUANT": 1}, verify=verify
    )
    assert not response.verified and response.result == {"FORM": 13} and len(calls) == 2


async def test_verify_that_finds_nothing_after_no_reply_does_not_send_the_write_again(make_mock, fake_time):
    """The reply never came: the request may still be running at the system (a lock, a slow disk) and
    apply after the lookup ran, so a lookup that finds nothing yet cannot make a second POST safe."""
    handler, calls = flaky(httpx.ReadTimeout("read timed out"), then=reply(201, {"FORM": 13}))
    looked: list[int] = []

    async def verify():
        looked.append(1)
        return False, None

    with pytest.raises(UncertainError) as info:
        await make_mock(handler, retry=RETRY).request("POST", "/ALINE_ONE", body={"QUANT": 1}, verify=verify)
    assert len(calls) == 1 and looked == [1] and fake_time.sleeps == []
    assert info.value.kind == "uncertain" and "the verify lookup found nothing yet" in info.value.message
    assert "may still be running at erp, so it is not sent again" in info.value.message


async def test_verify_that_finds_nothing_after_a_gateway_timeout_does_not_send_the_write_again(
    make_mock, fake_time
):
    """A 504 is a gateway that stopped waiting: the request behind it may still be running at the
    system, as after no reply at all, so a lookup that finds nothing yet cannot make a second POST safe."""
    handler, calls = flaky(reply(504, "gateway timeout"), then=reply(201, {"FORM": 13}))

    async def verify():
        return False, None

    with pytest.raises(UncertainError) as info:
        await make_mock(handler, retry=RETRY).request("POST", "/ALINE_ONE", body={"QUANT": 1}, verify=verify)
    assert len(calls) == 1 and fake_time.sleeps == []
    assert "a request left by a gateway that timed out may still be running at erp" in info.value.message


async def test_a_failing_verify_leaves_the_outcome_unknown(make_mock):
    handler, calls = flaky(reply(500, "oops"))

    async def verify():
        raise TransientError("cannot reach erp")

    with pytest.raises(UncertainError, match="the lookup that would tell failed"):
        await make_mock(handler, retry=RETRY).request("POST", "/x", body={}, verify=verify)
    assert len(calls) == 1


async def test_an_idempotent_write_given_up_after_an_uncertain_attempt_is_transient(make_mock, fake_time):
    """Uncertain once, then not sent: the first may have applied, but a PUT is safe to send again, so
    a queue retries the event (no person needs to check what repeating cannot duplicate)."""
    answers = iter([reply(500, "oops")])

    def handler(request):
        answer = next(answers, None)
        if answer is None:
            raise httpx.ConnectError("refused")
        return answer

    with pytest.raises(TransientError, match="gave up after 4") as info:
        await make_mock(handler, retry=RETRY).request("PUT", "/x", body={})
    assert info.value.retryable
    assert "may have applied it, and PUT /x is safe to repeat" in info.value.message


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_a_read_that_only_got_server_errors_is_transient(make_mock, fake_time, method):
    """A read applies nothing: four 500s are a system that is failing, not an outcome to check."""
    calls = []

    def handler(request):
        calls.append(request)
        return reply(500, "oops")

    with pytest.raises(TransientError, match="gave up after 4") as info:
        await make_mock(handler, retry=RETRY).request(method, "/x")
    assert len(calls) == 4 and info.value.retryable
    assert not isinstance(info.value, UncertainError) and "applied" not in info.value.message


async def test_a_keyed_post_that_timed_out_past_the_deadline_is_transient(make_mock, fake_time):
    """A POST with an idempotency key whose attempts got no reply: the key makes a resend safe."""

    def handler(request):
        raise httpx.ReadTimeout("slow")

    connector = make_mock(handler, retry={**RETRY, "deadline": 0.5}, idempotency_key={"header": "Idem-Key"})
    with pytest.raises(TransientError) as info:
        await connector.request("POST", "/x", body={}, deadline=0.5, idempotency_key="k1")
    assert info.value.retryable and "safe to repeat" in info.value.message


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e12", 86_400.0),
        ("Fri, 01 Jan 3000 00:00:00 GMT", 86_400.0),
        ("inf", None),
        ("nan", None),
        ("-5", 0.0),
    ],
)
def test_an_absurd_retry_after_is_cut_to_a_day_or_ignored(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


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
    with pytest.raises(DeadlineExceeded, match="the deadline passed after 2 attempts") as info:
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
        lambda r: calls.append(r) or answer,
        envelope=envelope,
        retry={"unapplied": [429, 503], "uncertain": [502]},
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
    with pytest.raises(ConnectorError, match=r"^non-JSON response from erp \(HTTP 200\): proxy error$"):
        await connector.request("GET", "/x")


NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    "</center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n"
)


async def test_an_error_page_reaches_the_caller_as_the_text_it_shows(make):
    page = {"content-type": "text/html"}
    business = make(
        lambda r: reply(409, f"<!DOCTYPE html>{NGINX_502.replace('502 Bad Gateway', 'Locked')}", page)
    )
    with pytest.raises(BusinessError) as refused:
        await business.request("POST", "/x", body={})
    assert refused.value.message == "Locked: nginx/1.24.0"
    gateway = make(lambda r: reply(502, NGINX_502, page), retry=RETRY)
    with pytest.raises(TransientError) as unreachable:
        await gateway.request("GET", "/x")
    assert "erp answered HTTP 502: 502 Bad Gateway: nginx/1.24.0" in unreachable.value.message
    assert "<" not in unreachable.value.message


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
    assert seen[0].content.decode("utf-8") == '{"Method":"Ș","Params":{}}'
    assert seen[0].url.path == "/api/NextUpServices/Services/POST/"


async def test_a_refused_certificate_after_an_uncertain_attempt_says_that_attempt_may_have_applied(
    make_mock, fake_time
):
    """Uncertain once (a 500), then a TLS certificate refused (another server behind the same name): the
    second sent nothing, but the first may have applied the write, and the message must say so."""
    answers = iter([reply(500, "oops")])

    def handler(request):
        answer = next(answers, None)
        if answer is None:
            raise CertificateRefused("the TLS certificate of erp.test was refused: certificate has expired")
        return answer

    with pytest.raises(NotSentError) as info:
        await make_mock(handler, retry=RETRY).request("PUT", "/x", body={})
    assert info.value.attempts == 2 and not info.value.retryable
    assert "certificate has expired. Nothing was sent" in info.value.message
    assert info.value.message.endswith("; an attempt may have applied it, and PUT /x is safe to repeat")
    answers = iter([])  # refused at the first attempt: nothing may have applied
    with pytest.raises(NotSentError) as first:
        await make_mock(handler, retry=RETRY).request("PUT", "/x", body={})
    assert first.value.attempts == 1 and "may have applied" not in first.value.message
