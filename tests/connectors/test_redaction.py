"""Secrets a connector learns (credentials, tokens) never reach its errors, call records or logs."""

import logging

import pytest

from engine.connectors.urls import encode_query
from engine.errors import BusinessError
from tests.connectors.kit import reply


async def test_secrets_are_redacted_in_errors_and_call_records(make):
    records = []

    def handler(request):
        return reply(400, {"error": {"message": f"bad password s3cret-pw-1 from {request.url}"}})

    connector = make(
        handler,
        environ={"ERP_PASSWORD": "s3cret-pw-1", "ERP_KEY": "k-123456"},
        auth={"kind": "query", "name": "key", "value": "${ERP_KEY}"},
        envelope={"error": ["error.message"]},
    )
    connector.on_call = records.append
    with pytest.raises(BusinessError) as info:
        await connector.request("GET", "/x", body={"p": "${ERP_PASSWORD}"})
    assert "k-123456" not in str(info.value) and "***" in str(info.value)
    assert "k-123456" not in records[0].url


async def test_login_token_is_redacted_in_logs(make, caplog):
    def handler(request):
        if request.url.path.endswith("/login"):
            return reply(200, {"token": "tok-abcdef-123"})
        return reply(500, {"message": "token tok-abcdef-123 crashed"})

    connector = make(
        handler,
        retry={"max_attempts": 1},
        auth={"kind": "login", "request": {"path": "/login"}, "token": "token"},
        envelope={"error": ["message"]},
    )
    connector.redactor.add("unused-secret")
    with pytest.raises(Exception) as info:
        await connector.request("GET", "/x")
    assert "tok-abcdef-123" not in str(info.value)


@pytest.mark.parametrize("key", ["Tr0ub4dor&3!", "p@ss word:1", "x$y+z/é"])
async def test_a_query_secret_is_redacted_as_the_url_carries_it(make, caplog, key):
    """A key holding `! @ : $ /` and a character to escape is written `Tr0ub4dor%263!` in the query:
    that form is masked too, in an ERP error echoing the URL, the call record and the debug log."""
    records = []

    def handler(request):
        return reply(400, {"error": {"message": f"refused {request.url}"}})

    connector = make(
        handler,
        environ={"ERP_KEY": key},
        auth={"kind": "query", "name": "key", "value": "${ERP_KEY}"},
        envelope={"error": ["error.message"]},
        retry={"max_attempts": 1},
    )
    connector.on_call = records.append
    caplog.set_level(logging.DEBUG, "mesbridge")
    with pytest.raises(BusinessError) as info:
        await connector.request("GET", "/x")
    written = encode_query({"key": key})[len("key=") :]
    shown = [str(info.value), records[0].url, *(r.getMessage() for r in caplog.records)]
    assert "key=***" in str(info.value)
    assert not [text for text in shown if key in text or written in text]
