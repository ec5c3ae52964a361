"""Who may use the operator console and how its sessions are signed, read from the environment.

    MESBRIDGE_CONSOLE_USERS         alice:<hash>,bob:<hash>   (hashes from `mesbridge console hash-password`)
    MESBRIDGE_CONSOLE_USERS_FILE    a file of `user:<hash>` lines (a container secret); # starts a comment
    MESBRIDGE_CONSOLE_SECRET        the key sessions are signed with (at least 32 characters); without
                                    it each process draws its own, so sessions end when it stops and
                                    replicas behind a load balancer do not know each other's
    MESBRIDGE_CONSOLE_SESSION_HOURS how long a login lasts (default 8)

With neither users variable set the console is off. A setting that is wrong stops the start with a
StartupError that names it, never a console that lets anyone in.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.console.passwords import PasswordHash
from engine.errors import StartupError

__all__ = ["ConsoleSettings", "user_name_problem"]

USERS = "MESBRIDGE_CONSOLE_USERS"
USERS_FILE = "MESBRIDGE_CONSOLE_USERS_FILE"
SECRET = "MESBRIDGE_CONSOLE_SECRET"
SESSION_HOURS = "MESBRIDGE_CONSOLE_SESSION_HOURS"
MIN_SECRET = 32
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def user_name_problem(name: str) -> str | None:
    """What is wrong with a console user name, or None when it will do."""
    if _USER.match(name):
        return None
    return f"user name {name!r} must be letters, digits, '.', '_', '@' or '-' (at most 64)"


def _entries(text: str, where: str) -> list[tuple[str, str, str]]:
    """(user, hash, where) of `user:hash` entries separated by commas or lines, with `#` comments."""
    found = []
    for line in text.splitlines():
        for item in line.split("#", 1)[0].split(","):
            item = item.strip()
            if not item:
                continue
            user, colon, encoded = item.partition(":")
            user = user.strip()
            if not colon or not encoded.strip():
                raise StartupError(f"{where}: {user!r} is not `user:<hash>`")
            found.append((user, encoded, where))
    return found


def _users(environ: Mapping[str, str]) -> dict[str, PasswordHash] | None:
    listed = environ.get(USERS, "").strip()
    file = environ.get(USERS_FILE, "").strip()
    if not listed and not file:
        return None
    entries = _entries(listed, USERS)
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"{USERS_FILE}: cannot read {file}: {exc}") from None
        entries += _entries(text, f"{USERS_FILE} ({file})")
    users: dict[str, PasswordHash] = {}
    for user, encoded, where in entries:
        problem = user_name_problem(user)
        if problem is not None:
            raise StartupError(f"{where}: {problem}")
        if user in users:
            raise StartupError(f"{where}: user {user} is given twice")
        try:
            users[user] = PasswordHash.parse(encoded)
        except ValueError as exc:
            raise StartupError(f"{where}: the password hash of {user}: {exc}") from None
    if not users:
        raise StartupError(f"{USERS_FILE if file else USERS} names no console user")
    return users


def _hours(environ: Mapping[str, str]) -> float:
    text = environ.get(SESSION_HOURS, "").strip()
    if not text:
        return 8.0
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= 24 * 30:
        raise StartupError(f"{SESSION_HOURS} must be a number of hours above 0 and at most 720, not {text!r}")
    return hours


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's users, the key its cookies are signed with, and how long a login lasts."""

    users: Mapping[str, PasswordHash]
    key: bytes
    shared_secret: bool
    """True when the key comes from MESBRIDGE_CONSOLE_SECRET (shared by replicas and restarts)."""
    session_seconds: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ConsoleSettings | None:
        """The settings, or None when no console user is configured (the console is off)."""
        users = _users(environ)
        if users is None:
            return None
        secret = environ.get(SECRET, "")
        if secret and len(secret) < MIN_SECRET:
            raise StartupError(
                f"{SECRET} is shorter than {MIN_SECRET} characters; use a long random value "
                "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if secret:
            key = hmac.new(secret.encode("utf-8"), b"mesbridge console", hashlib.sha256).digest()
        else:
            key = secrets.token_bytes(32)
        return cls(users, key, bool(secret), _hours(environ) * 3600.0)
