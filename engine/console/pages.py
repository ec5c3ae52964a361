"""How console pages are made: the Jinja environment of the package's templates, URLs and cookies
under the proxy's prefix (the ASGI `root_path`), the headers every page carries, and the error page.

This is an ordinary autoescaping Jinja environment for the console's own templates, not the
sandboxed one mapping templates run in: every value a page shows is escaped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

__all__ = ["PREFIX", "Pages", "is_https", "prefix"]

PREFIX = "/console"
"""Where the console is served, under the proxy's prefix."""

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""On every console page: no scripts, nothing from elsewhere, never framed, never cached."""

FAILURES = {
    "not_sent": "not sent",
    "unapplied": "refused, not applied",
    "uncertain": "uncertain: may have been applied",
}
"""The failure classes of a call attempt, as the pages name them."""


def prefix(request: Request) -> str:
    """The path prefix a reverse proxy serves mesbridge under ("" for none)."""
    root: str = request.scope.get("root_path", "") or ""
    return root.rstrip("/")


def is_https(request: Request) -> bool:
    """True when the browser reached the console over HTTPS: directly, or through a proxy that says so
    (`X-Forwarded-Proto` or `Forwarded: proto=`). It only decides the cookies' Secure flag."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if forwarded == "https":
        return True
    for part in request.headers.get("forwarded", "").split(",")[0].split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "proto" and value.strip('"').lower() == "https":
            return True
    return False


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """A time as `2026-12-01 10:00:03 UTC` (epoch seconds, a datetime or ISO-8601 text)."""
    moment = _moment(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: Any) -> str:
    """How long ago (or, for a future time, in how long): `12 s ago`, `in 3 min`."""
    moment = _moment(value)
    if moment is None:
        return ""
    seconds = time.time() - moment.timestamp()
    span = abs(seconds)
    text = (
        f"{span:.0f} s"
        if span < 90
        else f"{span / 60:.0f} min"
        if span < 5400
        else f"{span / 3600:.1f} h"
        if span < 172800
        else f"{span / 86400:.0f} days"
    )
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def ms(seconds: Any) -> str:
    """Seconds as milliseconds: `12.4 ms`."""
    return "" if seconds is None else f"{float(seconds) * 1000:.1f} ms"


def pretty(value: Any) -> str:
    """A JSON value laid out to read (a string is shown as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def query_text(query: Any) -> str:
    """A call's query as `name=value&…`."""
    if not isinstance(query, Mapping):
        return "" if query is None else str(query)
    return "&".join(f"{key}={value}" for key, value in query.items())


class Pages:
    """Renders the console's templates into responses."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("engine.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, ago=ago, ms=ms, pretty=pretty, query_text=query_text)
        self.env.globals["failures"] = FAILURES
        self.css = resources.files("engine.console").joinpath("static/console.css").read_bytes()
        self.css_version = hashlib.sha256(self.css).hexdigest()[:12]

    def url(self, request: Request, path: str, **query: Any) -> str:
        """`path` (under the console, e.g. `/events`) under the proxy's prefix, with a query."""
        shown = {name: value for name, value in query.items() if value not in (None, "")}
        return f"{prefix(request)}{PREFIX}{path}" + (f"?{urlencode(shown)}" if shown else "")

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        user: str | None = None,
        csrf: str | None = None,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page: `template` with the context every page has (url, css, user, csrf) and `context`."""

        def url(path: str, **query: Any) -> str:
            return self.url(request, path, **query)

        html = self.env.get_template(template).render(
            url=url,
            css=url("/static/console.css", v=self.css_version),
            user=user,
            csrf=csrf,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})

    def problem(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        *,
        user: str | None = None,
        csrf: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The page of a request that could not be served: what went wrong, and nothing was done."""
        return self.render(
            request,
            "problem.html",
            status=status,
            user=user,
            csrf=csrf,
            headers=headers,
            title=title,
            message=message,
        )

    def stylesheet(self) -> Response:
        """The console's CSS (its URL carries its digest, so it may be cached long)."""
        return Response(
            self.css,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )
