"""Store URLs as messages and logs may show them: without their password."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit


def safe_url(url: str) -> str:
    """The store URL as a message or a log may show it: its password (`user:password@` or a
    `password=` parameter) replaced by `***`."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")  # credentials come before the path (sqlite:/// has none)
    credentials, at, host = netloc.rpartition("@")
    if at and ":" in credentials:
        rest = f"{credentials.split(':', 1)[0]}:***@{host}{slash}{path}"
    if question:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            masked = [(name, "***" if name.lower() == "password" else value) for name, value in pairs]
            query = urlencode(masked, safe="*")
    return f"{scheme}://{rest}{question}{query}"


def hide_password(text: str, url: str) -> str:
    """`text` (a driver's error message, say) with the password of `url` replaced by `***`, in the
    forms a message may quote it: as written in the URL, and decoded."""
    secrets: set[str] = set()
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        secrets |= {password, unquote(password)}
    query = url.partition("?")[2]
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if unquote(name).lower() == "password" and value:
            secrets |= {value, unquote(value)}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
