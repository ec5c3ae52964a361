import logging

import pytest

from engine.errors import BusinessError
from engine.redaction import RedactingFilter, Redactor, is_secret_name
from tests.connectors.kit import reply


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("PRIORITY_PAT", True),
        ("NEXTX_CLIENT_SECRET", True),
        ("NEXTUP_PASSWORD", True),
        ("API_KEY", True),
        ("ERP_TOKEN", True),
        ("PATH", False),
        ("PRIORITY_URL", False),
        ("NEXTUP_USERNAME", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_redacts_strings_dicts_and_lists():
    r = Redactor(["s3cr3t-value", "PAT"])
    assert r.redact("a s3cr3t-value b") == "a *** b"
    assert r.redact({"x": ["s3cr3t-value"], "Authorization": "Basic abc", "n": 1}) == {
        "x": ["***"],
        "Authorization": "***",
        "n": 1,
    }
    assert r.redact("PATCH /x") == "PATCH /x"  # too short to be a secret


def test_logging_filter(caplog):
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter(Redactor(["hunter2-pass"])))
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("login with %s", "hunter2-pass")
    assert caplog.messages == ["login with ***"]


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
