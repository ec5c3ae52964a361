"""The door, over real HTTP: one case per refusal class, with its exact status and message, and no ERP
call; the edge just inside each limit is admitted; caller auth with bytes a server cannot read is a 401;
a reply quotes whatever it must and still encodes."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.errors import StartupError
from engine.service.app import JsonReply
from engine.service.server import ServiceHost

from .conftest import REPO, Sims, url, wait_for, write_root

LIMITS = {"max_body_bytes": 65536, "max_string_chars": 1000}
"""The defaults but for a body large enough for 5,000-deep JSON and a short string limit."""

DOOR = """\
pipelines:
  - name: door.operation
    source: {kind: webhook, path: /op, mode: sync, schema: schemas/operation.json}
    reply: {status: 200, body: {ok: true}}
  - name: door.basic
    source:
      kind: webhook
      path: /basic
      auth: {kind: basic, username: api, password: "${DOOR_PASSWORD}"}
    reply: {status: 200, body: {ok: true}}
"""

JSON = "application/json"


def event(**fields: object) -> bytes:
    return json.dumps({"workorderNumber": "D-1", "sku": "S", "quantity": 1, **fields}).encode()


def raw(text: str) -> bytes:
    """JSON text written by hand (duplicate keys, NaN, escapes), as UTF-8."""
    return text.encode("utf-8")


@dataclass
class Door:
    host: ServiceHost
    client: httpx.AsyncClient
    sims: Sims

    def erp_calls(self) -> int:
        return len(self.sims.sims["nextplus"].calls)

    async def post(
        self, route: str, body: bytes, content_type: str | None = JSON, **headers: str
    ) -> httpx.Response:
        if content_type is not None:
            headers["content-type"] = content_type
        return await self.client.post(url(self.host.url, route), content=body, headers=headers)


@pytest.fixture
async def door(tmp_path: Path, sims: Sims) -> AsyncIterator[Door]:
    root = write_root(tmp_path, settings=LIMITS)
    (root / "mappings" / "test" / "door.yaml").write_text(DOOR)
    shutil.copy(
        REPO / "schemas" / "integration-builder" / "operation.json", root / "schemas" / "operation.json"
    )
    environ = {**sims.environ, "DOOR_PASSWORD": "s3cret"}
    host = ServiceHost(root, port=0, host="127.0.0.1", environ=environ, reload=False)
    await host.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield Door(host, client, sims)
    finally:
        await host.stop()


DEEP = "[" * 5000 + "]" * 5000
QTY = '{"workorderNumber": "D-1", "sku": "S", "quantity": '

# fmt: off
REFUSED = [
    # strict JSON: each names the problem and the field path, or the byte offset
    pytest.param(raw('{"a":' + '[' * 64 + ']' * 64 + '}'), JSON, 400, 'JSON nested deeper than 64 levels at byte offset 68', id='depth-65'),
    pytest.param(raw('[' * 700 + ']' * 700), JSON, 400, 'JSON nested deeper than 64 levels at byte offset 64', id='depth-700'),
    pytest.param(raw(DEEP), JSON, 400, 'JSON nested deeper than 64 levels at byte offset 64', id='depth-5000'),
    pytest.param(raw(QTY + '1' * 101 + '}'), JSON, 400, 'integer of 101 digits (limit 100) at quantity', id='integer-101-digits'),
    pytest.param(raw(QTY + '-' + '9' * 101 + '}'), JSON, 400, 'integer of 101 digits (limit 100) at quantity', id='negative-integer-101-digits'),
    pytest.param(raw(QTY + '7' * 5000 + '}'), JSON, 400, 'integer of 5000 digits (limit 100) at quantity', id='integer-5000-digits'),
    pytest.param(raw(QTY + 'NaN}'), JSON, 400, 'non-finite number NaN at quantity', id='nan'),
    pytest.param(raw(QTY + 'Infinity}'), JSON, 400, 'non-finite number Infinity at quantity', id='infinity'),
    pytest.param(raw(QTY + '-Infinity}'), JSON, 400, 'non-finite number -Infinity at quantity', id='minus-infinity'),
    pytest.param(raw(QTY + '1e400}'), JSON, 400, 'number 1e400 is out of range (not finite) at quantity', id='1e400'),
    pytest.param(raw('{"items": [1, {"q": -1E999}]}'), JSON, 400, 'number -1E999 is out of range (not finite) at items[1].q', id='nested-1e999'),
    pytest.param(raw('{"workorderNumber": "WO-\\ud800", "sku": "S", "quantity": 1}'), JSON, 400, 'lone surrogate \\ud800 in a string at workorderNumber', id='lone-high-surrogate'),
    pytest.param(raw('{"workorderNumber": "\\udc00\\ud83d", "sku": "S", "quantity": 1}'), JSON, 400, 'lone surrogate \\udc00 in a string at workorderNumber', id='reversed-pair'),
    pytest.param(raw('{"a b": ["x", "\\uDFFF"]}'), JSON, 400, 'lone surrogate \\udfff in a string at ["a b"][1]', id='surrogate-in-array'),
    pytest.param(raw('{"\\ud800": 1}'), JSON, 400, 'lone surrogate \\ud800 in a key at the top level', id='surrogate-in-key'),
    pytest.param(raw('"\\ud800"'), JSON, 400, 'lone surrogate \\ud800 in a string at the top level', id='surrogate-top-level'),
    pytest.param(raw('{"workorderNumber": "WO-\\u00001", "sku": "S", "quantity": 1}'), JSON, 400, 'NUL character \\u0000 in a string at workorderNumber', id='nul-in-string'),
    pytest.param(raw('{"items": [{"sku": "S", "a\\u0000": 1}]}'), JSON, 400, 'NUL character \\u0000 in a key at items[0]', id='nul-in-key'),
    pytest.param(raw('{"type": "add", "type": "remove"}'), JSON, 400, 'duplicate key "type" at the top level', id='duplicate-key'),
    pytest.param(raw('{"item": {"sku": "A", "qty": 1, "sku": "B"}}'), JSON, 400, 'duplicate key "sku" at item', id='nested-duplicate-key'),
    pytest.param(event(sku='s' * 1001), JSON, 400, 'string of 1001 characters (limit 1000) at sku', id='long-string'),
    pytest.param(raw('{"' + 'k' * 1001 + '": 1}'), JSON, 400, 'key of 1001 characters (limit 1000) at the top level', id='long-key'),
    # the body's bytes
    pytest.param(b'{"workorderNumber": "\xff"}', JSON, 400, 'request body is not UTF-8: invalid start byte at byte offset 21', id='invalid-utf8'),
    pytest.param(b'{"workorderNumber": "\xd7"}', JSON, 400, 'request body is not UTF-8: invalid continuation byte at byte offset 21', id='truncated-utf8'),
    pytest.param(b'{"workorderNumber": "\xed\xa0\x80"}', JSON, 400, 'request body is not UTF-8: invalid continuation byte at byte offset 21', id='utf8-encoded-surrogate'),
    pytest.param(b'\xef\xbb\xbf' + event(), JSON, 400, 'request body starts with a UTF-8 byte order mark; send UTF-8 without one', id='utf8-bom'),
    pytest.param(event().decode().encode('utf-16'), JSON, 400, 'request body starts with a UTF-16 byte order mark; send UTF-8 without one', id='utf16-bom'),
    pytest.param(event().decode().encode('utf-16-le'), JSON, 400, 'request body is not UTF-8 JSON: NUL byte at byte offset 1 (UTF-16 or UTF-32?)', id='utf16-no-bom'),
    pytest.param(event().decode().encode('utf-32'), JSON, 400, 'request body starts with a UTF-32 byte order mark; send UTF-8 without one', id='utf32-bom'),
    pytest.param(b'{"workorderNumber": "D-1", "sku": ', JSON, 400, 'malformed JSON: Expecting value at line 1 column 35 (byte offset 34)', id='truncated'),
    pytest.param(raw('{"sku": "אב", "quantity": x}'), JSON, 400, 'malformed JSON: Expecting value at line 1 column 27 (byte offset 28)', id='malformed-after-hebrew'),
    pytest.param(b'', JSON, 400, 'empty request body; expected a JSON object', id='empty'),
    pytest.param(b'x' * 65537, JSON, 413, 'request body over 65536 bytes', id='too-large'),
    # the Content-Type
    pytest.param(event(), None, 415, 'missing Content-Type; expected application/json', id='no-content-type'),
    pytest.param(event(), 'text/plain', 415, 'expected Content-Type application/json, got text/plain', id='text-plain'),
    pytest.param(event(), 'application/x-www-form-urlencoded', 415, 'expected Content-Type application/json, got application/x-www-form-urlencoded', id='form'),
    pytest.param(event(), 'application/json; charset=utf-16', 415, 'unsupported charset utf-16 in Content-Type; expected utf-8', id='charset-utf16'),
    pytest.param(event(), 'application/json; charset="latin-1"', 415, 'unsupported charset latin-1 in Content-Type; expected utf-8', id='charset-latin1'),
    # well-formed, but not an event the pipeline takes
    pytest.param(raw('[1, 2]'), JSON, 422, 'expected a JSON object, got array', id='not-an-object'),
    pytest.param(event(quantity='many'), JSON, 422, 'invalid event: quantity must be number, got string', id='schema'),
]
# fmt: on


@pytest.mark.parametrize(("body", "content_type", "status", "message"), REFUSED)
async def test_each_refusal_names_the_problem_and_calls_no_erp(
    door: Door,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str | None,
    status: int,
    message: str,
) -> None:
    caplog.set_level(logging.INFO)
    before = door.erp_calls()
    response = await door.post("/wo-sync", body, content_type)
    assert (response.status_code, response.json()) == (status, {"message": message})
    assert door.erp_calls() == before
    assert (await door.client.get(f"{door.host.url}/healthz")).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# fmt: off
ADMITTED = [
    pytest.param(raw('{"workorderNumber": "E-depth", "sku": "S", "quantity": 1, "a": ' + '[' * 63 + ']' * 63 + '}'), JSON, id='depth-64'),
    pytest.param(raw('{"workorderNumber": "E-digits", "sku": "S", "quantity": ' + '1' * 100 + '}'), JSON, id='integer-100-digits'),
    pytest.param(raw('{"workorderNumber": "E-float", "sku": "S", "quantity": 1.7976931348623157e308}'), JSON, id='largest-double'),
    pytest.param(raw('{"workorderNumber": "E-tiny", "sku": "S", "quantity": 1, "scrap": 1e-400}'), JSON, id='underflow-is-zero'),
    pytest.param(event(workorderNumber='E-chars', sku='s' * 1000), JSON, id='string-1000-chars'),
    pytest.param(raw('{"workorderNumber": "E-\\ud83d\\ude00", "sku": "\\u05d0", "quantity": 1}'), JSON, id='surrogate-pair-escape'),
    pytest.param(raw('{"workorderNumber": "E-hebrew", "sku": "אבג 😀", "quantity": 1}'), JSON, id='utf8-text'),
    pytest.param(event(workorderNumber='E-charset'), 'application/json; charset=UTF-8', id='charset-utf8'),
    pytest.param(event(workorderNumber='E-suffix'), 'application/vnd.nextplus.event+json', id='plus-json'),
]
# fmt: on


@pytest.mark.parametrize(("body", "content_type"), ADMITTED)
async def test_just_inside_each_limit_is_admitted(door: Door, body: bytes, content_type: str) -> None:
    response = await door.post("/wo-sync", body, content_type)
    assert response.status_code == 201, response.text

    def created() -> list[str]:  # the simulator records a call once it has answered it
        calls = door.sims.sims["nextplus"].calls
        return [c["body"]["workorderNumber"] for c in calls if c["path"] == "/api/Workorders/"]

    assert await wait_for(created, 5)
    assert created() == [json.loads(body)["workorderNumber"]]


def basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        pytest.param(b"Basic \xc3\xa9\xff\xfe", "malformed Basic credentials", id="non-ascii-bytes"),
        pytest.param(basic(b"\xff\xfe:\x80"), "malformed Basic credentials", id="credentials-not-utf8"),
        pytest.param(basic("אפי:סוד".encode()), "wrong username or password", id="utf8-credentials"),
        pytest.param(b"Basic !!!", "malformed Basic credentials", id="not-base64"),
        pytest.param(
            "Bearer \u00e9".encode("latin-1"), "HTTP Basic authentication required", id="other-scheme"
        ),
    ],
)
async def test_basic_auth_with_bytes_it_cannot_read_is_401(
    door: Door, authorization: bytes, message: str
) -> None:
    response = await door.client.post(
        f"{door.host.url}/basic",
        content=b"{}",
        headers={"content-type": JSON, "authorization": authorization},
    )
    assert (response.status_code, response.json()) == (401, {"message": message})
    assert response.headers["www-authenticate"] == 'Basic realm="mesbridge"'
    good = await door.client.post(
        f"{door.host.url}/basic",
        content=b"{}",
        headers={"content-type": JSON, "authorization": basic(b"api:s3cret")},
    )
    assert good.status_code == 200


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        pytest.param(
            None, "MESBRIDGE_WEBHOOK_TOKEN is empty (needed by settings webhook_auth, secret)", id="query"
        ),
        pytest.param(
            '{kind: shared_secret, in: header, secret: "${DOOR_SECRET:-}"}',
            "DOOR_SECRET is empty (needed by pipeline door.own, secret)",
            id="default-empty",
        ),
        pytest.param(
            '{kind: hmac, secret: "${DOOR_SECRET}"}',
            "DOOR_SECRET is empty (needed by pipeline door.own, secret)",
            id="hmac",
        ),
        pytest.param(
            '{kind: basic, username: "${DOOR_SECRET}", password: "${DOOR_SECRET}"}',
            "DOOR_SECRET is empty (needed by pipeline door.own, username)",
            id="basic",
        ),
    ],
)
async def test_an_empty_caller_secret_stops_the_start(
    tmp_path: Path, sims: Sims, auth: str | None, message: str
) -> None:
    """An empty secret would admit a caller sending none (`?token=`, an HMAC under an empty key, Basic
    `:`): the start is refused as for an unset one, never a door that opens to anyone."""
    root = write_root(tmp_path)
    if auth is not None:
        (root / "mappings" / "test" / "own.yaml").write_text(
            "pipelines:\n  - name: door.own\n    source:\n      kind: webhook\n      path: /own\n"
            f"      auth: {auth}\n    reply: {{status: 200, body: {{ok: true}}}}\n"
        )
    environ = {**sims.environ, "DOOR_SECRET": ""} if auth else {**sims.environ, "MESBRIDGE_WEBHOOK_TOKEN": ""}
    host = ServiceHost(root, port=0, host="127.0.0.1", environ=environ, reload=False)
    with pytest.raises(StartupError, match="an empty secret would let in every caller") as refused:
        await host.start()
    assert message in str(refused.value)


async def test_a_webhook_without_caller_auth_is_warned_of_at_the_start(
    tmp_path: Path, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    """No `auth` and no `webhook_auth` lets anyone in: the start says so, unless `kind: none` says it is meant."""
    root = write_root(tmp_path, settings={"webhook_auth": None})
    (root / "mappings" / "test" / "own.yaml").write_text(
        "pipelines:\n  - name: door.own\n    source: {kind: webhook, path: /own, auth: {kind: none}}\n"
        "    reply: {status: 200, body: {ok: true}}\n"
    )
    host = ServiceHost(root, port=0, host="127.0.0.1", environ=sims.environ, reload=False)
    await host.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answered = await client.post(url(host.url, "/wo-sync", token=None), json={"workorderNumber": "x"})
    finally:
        await host.stop()
    assert answered.status_code != 401
    [warning] = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "caller" in r.getMessage()
    ]
    assert warning.startswith("no caller authentication on webhook /nu, /nx, /wo, /wo-sync: any caller")
    assert "/own" not in warning


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        pytest.param(
            b"POST /basic HTTP/1.1\r\nAuthorization: Basic \x01\x7f\r\n", 400, id="control-bytes-in-header"
        ),
        pytest.param(b"POST /wo-sync\xff\xfe HTTP/1.1\r\n", 400, id="raw-bytes-in-path"),
        pytest.param(b"POST /wo-sync?token=\xff HTTP/1.1\r\n", 400, id="raw-bytes-in-query"),
        pytest.param(b"POST /wo%ff%ed%a0%80 HTTP/1.1\r\n", 404, id="escaped-bytes-in-path"),
        pytest.param(b"POST /wo-sync?token=%ff%ed%a0%80 HTTP/1.1\r\n", 401, id="escaped-bytes-in-query"),
    ],
)
async def test_bytes_the_server_cannot_read_are_a_4xx(door: Door, request_head: bytes, status: int) -> None:
    port = int(door.host.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head + b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert line.startswith(b"HTTP/1.1 %d " % status), line


async def test_a_422_quoting_any_value_encodes(door: Door) -> None:
    response = await door.post("/op", raw('{"type": "\\ud83d\\ude00 הוספה", "workorderNumber": "W"}'))
    assert response.status_code == 422
    assert response.json() == {
        "message": 'invalid event: type must be one of "add", "remove", got "😀 הוספה"'
    }


@pytest.mark.parametrize(
    ("content", "encoded"),
    [
        pytest.param({"message": "x\ud800y"}, b'{"message":"x\\ud800y"}', id="lone-surrogate"),
        pytest.param({"\udfff": ["\ud800"]}, b'{"\\udfff":["\\ud800"]}', id="surrogate-key"),
        pytest.param({"message": "אב 😀"}, '{"message":"אב 😀"}'.encode(), id="utf8"),
    ],
)
def test_a_json_reply_encodes_whatever_it_quotes(content: object, encoded: bytes) -> None:
    reply = JsonReply(content, status_code=422)
    assert (reply.status_code, reply.body) == (422, encoded)
    assert json.loads(reply.body) == content


@pytest.mark.parametrize(
    "content",
    [{"externalId": float("nan")}, {"message": "x\ud800", "qty": float("inf")}],
    ids=["nan", "infinity-beside-a-lone-surrogate"],
)
def test_a_json_reply_with_a_non_finite_number_says_so(content: object) -> None:
    reply = JsonReply(content, status_code=201)
    assert reply.status_code == 502
    assert json.loads(reply.body) == {
        "message": "the reply holds a number JSON cannot carry (NaN or Infinity); see the mesbridge log"
    }
