"""Each auth kind over HTTP (httpx.MockTransport), token refresh, relogin and the login lock."""

import asyncio
import base64
import re

import httpx
import pytest

from engine.connectors import Connector
from engine.errors import AuthError, ConnectorError, MissingVariableError
from tests.connectors.kit import reply, sent_json

PAT = "7F3C2A9B1D4E4F6A8B0C2D4E6F8A0B1C"
NEXTUP_DEAD = "AuthenticationToken lipseste, este invalid sau a expirat."


@pytest.mark.parametrize(
    ("auth", "check"),
    [
        pytest.param(
            {"kind": "basic", "username": "${PRIORITY_PAT}", "password": "PAT"},
            lambda r: (
                r.headers["authorization"] == "Basic " + base64.b64encode(f"{PAT}:PAT".encode()).decode()
            ),
            id="basic-pat",
        ),
        pytest.param(
            {"kind": "header", "name": "X-Api-Key", "value": "${PRIORITY_PAT}"},
            lambda r: r.headers["x-api-key"] == PAT,
            id="header",
        ),
        pytest.param(
            {"kind": "query", "name": "api_key", "value": "${PRIORITY_PAT}"},
            lambda r: r.url.params["api_key"] == PAT,
            id="query",
        ),
        pytest.param({"kind": "none"}, lambda r: "authorization" not in r.headers, id="none"),
    ],
)
async def test_static_kinds(make, auth, check):
    seen: list[httpx.Request] = []
    connector = make(lambda r: seen.append(r) or reply(200, {}), environ={"PRIORITY_PAT": PAT}, auth=auth)
    await connector.request("GET", "/LOGPART")
    assert check(seen[0])


async def test_basic_401_is_an_auth_error_not_retried(make):
    calls = []
    connector = make(
        lambda r: calls.append(r) or reply(401, {"error": {"message": "bad PAT"}}),
        auth={"kind": "basic", "username": "u", "password": "p"},
        envelope={"error": ["error.message"]},
    )
    with pytest.raises(AuthError, match="bad PAT"):
        await connector.request("GET", "/x")
    assert len(calls) == 1


class TokenServer:
    """A fake system issuing numbered tokens; `valid` is the set it accepts."""

    def __init__(self, *, expires_in: int | None = 3600, dead: str = "401") -> None:
        self.logins = 0
        self.valid: set[str] = set()
        self.expires_in = expires_in
        self.dead = dead
        self.seen: list[httpx.Request] = []
        self.login_requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(("/login", "/token")):
            self.login_requests.append(request)
            await asyncio.sleep(0.01)  # let concurrent callers pile up on the lock
            self.logins += 1
            token = f"tok-{self.logins:04d}"
            self.valid.add(token)
            body = {"access_token": token, "token": token}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return reply(200, body)
        self.seen.append(request)
        token = (
            request.headers.get("authorization", "").removeprefix("Bearer ")
            or request.url.params.get("access_token")
            or (sent_json(request) or {}).get("AuthenticationToken")
        )
        if token not in self.valid:
            if self.dead == "body":
                return reply(200, {"Result": False, "Error": NEXTUP_DEAD})
            return reply(401, {"meta": {"message": "Token expired", "status_code": 401}})
        return reply(200, {"Result": [token], "Error": None, "data": token})


def oauth(**extra):
    return {
        "kind": "oauth2_client_credentials",
        "token_url": "http://auth.test/token",
        "client_id": "id",
        "client_secret": "${CLIENT_SECRET:-sec-123456}",
        "scope": "public.api",
        "body": "json",
        **extra,
    }


def login(inject, **extra):
    return {
        "kind": "login",
        "request": {"path": "/login", "body": {"user": "u", "password": "pw-123456"}},
        "token": "token",
        "expires_in": "expires_in",
        "inject": inject,
        **extra,
    }


async def test_oauth2_sends_the_grant_and_a_bearer(make):
    server = TokenServer()
    connector = make(server, auth=oauth())
    assert (await connector.request("GET", "/p")).body["data"] == "tok-0001"
    grant = sent_json(server.login_requests[0])
    assert grant == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "sec-123456",
        "scope": "public.api",
    }
    assert server.seen[0].headers["authorization"] == "Bearer tok-0001"


async def test_oauth2_form_body(make):
    server = TokenServer()
    connector = make(server, auth=oauth(body="form"))
    await connector.request("GET", "/p")
    request = server.login_requests[0]
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=client_credentials" in request.content


async def test_token_refreshed_before_expiry(make, fake_time):
    server = TokenServer(expires_in=600)
    connector = make(server, auth=oauth(refresh_before=60))
    await connector.request("GET", "/p")
    fake_time.now += 500  # still 100 s left, more than refresh_before
    await connector.request("GET", "/p")
    assert server.logins == 1
    fake_time.now += 50  # 50 s left: inside refresh_before
    await connector.request("GET", "/p")
    assert server.logins == 2
    assert server.seen[-1].headers["authorization"] == "Bearer tok-0002"


async def test_token_renewed_on_401_and_call_retried_once(make):
    server = TokenServer()
    connector = make(server, auth=oauth())
    await connector.request("GET", "/p")
    server.valid.clear()  # the server forgets every token
    response = await connector.request("GET", "/p")
    assert response.body["data"] == "tok-0002"
    assert server.logins == 2
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    ("inject", "where"),
    [
        pytest.param(
            {"in": "header", "name": "Authorization", "format": "Bearer {token}"},
            lambda r: r.headers["authorization"].removeprefix("Bearer "),
            id="header",
        ),
        pytest.param(
            {"in": "query", "name": "access_token"}, lambda r: r.url.params["access_token"], id="query"
        ),
        pytest.param(
            {"in": "body", "name": "AuthenticationToken"},
            lambda r: sent_json(r)["AuthenticationToken"],
            id="body",
        ),
    ],
)
async def test_login_injection(make, inject, where):
    server = TokenServer()
    connector = make(server, auth=login(inject))
    await connector.request("POST", "/rpc", body={"Method": "GetAllArticles", "Params": {}})
    assert where(server.seen[0]) == "tok-0001"
    assert sent_json(server.login_requests[0]) == {"user": "u", "password": "pw-123456"}
    if inject["in"] == "body":
        assert sent_json(server.seen[0])["Method"] == "GetAllArticles"


async def test_relogin_on_a_200_body_predicate(make):
    server = TokenServer(dead="body")
    connector = make(
        server,
        auth=login(
            {"in": "body", "name": "AuthenticationToken"},
            expires_in=None,
            relogin_when={"status": [401], "body": "contains(Error || '', 'AuthenticationToken')"},
        ),
        envelope={"success": "Error == null", "result": "Result", "error": ["Error"]},
    )
    assert (await connector.request("POST", "/rpc", body={"Method": "X"})).result == ["tok-0001"]
    server.valid.clear()
    assert (await connector.request("POST", "/rpc", body={"Method": "X"})).result == ["tok-0002"]
    assert server.logins == 2


@pytest.mark.parametrize("dead", ["401", "body"])
async def test_a_rejected_new_token_is_not_retried_forever(make, dead):
    server = TokenServer(dead=dead)
    server.valid = frozenset()  # accepts nothing, ever

    class Never(set):
        def add(self, item):
            pass

    server.valid = Never()
    connector = make(
        server,
        auth=login(
            {"in": "body", "name": "AuthenticationToken"},
            relogin_when={"status": [401], "body": "contains(Error || '', 'AuthenticationToken')"},
        ),
        envelope={"error": ["Error", "meta.message"]},
    )
    with pytest.raises(AuthError, match="rejected a freshly obtained token") as info:
        await connector.request("POST", "/rpc", body={})
    assert server.logins == 2 and len(server.seen) == 2
    assert "Token expired" in str(info.value) or NEXTUP_DEAD in str(info.value)


async def test_twenty_concurrent_calls_with_an_expired_token_log_in_once(make, fake_time):
    server = TokenServer(expires_in=600)
    connector = make(server, auth=oauth())
    await connector.request("GET", "/p")
    fake_time.now += 3600  # expired for everyone
    results = await asyncio.gather(*(connector.request("GET", "/p") for _ in range(20)))
    assert server.logins == 2
    assert {r.body["data"] for r in results} == {"tok-0002"}


async def test_twenty_concurrent_calls_rejected_at_once_log_in_once(make):
    server = TokenServer(expires_in=None)
    connector = make(server, auth=oauth())
    await connector.request("GET", "/p")
    server.valid.clear()
    results = await asyncio.gather(*(connector.request("GET", "/p") for _ in range(20)))
    assert server.logins == 2
    assert {r.body["data"] for r in results} == {"tok-0002"}


async def test_twenty_calls_rejected_at_once_log_in_once_when_every_login_gives_the_same_token(make_mock):
    """A JSON-RPC login answers the same uid every time: a fresh login is told from the stale one by
    the login itself, not by the token's text, or each rejected call would log in again."""
    state = {"logins": 0, "valid": True, "waiting": 0}
    all_rejected = asyncio.Event()

    async def handler(request):
        if request.url.path.endswith("/login"):
            state["logins"] += 1
            state["valid"] = True
            return reply(200, {"result": 2})
        if state["valid"]:
            return reply(200, {"ok": True})
        state["waiting"] += 1
        if state["waiting"] == 20:
            all_rejected.set()
        await all_rejected.wait()  # all twenty were sent with the dead login before any is answered
        return reply(401, {"error": "Access Denied"})

    connector = make_mock(handler, auth={"kind": "login", "request": {"path": "/login"}, "token": "result"})
    await connector.request("GET", "/p")
    state["valid"] = False
    results = await asyncio.gather(*(connector.request("GET", "/p") for _ in range(20)))
    assert state["logins"] == 2
    assert {r.status for r in results} == {200}


@pytest.mark.parametrize(
    ("login_reply", "message"),
    [
        pytest.param(
            reply(200, {"Result": False, "Error": "Invalid credentials."}),
            "Invalid credentials.",
            id="nextup-200",
        ),
        pytest.param(
            reply(401, {"error": {"statusCode": 401, "message": "login failed", "code": "LOGIN_FAILED"}}),
            "login failed",
            id="loopback-401",
        ),
        pytest.param(
            reply(401, {"meta": {"message": "Incorrect credentials", "status_code": 1}, "data": []}),
            "Incorrect credentials",
            id="nextx-401",
        ),
    ],
)
async def test_failed_login_raises_auth_error_with_the_systems_message(make, login_reply, message):
    calls = []

    def handler(request):
        calls.append(request)
        return login_reply

    connector: Connector = make(
        handler,
        auth={"kind": "login", "request": {"path": "/login", "body": {}}, "token": "Result || id"},
        envelope={"error": ["Error", "error.message", "meta.message"]},
    )
    with pytest.raises(AuthError) as info:
        await connector.request("GET", "/x")
    assert str(info.value) == f"login to erp failed: {message}"
    assert len(calls) == 1


def rpc_login_server(seen: list[httpx.Request], *, uid: int = 7, cookie: str | None = None):
    """A JSON-RPC style system: login answers a numeric uid, every call carries it at params.args[1]."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = sent_json(request) or {}
        if request.url.path.endswith("/login"):
            headers = {"Set-Cookie": f"{cookie}; Path=/; HttpOnly"} if cookie else None
            return reply(
                200, {"jsonrpc": "2.0", "result": uid, "expires": "2099-01-01T00:00:00+00:00"}, headers
            )
        seen.append(request)
        return reply(200, {"jsonrpc": "2.0", "result": body.get("params", {}).get("args", [None, None])[1]})

    return handler


async def test_a_numeric_value_goes_into_a_list_index_of_the_body_keeping_its_type(make):
    seen: list[httpx.Request] = []
    connector = make(
        rpc_login_server(seen),
        auth={
            "kind": "login",
            "request": {"path": "/login", "body": {"params": {"args": ["db", "u", "pw-123456"]}}},
            "token": "result",
            "inject": {"in": "body", "path": "params.args[1]", "value": "{token}"},
        },
    )
    body = {
        "jsonrpc": "2.0",
        "params": {"service": "object", "args": ["db", None, "pw", "mrp.production", "search_read"]},
    }
    response = await connector.request("POST", "/jsonrpc", body=body)
    assert sent_json(seen[0])["params"]["args"] == ["db", "7", "pw", "mrp.production", "search_read"]
    assert response.body["result"] == "7"
    assert body["params"]["args"][1] is None  # the caller's own body is not changed


async def test_a_value_named_by_itself_keeps_its_json_type(make):
    seen: list[httpx.Request] = []
    connector = make(
        rpc_login_server(seen, uid=42),
        auth={
            "kind": "login",
            "request": {"path": "/login", "body": {}},
            "token": "jsonrpc",
            "values": {"uid": "result"},
            "inject": [{"in": "body", "path": "params.args[1]", "value": "{uid}"}],
        },
    )
    await connector.request("POST", "/jsonrpc", body={"params": {"args": ["db", None]}})
    assert sent_json(seen[0])["params"]["args"][1] == 42


RPC_AUTH = {
    "kind": "login",
    "request": {"path": "/login", "body": {"params": {"args": ["${RPC_DB}", "api", "${RPC_PASSWORD}"]}}},
    "token": "result",
    "values": {"uid": "result"},
    "inject": [
        {"in": "body", "path": "params.args[0]", "value": "${RPC_DB}"},
        {"in": "body", "path": "params.args[1]", "value": "{uid}"},
        {"in": "body", "path": "params.args[2]", "value": "${RPC_PASSWORD}"},
        {"in": "header", "name": "X-Session", "value": "${RPC_DB:-none}/{uid}"},
    ],
}


async def test_an_injected_value_reads_the_environment_at_the_call_and_is_redacted(make):
    """A password every call carries comes from `${VAR}` in the inject value, as the login's does; a
    variable's text is never read as a placeholder, and a secret-named one is redacted."""
    seen: list[httpx.Request] = []
    password = "pw-{uid}-x9"  # braces in a password are its own text
    connector = make(
        rpc_login_server(seen, uid=42), auth=RPC_AUTH, environ={"RPC_DB": "prod", "RPC_PASSWORD": password}
    )
    await connector.request("POST", "/jsonrpc", body={"params": {"args": [None, None, None, "res.partner"]}})
    assert sent_json(seen[0])["params"]["args"] == ["prod", 42, password, "res.partner"]
    assert seen[0].headers["x-session"] == "prod/42"
    assert connector.redactor.redact(f"sent {password}") == "sent ***"


async def test_an_injected_variable_that_is_not_set_fails_the_call_naming_it(make):
    auth = {**RPC_AUTH, "request": {"path": "/login", "body": {}}}
    connector = make(rpc_login_server([]), auth=auth, environ={"RPC_DB": "prod"})
    with pytest.raises(
        MissingVariableError, match=r"RPC_PASSWORD is not set \(needed by connector erp, auth.inject\[2\]"
    ):
        await connector.request("POST", "/jsonrpc", body={"params": {"args": [None, None, None]}})


async def test_a_session_cookie_is_taken_and_sent_as_a_cookie(make):
    seen: list[httpx.Request] = []
    connector = make(
        rpc_login_server(seen, cookie="B1SESSION=abc-123-def"),
        auth={
            "kind": "login",
            "request": {"path": "/login", "body": {}},
            "token": {"cookie": "B1SESSION"},
            "expires_in": {"body": "expires", "unit": "absolute"},
            "inject": [
                {"in": "cookie", "name": "B1SESSION"},
                {"in": "cookie", "name": "ROUTEID", "value": ".node1"},
            ],
        },
    )
    await connector.request("GET", "/Orders")
    assert seen[0].headers["cookie"] == "B1SESSION=abc-123-def; ROUTEID=.node1"
    assert connector.auth._expires_at is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("unit", "value", "seconds"),
    [("seconds", 90, 90), ("minutes", 30, 1800), ("hours", 1, 3600), ("minutes", "15", 900)],
)
async def test_the_lifetime_unit_is_stated(make, fake_time, unit, value, seconds):
    def handler(request):
        if request.url.path.endswith("/login"):
            return reply(200, {"SessionId": "s-123456", "SessionTimeout": value})
        return reply(200, {})

    connector = make(
        handler,
        auth={
            "kind": "login",
            "request": {"path": "/login", "body": {}},
            "token": "SessionId",
            "expires_in": {"body": "SessionTimeout", "unit": unit},
            "refresh_before": 0,
        },
    )
    await connector.request("GET", "/x")
    assert connector.auth._expires_at == pytest.approx(fake_time.now + seconds)  # type: ignore[attr-defined]


async def test_a_token_in_a_reply_header(make):
    seen = []

    def handler(request):
        if request.url.path.endswith("/login"):
            return reply(204, None, {"X-Auth-Token": "hdr-token-9"})
        seen.append(request)
        return reply(200, {})

    connector = make(
        handler,
        auth={
            "kind": "login",
            "request": {"path": "/login"},
            "token": {"header": "X-Auth-Token"},
            "inject": {"in": "header", "name": "X-Auth-Token"},
        },
    )
    await connector.request("GET", "/x")
    assert seen[0].headers["x-auth-token"] == "hdr-token-9"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        pytest.param(
            {"inject": {"in": "body", "value": "{uid}", "path": "a"}},
            "inject names {uid}",
            id="unknown-value",
        ),
        pytest.param(
            {"token": {"body": "a", "cookie": "b"}}, "exactly one of: body, header, cookie", id="two-places"
        ),
        pytest.param(
            {"inject": {"in": "header", "path": "a.b"}}, "`path` is for the body", id="path-on-header"
        ),
        pytest.param({"inject": {"in": "body", "path": "args[x]"}}, "invalid body path", id="bad-path"),
    ],
)
def test_injection_mistakes_are_config_errors(auth, message):
    from tests.connectors.kit import config

    with pytest.raises(ValueError, match=re.escape(message)):
        config(auth={"kind": "login", "request": {"path": "/l"}, "token": "t", **auth})


async def test_a_body_path_that_does_not_fit_the_body_fails_clearly(make):
    connector = make(
        rpc_login_server([]),
        auth={
            "kind": "login",
            "request": {"path": "/login"},
            "token": "result",
            "inject": {"in": "body", "path": "params.args[1]"},
        },
    )
    with pytest.raises(
        ConnectorError, match=r"cannot write at params.args\[1\]: params.args has 1 item\(s\)"
    ):
        await connector.request("POST", "/jsonrpc", body={"params": {"args": ["db"]}})


async def test_a_long_running_connector_masks_its_last_two_tokens_not_every_token_it_had(make):
    """A token is masked while a call may still carry it (the current and the previous one); older
    ones are forgotten, so the redactor does not grow with every login of a service that runs for
    months."""
    server = TokenServer(expires_in=None)
    connector = make(server, auth=oauth())
    for _ in range(5):
        await connector.request("GET", "/p")
        server.valid.clear()  # every token dies: the next call logs in again
    await connector.request("GET", "/p")
    tokens = {secret for secret in connector.redactor.secrets if secret.startswith("tok-")}
    assert server.logins >= 6
    assert tokens == {f"tok-{server.logins - 1:04d}", f"tok-{server.logins:04d}"}
    assert connector.redactor.redact(f"sent tok-{server.logins:04d}") == "sent ***"
    assert "sec-123456" in connector.redactor.secrets  # the client secret is never forgotten
