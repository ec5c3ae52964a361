"""Reading a system's reply: parse the body, decide success, find the result and the error message.

The error message is the first non-empty `error` path (a form's error text, then `error.message`;
a JSON-RPC `Error`; a `meta.message` envelope), otherwise the response text. It reaches the caller as
the system wrote it (Hebrew, Romanian), only cut past `MAX_MESSAGE` characters. An HTML or XML page
(a proxy's or a web server's error page) is given as the text it shows, not as its markup.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine import wirejson
from engine.errors import AuthError, BusinessError, ConnectorError, ExpressionError
from engine.expressions import Selection, SelectionField

__all__ = ["MAX_MESSAGE", "Envelope", "EnvelopeConfig", "page_text", "parse_body", "truthy"]

MAX_MESSAGE = 4000
MAX_PAGE_TEXT = 300
"""Characters of an error page's text in a message: its title and first words say what happened."""


class EnvelopeConfig(BaseModel):
    """Where a reply says whether it succeeded, where its result is and where its error message is."""

    model_config = ConfigDict(extra="forbid")

    success: SelectionField | None = Field(
        None,
        description="JMESPath predicate over the body; false: a business error. Null: the status decides.",
    )
    result: SelectionField | None = Field(None, description="JMESPath to the result. Null: the whole body.")
    error: list[SelectionField] = Field(
        default_factory=list, description="JMESPath paths to the error message; the first non-empty wins."
    )


def truthy(selection: Selection, data: Any) -> bool:
    """A JMESPath predicate as a bool; a type error in it (e.g. `contains(null, ...)`) counts as false."""
    try:
        value = selection.search(data)
    except ExpressionError:
        return False
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def parse_body(content: bytes, content_type: str | None) -> Any:
    """JSON when the body parses as JSON (whatever the declared type), else the text; None when empty."""
    if not content or not content.strip():
        return None
    text = content.decode("utf-8", "replace")
    ctype = (content_type or "").lower()
    if "json" in ctype or text.lstrip()[:1] in ("{", "[", '"') or ctype.startswith("text/plain"):
        try:
            return wirejson.loads(content, text)
        except ValueError:
            return text
    return text


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _PageText(HTMLParser):
    """What a page shows: its title, and the text of the rest without scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = 0
        self.title: list[str] = []
        self.text: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags += 1
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            (self.title if self._in_title else self.text).append(data)


def page_text(text: str) -> str | None:
    """The text an HTML or XML page shows, title first, in at most MAX_PAGE_TEXT characters; None
    when `text` is not a page (it does not open with a tag)."""
    if not text.lstrip().startswith("<"):
        return None
    parser = _PageText()
    parser.feed(text)
    parser.close()
    if not parser.tags:
        return None
    title = " ".join(" ".join(parser.title).split())
    shown = " ".join(" ".join(parser.text).split())
    if title and shown.startswith(title):  # a heading repeating the title
        shown = shown[len(title) :].lstrip(" :-")
    return _clip(": ".join(part for part in (title, shown) if part), MAX_PAGE_TEXT)


class Envelope:
    """A compiled envelope for one connector."""

    def __init__(self, config: EnvelopeConfig, connector: str) -> None:
        self.config = config
        self.connector = connector

    @property
    def expects_body(self) -> bool:
        """True when success or result must be read from a body, so an empty one is an error."""
        return self.config.success is not None or self.config.result is not None

    def error_message(self, body: Any, text: str = "") -> str | None:
        """The first non-empty configured error path, else the text; None when there is nothing."""
        if isinstance(body, dict | list):
            for path in self.config.error:
                try:
                    found = path.search(body)
                except ExpressionError:
                    continue
                if found in (None, "", [], {}):
                    continue
                if isinstance(found, list):
                    found = "; ".join(str(f) for f in found if f not in (None, ""))
                return _clip(found if isinstance(found, str) else json.dumps(found, ensure_ascii=False))
        stripped = text.strip()
        return (page_text(stripped) or _clip(stripped)) if stripped else None

    def result(self, body: Any) -> Any:
        """The result the caller asked for: the `result` path applied to the body."""
        if self.config.result is None:
            return body
        return self.config.result.search(body) if isinstance(body, dict | list) else None

    def check(self, status: int, body: Any, text: str, *, auth_error: bool = False) -> Any:
        """The result of a reply; raises for status >= 400, an empty or non-JSON body, a false `success`.

        `auth_error` turns 401/403 into AuthError (credentials refused) instead of BusinessError.
        """
        name = self.connector
        if status >= 400:
            message = self.error_message(body, text) or f"{name} answered HTTP {status} with an empty body"
            kind = AuthError if auth_error and status in (401, 403) else BusinessError
            raise kind(message, connector=name, http_status=status, body=body)
        if body is None:
            if self.expects_body and status != 204:
                raise ConnectorError(
                    f"empty response from {name} (HTTP {status}); check the connector's content_type",
                    connector=name,
                    http_status=status,
                )
            return None
        if self.expects_body and not isinstance(body, dict | list):
            raise ConnectorError(
                f"non-JSON response from {name} (HTTP {status}): "
                f"{page_text(text) or _clip(text.strip(), MAX_PAGE_TEXT)}",
                connector=name,
                http_status=status,
                body=body,
            )
        if self.config.success is not None and not truthy(self.config.success, body):
            message = self.error_message(body, "") or f"{name} reported a failure: {_clip(text.strip())}"
            raise BusinessError(message, connector=name, http_status=status, body=body)
        return self.result(body)
