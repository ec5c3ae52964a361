"""Secrets masked in strings, mappings, lists and log records."""

import logging

import pytest

from engine.redaction import RedactingFilter, Redactor, is_secret_name


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


def test_a_secret_used_as_a_key_is_masked_too() -> None:
    redactor = Redactor(["opensesame-4711"])
    assert redactor.redact({"opensesame-4711": 1, "plain": {"x-opensesame-4711": 2}}) == {
        "***": 1,
        "plain": {"x-***": 2},
    }


def test_keys_masked_alike_are_both_kept() -> None:
    redactor = Redactor(["opensesame-4711", "letmein-0815"])
    assert redactor.redact({"k-opensesame-4711": 1, "k-letmein-0815": 2, "k-***": 3}) == {
        "k-***": 1,
        "k-*** #2": 2,
        "k-*** #3": 3,
    }
