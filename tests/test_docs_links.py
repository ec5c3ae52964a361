"""Every link between the README and the docs lands: the file it names exists, and the heading its
`#anchor` names is in that file (GitHub's anchors: the heading's text in lower case, punctuation
dropped, spaces as hyphens, `-1`, `-2` after repeats). Links are read from the parsed Markdown."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[1]
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
    *sorted((REPO / "examples").rglob("*.md")),
]


def _tokens(page: Path) -> list[object]:
    tokens = MarkdownIt("commonmark").enable("table").parse(page.read_text(encoding="utf-8"))
    flat = []
    for token in tokens:
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of `page`."""
    found: set[str] = set()
    tokens = _tokens(page)
    for index, token in enumerate(tokens):
        if getattr(token, "type", "") != "heading_open":
            continue
        text = "".join(
            child.content
            for child in (getattr(tokens[index + 1], "children", None) or [])
            if child.type in ("text", "code_inline")
        )
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def links(page: Path) -> list[str]:
    return [
        str(token.attrs["href"])  # type: ignore[attr-defined]
        for token in _tokens(page)
        if getattr(token, "type", "") == "link_open"
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_link_of_a_page_lands(page: Path) -> None:
    broken = []
    for href in links(page):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("mailto:"):
            continue  # another site: not this repository's to keep
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.exists():
            broken.append(f"{href}: no {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
        elif parts.fragment and target.suffix == ".md" and parts.fragment not in anchors(target):
            broken.append(f"{href}: no heading #{parts.fragment} in {target.relative_to(REPO)}")
    assert not broken, "\n".join(broken)


def test_anchors_follow_github() -> None:
    page = REPO / "tests" / "data" / "anchors.md"
    assert anchors(page) == {
        "console",
        "dead-letters--replay",
        "the-cli-mesbridge-dlq",
        "console-1",
        "עמדה-1",
    }
