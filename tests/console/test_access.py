"""Who gets into the console: off without users, the login, its cookies, sessions, CSRF, the prefix."""

from __future__ import annotations

import asyncio
import re

import httpx

from engine.config.root import load_project
from engine.console.sessions import LOGIN_COOKIE, SESSION_COOKIE
from engine.service.app import Service, create_app
from engine.service.generation import Generation
from tests.console.conftest import (
    OTHER,
    OTHER_PASSWORD,
    Console,
    ConsoleFactory,
    add_dead,
    csrf_of,
    environ,
    hashes,
)
from tests.console.stack import PASSWORD, USER, WEBHOOK_TOKEN, write_root


def _cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")]


async def test_without_console_users_console_paths_answer_as_any_unknown_path(tmp_path) -> None:
    env = environ()
    del env["MESBRIDGE_CONSOLE_USERS"]
    project = load_project(write_root(tmp_path), environ=env)
    service = Service(Generation(project, environ=env), environ=env)
    app = create_app(service)
    assert app.state.console is None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path in ("/console", "/console/login", "/console/events", "/console/static/console.css"):
            for method in ("GET", "POST"):
                reply = await client.request(method, f"{path}?token={WEBHOOK_TOKEN}")
                unknown = await client.request(method, f"/no-such-route?token={WEBHOOK_TOKEN}")
                assert (reply.status_code, unknown.status_code) == (404, 404), path
                assert reply.json() == {"message": f"no pipeline at {path}"}
                assert "set-cookie" not in reply.headers
    await service.generation.retire()


async def test_a_page_without_a_session_sends_to_the_login_and_back(console: Console) -> None:
    wanted = console.path("/events?q=WO-1")
    first = await console.client.get(wanted)
    assert first.status_code == 303
    assert first.headers["location"] == "/console/login?next=%2Fconsole%2Fevents%3Fq%3DWO-1"
    page = await console.client.get(first.headers["location"])
    assert page.status_code == 200 and 'name="password"' in page.text
    assert 'name="next" value="/console/events?q=WO-1"' in page.text
    token = csrf_of(page.text)
    done = await console.client.post(
        console.path("/login"),
        data={"user": USER, "password": PASSWORD, "csrf": token, "next": "/console/events?q=WO-1"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/events?q=WO-1"
    assert (await console.client.get(done.headers["location"])).status_code == 200


async def test_login_sets_a_strict_httponly_session_cookie_and_drops_the_login_cookie(
    console: Console,
) -> None:
    done = await console.login()
    assert done.status_code == 303 and done.headers["location"] == "/console"
    [session] = _cookie_headers(done, SESSION_COOKIE)
    parts = {part.strip().split("=")[0].lower() for part in session.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= parts and "secure" not in parts
    assert "Path=/console" in session and "SameSite=strict" in session and "Max-Age=28800" in session
    [login] = _cookie_headers(done, LOGIN_COOKIE)
    assert "Max-Age=0" in login
    overview = await console.client.get(console.path())
    assert overview.status_code == 200 and ">alice<" in overview.text


async def test_the_cookies_are_secure_when_the_proxy_says_the_browser_used_https(console: Console) -> None:
    done = await console.login(**{"X-Forwarded-Proto": "https"})
    [session] = _cookie_headers(done, SESSION_COOKIE)
    assert "Secure" in session
    forwarded = await console.client.get(
        console.path("/login"), headers={"Forwarded": "for=1.2.3.4;proto=https"}
    )
    [login] = _cookie_headers(forwarded, LOGIN_COOKIE)
    assert "Secure" in login


async def test_a_wrong_password_or_user_is_a_401_that_does_not_say_which(console: Console) -> None:
    wrong_password = await console.login(password="not-the-password")
    unknown_user = await console.login(user="mallory", password=PASSWORD)
    for reply in (wrong_password, unknown_user):
        assert reply.status_code == 401
        assert "Wrong user name or password." in reply.text
        assert _cookie_headers(reply, SESSION_COOKIE) == []
    assert (await console.client.get(console.path())).status_code == 303


async def test_a_login_without_its_form_token_is_refused(console: Console) -> None:
    _page, token = await console.login_form()
    data = {"user": USER, "password": PASSWORD}
    for form in (data, {**data, "csrf": "forged"}):
        reply = await console.client.post(console.path("/login"), data=form)
        assert reply.status_code == 403 and "Login form refused" in reply.text
        assert _cookie_headers(reply, SESSION_COOKIE) == []
    console.client.cookies.delete(LOGIN_COOKIE)
    reply = await console.client.post(console.path("/login"), data={**data, "csrf": token})
    assert reply.status_code == 403
    assert (await console.client.get(console.path())).status_code == 303


async def test_repeated_failed_logins_are_throttled_even_with_the_right_password(console: Console) -> None:
    for _ in range(5):
        assert (await console.login(password="guess-again")).status_code == 401
    throttled = await console.login()
    assert throttled.status_code == 429 and "Too many failed logins" in throttled.text
    assert int(throttled.headers["retry-after"]) > 0
    assert _cookie_headers(throttled, SESSION_COOKIE) == []
    assert (await console.login(user=OTHER, password=OTHER_PASSWORD)).status_code == 303


async def test_failed_logins_sent_together_are_throttled_as_if_sent_one_by_one(console: Console) -> None:
    """Each attempt is counted before its password is checked: a burst gets five guesses, not one each."""
    page, token = await console.login_form()
    cookies = {LOGIN_COOKIE: page.cookies[LOGIN_COOKIE]}

    async def guess(number: int) -> int:
        transport = httpx.ASGITransport(app=console.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", cookies=cookies) as client:
            form = {"user": USER, "password": f"guess-{number}", "csrf": token}
            return (await client.post(console.path("/login"), data=form)).status_code

    statuses = sorted(await asyncio.gather(*(guess(number) for number in range(30))))
    assert statuses == [401] * 5 + [429] * 25
    assert (await console.login()).status_code == 429
    assert (await console.login(user=OTHER, password=OTHER_PASSWORD)).status_code == 303


async def test_after_the_login_only_console_pages_are_redirected_to(console: Console) -> None:
    for wanted in ("https://elsewhere.example/", "//elsewhere.example/console", "/status", "/console/logout"):
        console.client.cookies.clear()
        _page, token = await console.login_form()
        done = await console.client.post(
            console.path("/login"), data={"user": USER, "password": PASSWORD, "csrf": token, "next": wanted}
        )
        assert done.headers["location"] == "/console", wanted


async def test_a_tampered_session_cookie_is_not_a_session(console: Console) -> None:
    await console.login()
    cookie = console.client.cookies[SESSION_COOKIE]
    data, mac = cookie.split(".")
    other_user = data[:-2] + ("AA" if data[-2:] != "AA" else "BB")
    for forged in (f"{other_user}.{mac}", f"{data}.{mac[:-1]}x", "garbage", ""):
        console.client.cookies.set(SESSION_COOKIE, forged, path="/console")
        assert (await console.client.get(console.path())).status_code == 303, forged


async def test_a_session_ends_when_its_user_is_removed_or_gets_a_new_password(
    console_factory: ConsoleFactory,
) -> None:
    first: Console = await console_factory()
    await first.login()
    cookie = first.client.cookies[SESSION_COOKIE]
    only_bob = f"{OTHER}:{hashes()[OTHER]}"
    new_password = f"{USER}:{hashes()[OTHER]},{OTHER}:{hashes()[OTHER]}"
    for users in (only_bob, new_password):
        second: Console = await console_factory(MESBRIDGE_CONSOLE_USERS=users)
        second.client.cookies.set(SESSION_COOKIE, cookie, path="/console")
        assert (await second.client.get(second.path())).status_code == 303, users
    same: Console = await console_factory()
    same.client.cookies.set(SESSION_COOKIE, cookie, path="/console")
    assert (await same.client.get(same.path())).status_code == 200


async def test_a_post_without_the_session_token_is_a_403_and_does_nothing(console: Console) -> None:
    dead_id = await add_dead(console.store, "WO-7")
    await console.login()
    for form in ({"id": dead_id}, {"id": dead_id, "csrf": "x" * 43}, {"id": dead_id, "csrf": ""}):
        for action in ("/dead-letters/replay", "/dead-letters/drop", "/logout"):
            reply = await console.client.post(console.path(action), data=form)
            assert reply.status_code == 403, (action, form)
            assert "Form refused" in reply.text and "Nothing was done" in reply.text
    assert [dead.id for dead in await console.store.list_dead()] == [dead_id]
    assert (await console.client.get(console.path())).status_code == 200


async def test_the_token_of_another_session_does_not_do(console_factory: ConsoleFactory) -> None:
    alice: Console = await console_factory()
    await alice.login()
    dead_id = await add_dead(alice.store, "WO-8")
    bob_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=alice.app), base_url="http://testserver")
    bob = Console(bob_client, alice.service, alice.store, "", alice.app)
    await bob.login(OTHER, OTHER_PASSWORD)
    reply = await alice.client.post(
        alice.path("/dead-letters/drop"), data={"id": dead_id, "csrf": await bob.csrf()}
    )
    assert reply.status_code == 403
    assert [dead.id for dead in await alice.store.list_dead()] == [dead_id]
    await bob_client.aclose()


async def test_a_post_without_a_session_is_refused(console: Console) -> None:
    dead_id = await add_dead(console.store, "WO-9")
    reply = await console.client.post(console.path("/dead-letters/drop"), data={"id": dead_id, "csrf": "x"})
    assert reply.status_code == 403 and "Not logged in" in reply.text
    assert len(await console.store.list_dead()) == 1


async def test_logout_ends_the_session(console: Console) -> None:
    await console.login()
    token = await console.csrf()
    done = await console.client.post(console.path("/logout"), data={"csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/console/login"
    assert "Max-Age=0" in _cookie_headers(done, SESSION_COOKIE)[0]
    assert (await console.client.get(console.path())).status_code == 303


async def test_under_a_proxy_prefix_every_link_form_redirect_and_cookie_has_it(
    console_factory: ConsoleFactory,
) -> None:
    console: Console = await console_factory(root_path="/plant-7/mesbridge")
    first = await console.client.get("/plant-7/mesbridge/console")
    assert (
        first.headers["location"] == "/plant-7/mesbridge/console/login?next=%2Fplant-7%2Fmesbridge%2Fconsole"
    )
    page, token = await console.login_form()
    assert 'action="/plant-7/mesbridge/console/login"' in page.text
    assert 'href="/plant-7/mesbridge/console/static/console.css?v=' in page.text
    assert "Path=/plant-7/mesbridge/console" in _cookie_headers(page, LOGIN_COOKIE)[0]
    done = await console.client.post(
        "/plant-7/mesbridge/console/login", data={"user": USER, "password": PASSWORD, "csrf": token}
    )
    assert done.headers["location"] == "/plant-7/mesbridge/console"
    assert "Path=/plant-7/mesbridge/console" in _cookie_headers(done, SESSION_COOKIE)[0]
    overview = await console.client.get(done.headers["location"])
    assert overview.status_code == 200
    links = re.findall(r'(?:href|action)="([^"]+)"', overview.text)
    assert links and all(link.startswith("/plant-7/mesbridge/console") for link in links), links
    css = await console.client.get("/plant-7/mesbridge/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # the webhooks are served under the prefix too: the route is matched without it
    webhook = await console.client.post(f"/plant-7/mesbridge/no-such?token={WEBHOOK_TOKEN}", json={})
    assert webhook.json() == {"message": "no pipeline at /no-such"}


async def test_every_console_page_forbids_framing_scripts_and_caching(console: Console) -> None:
    await console.login()
    for path in ("", "/events", "/dead-letters", "/login", "/nope"):
        reply = await console.client.get(console.path(path), follow_redirects=True)
        policy = reply.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy
        assert reply.headers["x-frame-options"] == "DENY" and reply.headers["cache-control"] == "no-store"
        assert "<script" not in reply.text
