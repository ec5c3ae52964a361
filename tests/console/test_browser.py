"""The console in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright, against
`mesbridge run` behind a reverse proxy that serves it under a path prefix, with the simulators.

These tests fail, never skip, when the browser is missing: `.ci/run` installs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.console.stack import PASSWORD, USER, Stack, console_stack

CHROMIUM = "/usr/bin/chromium"
FAILED = "WO-7001"
GUARDED = "WO-7002"
TABLET = {"width": 800, "height": 1280}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with two work orders sent while the MES was down: both are dead letters.

    A lookup first makes the engine log in to the MES, so that each trace starts with the work-order
    call the outage refuses, not with a refused login (which one comes first would otherwise depend on
    whether the poller's first round ran before the outage)."""
    with console_stack(tmp_path_factory.mktemp("console")) as running:
        assert running.post_event("/wo-check", {"workorderNumber": "WO-0"}).status_code == 404
        running.faults("nextplus", down=True)
        for number in (FAILED, GUARDED):
            event = {"eventId": f"ev-{number}", "workorderNumber": number, "sku": "VALVE-7", "quantity": 12}
            assert running.post_event("/wo", event).status_code == 202
        running.wait_dead({f"wo.create:ev-{FAILED}", f"wo.create:ev-{GUARDED}"})
        running.faults("nextplus")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    made.set_default_timeout(10_000)
    yield made
    made.close()


def log_in(page: Page, stack: Stack, password: str = PASSWORD) -> None:
    page.goto(stack.page())
    expect(page).to_have_url(f"{stack.public}/console/login?next=%2Fmesbridge%2Fconsole")
    page.fill("#user", USER)
    page.fill("#password", password)
    page.click("form button[type=submit]")


def test_log_in_find_a_failed_event_open_its_trace_replay_it_and_see_it_delivered(
    stack: Stack, context: BrowserContext
) -> None:
    page = context.new_page()
    log_in(page, stack)
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page).to_have_url(f"{stack.public}/console")

    page.click("nav >> text=Events")
    page.fill("#q", FAILED)
    page.select_option("#outcome", "failed")
    page.click("form[role=search] button[type=submit]")
    expect(page).to_have_url(
        f"{stack.public}/console/events?q={FAILED}&pipeline=&outcome=failed&source=&since="
    )
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2)  # the first attempt, and the second after which it was given up
    expect(rows.first).to_contain_text("failed")

    rows.first.locator("a.row-link").click()
    expect(page.locator("h1")).to_contain_text("wo.create")
    expect(page.locator("h1")).to_contain_text("failed")
    assert page.url.startswith(f"{stack.public}/console/events/")
    call = page.locator(".tree li.call").first
    expect(call).to_contain_text("GET")
    expect(call).to_contain_text("/api/Workorders")
    expect(call).to_contain_text("503")
    expect(call).to_contain_text("refused, not applied")
    expect(page.locator("pre").last).to_contain_text(FAILED)

    page.click("text=Open the dead letter")
    dead_id = f"wo.create:ev-{FAILED}"
    expect(page.locator("h1")).to_contain_text(dead_id)
    page.click("button:text('Replay')")
    expect(page).to_have_url(f"{stack.public}/console/dead-letters?done=replayed&id=wo.create%3Aev-{FAILED}")
    expect(page.locator(".notice.good")).to_contain_text("was queued again")

    page.click("text=Follow its delivery")
    delivered = page.locator("table.events tbody tr", has_text="replay").filter(has_text="ok")
    deadline = time.monotonic() + 10
    while delivered.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    expect(delivered).to_have_count(1)
    assert stack.workorders(FAILED) == [FAILED]
    assert dead_id not in {dead.id for dead in stack.dead_letters()}
    audit = [
        r
        for r in stack.log_records()
        if r.get("logger") == "mesbridge.console" and r.get("action") == "replay"
    ]
    assert [(r["user"], r["dead_letter"], r["result"]) for r in audit] == [(USER, dead_id, "replayed")]


def test_a_wrong_password_and_a_missing_csrf_token_are_refused(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/console/login")
    ) as sent:
        log_in(page, stack, password="not-the-password")
    assert sent.value.status == 401
    expect(page.locator(".notice.bad")).to_have_text("Wrong user name or password.")
    assert "mesbridge_console" not in {cookie["name"] for cookie in context.cookies()}

    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    [session] = [cookie for cookie in context.cookies() if cookie["name"] == "mesbridge_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/mesbridge/console"

    dead_id = f"wo.create:ev-{GUARDED}"
    page.goto(stack.page(f"/dead-letters/show?id={dead_id}"))
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(input => input.remove())")
    with page.expect_response(lambda r: r.url.endswith("/dead-letters/replay")) as refused:
        page.click("button:text('Replay')")
    assert refused.value.status == 403
    expect(page.locator("h1")).to_have_text("Form refused")
    assert dead_id in {dead.id for dead in stack.dead_letters()}
    assert stack.workorders(GUARDED) == []


def test_a_tablet_reads_every_page_without_scrolling_sideways(stack: Stack, browser: Browser) -> None:
    tablet = browser.new_context(viewport=TABLET, has_touch=True, is_mobile=True)
    try:
        page = tablet.new_page()
        log_in(page, stack)
        expect(page.locator("h1")).to_have_text("Overview")
        page.goto(stack.page("/events"))
        trace = page.locator("table.events a.row-link").first.get_attribute("href")
        assert trace is not None
        for path in (
            "",
            "/events",
            trace.removeprefix("/mesbridge/console"),
            "/dead-letters",
            f"/dead-letters/show?id=wo.create:ev-{GUARDED}",
            "/queue",
        ):
            page.goto(stack.page(path))
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= TABLET["width"], (path, width)
            page.evaluate("document.querySelectorAll('main details').forEach(d => d.open = true)")
            for target in page.locator("main button, main .button, main summary, header nav a").all():
                box = target.bounding_box()
                assert box is not None and box["height"] >= 44, (path, target.inner_text(), box)
    finally:
        tablet.close()
