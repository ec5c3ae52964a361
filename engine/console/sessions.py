"""The console's signed cookies: the session after a login, the login form's own, and CSRF tokens.

A cookie is `DATA.MAC`: DATA is the JSON of what it says (unpadded URL-safe base64), MAC an
HMAC-SHA256 of its purpose and DATA under the console key. The standard library's `hmac` does this in
a few lines, with the comparison in constant time; a dependency such as itsdangerous would add a
package for no more than that. Nothing secret is inside a cookie, only who and until when: the MAC
is what a client cannot make.

A session holds its user, a random id, when it expires, and a fingerprint of the user's password
hash: a changed password or a removed user ends the user's sessions. Every form carries a CSRF token
derived from the session id (the login form: from its own cookie's nonce), checked in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.console.settings import ConsoleSettings

__all__ = ["LOGIN_COOKIE", "LOGIN_SECONDS", "SESSION_COOKIE", "Session", "Sessions"]

SESSION_COOKIE = "mesbridge_console"
LOGIN_COOKIE = "mesbridge_console_login"
LOGIN_SECONDS = 3600.0
"""How long a login form stays good to send."""
_MAX_COOKIE = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True)
class Session:
    """A logged-in user: who, the session's random id, and when it ends (epoch seconds)."""

    user: str
    sid: str
    expires: float


class Sessions:
    """Issues and reads the console's cookies, and its CSRF tokens."""

    def __init__(self, settings: ConsoleSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock

    def _mac(self, purpose: str, data: str) -> str:
        message = f"{purpose}.{data}".encode("ascii")
        return _b64(hmac.new(self.settings.key, message, hashlib.sha256).digest())

    def _sign(self, purpose: str, content: dict[str, Any]) -> str:
        data = _b64(json.dumps(content, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{data}.{self._mac(purpose, data)}"

    def _open(self, purpose: str, cookie: str | None) -> dict[str, Any] | None:
        """What a cookie says, when its MAC is right and it has not expired; else None."""
        if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
            return None
        data, mac = cookie.split(".")
        try:
            if not hmac.compare_digest(mac.encode("ascii"), self._mac(purpose, data).encode("ascii")):
                return None
            content = json.loads(_unb64(data))
        except (UnicodeError, binascii.Error, ValueError):
            return None
        if not isinstance(content, dict) or not isinstance(content.get("exp"), int | float):
            return None
        if content["exp"] <= self.clock():
            return None
        return content

    # -- sessions ----------------------------------------------------------------------------------

    def issue(self, user: str) -> tuple[str, Session]:
        """A new session of `user`: the cookie's value, and the session."""
        session = Session(
            user, secrets.token_urlsafe(16), round(self.clock() + self.settings.session_seconds)
        )
        fingerprint = self.settings.users[user].fingerprint
        content = {"u": user, "s": session.sid, "exp": session.expires, "h": fingerprint}
        return self._sign("session", content), session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, when it is genuine, current, and its user and password stand."""
        content = self._open("session", cookie)
        if content is None:
            return None
        user, sid = content.get("u"), content.get("s")
        if not isinstance(user, str) or not isinstance(sid, str):
            return None
        known = self.settings.users.get(user)
        if known is None or not hmac.compare_digest(str(content.get("h", "")), known.fingerprint):
            return None
        return Session(user, sid, float(content["exp"]))

    def csrf(self, session: Session) -> str:
        """The CSRF token of a session's forms."""
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        """True when `token` is the session's CSRF token."""
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf(session).encode())

    # -- the login form ----------------------------------------------------------------------------

    def login_cookie(self) -> tuple[str, str]:
        """A login form's cookie value and the CSRF token its form carries."""
        nonce = secrets.token_urlsafe(16)
        return self._sign("login", {"n": nonce, "exp": round(self.clock() + LOGIN_SECONDS)}), self._mac(
            "login-csrf", nonce
        )

    def login_ok(self, cookie: str | None, token: str | None) -> bool:
        """True when a login form came with a current login cookie and that cookie's CSRF token."""
        content = self._open("login", cookie)
        if content is None or not isinstance(content.get("n"), str) or not token:
            return False
        return hmac.compare_digest(str(token).encode(), self._mac("login-csrf", content["n"]).encode())
