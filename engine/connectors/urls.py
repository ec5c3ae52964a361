"""Building the URLs a connector sends: joining, requoting, the query string, next-link references.

Nothing here normalises a path: OData keys such as `FORM('K1')` and every `%XX` written in a
config reach the system as written. Characters that may not appear in a URL at all (spaces,
non-ASCII, quotes) are percent-encoded as UTF-8; a lone surrogate cannot be, and is an error.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

__all__ = ["encode_query", "join", "origin", "quote_value", "requote", "resolve_reference", "split_call"]

_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUOTE_NEEDED = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})")
_QUERY_SAFE = "$'(),:/*@!"


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise ValueError(f"{what} holds {bad}, a lone surrogate that cannot be sent") from None


def requote(url: str) -> str:
    """`url` with every character a URL cannot hold percent-encoded; `%XX` and reserved kept."""
    if _QUOTE_NEEDED.search(url) is None:
        return url
    text = _PERCENT.sub("%25", url)
    return "".join(c if c in _ALLOWED else "".join(f"%{b:02X}" for b in _utf8(c, "the URL")) for c in text)


def join(base: str, path: str) -> str:
    """`path` under `base` (an absolute URL in `path` is kept as is); nothing is normalised."""
    if path.startswith(("http://", "https://")):
        return path
    base = base.rstrip("/")
    return f"{base}/{path.lstrip('/')}" if path else base


def resolve_reference(request_url: str, link: str) -> str:
    """A next link resolved against the URL of the page that named it (RFC 3986 §5)."""
    return urllib.parse.urljoin(request_url, link)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port given when it is the scheme's default."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a number: no origin matches it
        port = -1
    return scheme, (parts.hostname or ""), port or {"http": 80, "https": 443}.get(scheme)


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"query parameter {name!r} is {value}, which cannot be sent exactly")
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise ValueError(f"query parameter {name!r} holds a number that is not finite") from None
    return str(value)


def encode_query(query: Mapping[str, Any]) -> str:
    """A query string the OData way: names and values percent-encoded, `$ ' ( ) , :` kept.

    None values are left out, booleans are `true`/`false`, lists repeat the name, dicts are JSON
    (LoopBack's `filter={...}`). A lone surrogate anywhere is a ValueError naming the parameter.
    """
    parts: list[str] = []
    for name, value in query.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            key = urllib.parse.quote(_utf8(str(name), "a query parameter name"), safe="$")
            value_bytes = _utf8(_text(item, str(name)), f"query parameter {name!r}")
            text = quote_value(value_bytes)
            parts.append(f"{key}={text}")
    return "&".join(parts)


def quote_value(value: str | bytes) -> str:
    """A query parameter's value as `encode_query` writes it."""
    return urllib.parse.quote(value, safe=_QUERY_SAFE)


def split_call(url: str, base_url: str) -> tuple[str, dict[str, str]]:
    """The path a sent `url` called, relative to the connector's `base_url` and unquoted, and its query
    as the system reads it (`+` is a plus: the connector never sends one for a space)."""
    parts = urllib.parse.urlsplit(url)
    base_path = urllib.parse.urlsplit(base_url).path.rstrip("/")
    raw_path = urllib.parse.unquote(parts.path)
    path = raw_path[len(base_path) :] if base_path and raw_path.startswith(base_path) else raw_path
    query: dict[str, str] = {}
    for part in parts.query.split("&") if parts.query else []:
        name, _, value = part.partition("=")
        query[urllib.parse.unquote(name)] = urllib.parse.unquote(value)
    return path or "/", query
