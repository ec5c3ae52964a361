"""Screenshots of the operator console for the docs: `python scripts/console_screenshots.py [OUT]`.

Starts the console test stack (tests/console/stack.py: `mesbridge run` behind a prefix-stripping
proxy, the Next Plus and NextX simulators), sends a few work orders, a refused check and two work
orders while the MES is down (they become dead letters), then photographs the overview, an event
search, a failed event's trace and the dead letters with headless Chromium (/usr/bin/chromium), and
the overview again on an 800 x 1280 tablet. Writes OUT/*.png (default docs/console/).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.console.stack import PASSWORD, USER, Stack, console_stack  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 800, "height": 1280}


def traffic(stack: Stack) -> None:
    """Events of every kind: delivered, refused, dead-lettered, polled."""
    for number in range(1001, 1007):
        event = {
            "eventId": f"ev-{number}",
            "workorderNumber": f"WO-{number}",
            "sku": "PUMP-200",
            "quantity": 5,
        }
        assert stack.post_event("/wo", event).status_code == 202
    time.sleep(1.0)
    for number in ("WO-1001", "WO-1003", "WO-9999"):
        stack.post_event("/wo-check", {"workorderNumber": number})
    for _ in range(3):
        stack.post_event("/branches", {})
    stack.faults("nextplus", down=True)
    for number in (1042, 1043):
        event = {
            "eventId": f"ev-{number}",
            "workorderNumber": f"WO-{number}",
            "sku": "VALVE-7",
            "quantity": 12,
        }
        assert stack.post_event("/wo", event).status_code == 202
    stack.wait_dead({"wo.create:ev-1042", "wo.create:ev-1043"})
    stack.faults("nextplus")
    time.sleep(1.5)  # a poll round after the MES is back


def login(page: Page, stack: Stack) -> None:
    page.goto(stack.page())
    page.fill("#user", USER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Overview')")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, console_stack(Path(folder)) as stack:
        traffic(stack)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport=DESKTOP)
            login(page, stack)
            page.screenshot(path=str(out / "overview.png"), full_page=True)
            page.goto(stack.page("/events?q=WO-1042"))
            page.screenshot(path=str(out / "events.png"), full_page=True)
            page.goto(stack.page("/events?q=WO-1042&outcome=failed"))
            page.click("table.events tbody tr:first-child a.row-link")
            page.wait_for_selector("text=Steps and calls")
            page.screenshot(path=str(out / "trace.png"), full_page=True)
            page.goto(stack.page("/dead-letters"))
            page.screenshot(path=str(out / "dead-letters.png"), full_page=True)
            tablet = browser.new_page(viewport=TABLET, device_scale_factor=1, has_touch=True)
            login(tablet, stack)
            tablet.screenshot(path=str(out / "overview-tablet.png"), full_page=True)
            browser.close()
    for name in sorted(out.glob("*.png")):
        print(name.relative_to(REPO) if name.is_relative_to(REPO) else name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "console")
