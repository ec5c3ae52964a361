"""What a reply's text says when it is a page: `page_text` against pages servers really send."""

from __future__ import annotations

import pytest

from engine.connectors.envelope import MAX_PAGE_TEXT, page_text

IIS = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">\n<html><head>'
    '<style type="text/css">body{margin:0;font-size:.7em;}</style>'
    "<script>var detail = '<b>not shown</b>';</script>"
    "<title>IIS 10.0 Detailed Error - 503.0 - Service Unavailable</title></head><body>"
    '<div id="header"><h1>Server Error in Application &quot;PRIORITY&quot;</h1></div>'
    "<h3>HTTP Error 503.0 - Service Unavailable</h3></body></html>"
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            IIS,
            'IIS 10.0 Detailed Error - 503.0 - Service Unavailable: Server Error in Application "PRIORITY" '
            "HTTP Error 503.0 - Service Unavailable",
        ),
        ("<h1>Service Unavailable</h1>", "Service Unavailable"),
        (
            '<?xml version="1.0"?><error><code>500</code><message>An error has occurred.</message></error>',
            "500 An error has occurred.",
        ),
        ("  <p>מספר הזמנה לא קיים &amp; סגור</p>", "מספר הזמנה לא קיים & סגור"),
    ],
)
def test_a_page_is_the_text_it_shows(text: str, shown: str) -> None:
    assert page_text(text) == shown


@pytest.mark.parametrize("text", ["", "quantity <5> is not allowed", "a < b", "<<<", "<", "plain text"])
def test_text_that_is_not_a_page_is_left_to_the_caller(text: str) -> None:
    assert page_text(text) is None


def test_a_long_page_is_cut() -> None:
    shown = page_text("<title>Error</title><p>" + "word " * 1000 + "</p>")
    assert shown is not None and len(shown) == MAX_PAGE_TEXT and shown.startswith("Error: word word")
    assert shown.endswith("…")
