"""Secrets a connector learns (credentials, tokens) never reach its errors, call records or logs."""

import pytest

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
