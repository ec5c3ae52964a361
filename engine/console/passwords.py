"""The console users' passwords, kept as salted scrypt hashes (`mesbridge console hash-password`).

A hash reads `scrypt:N:R:P:SALT:KEY` (salt and key in unpadded URL-safe base64): no `$`, comma or
space, so it sits in an environment variable, a `.env` file or a compose file without quoting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

__all__ = ["MIN_LENGTH", "PasswordHash", "hash_password"]

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
"""scrypt's cost: 16 MiB of memory and some 50 ms per check on a small machine."""
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 8
"""The shortest password `hash_password` accepts."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    data = password.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, dklen=size, maxmem=129 * r * n * p + (1 << 20))


@dataclass(frozen=True)
class PasswordHash:
    """A parsed password hash: its scrypt cost, salt and derived key."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Read a hash; a ValueError says what is wrong with it (never echoing it)."""
        parts = text.strip().split(":")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError("it is not a hash printed by `mesbridge console hash-password` (scrypt:N:R:P:…)")
        try:
            n, r, p = (int(part) for part in parts[1:4])
            salt, key = _decode(parts[4]), _decode(parts[5])
        except (ValueError, binascii.Error):
            raise ValueError("its cost, salt or key is garbled") from None
        if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise ValueError(f"its scrypt cost N={n} R={r} P={p} is out of range (N a power of 2)")
        if len(salt) < 8 or len(key) < 16:
            raise ValueError("its salt or key is too short")
        return cls(n, r, p, salt, key)

    def matches(self, password: str) -> bool:
        """True when `password` is the one hashed (compared in constant time)."""
        found = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.key))
        return hmac.compare_digest(found, self.key)

    @property
    def fingerprint(self) -> str:
        """A short digest of the hash: a session records it, so a new password ends the old sessions."""
        return hashlib.sha256(self.salt + self.key).hexdigest()[:16]


def hash_password(password: str) -> str:
    """A new salted hash of `password`; a ValueError when it is shorter than `MIN_LENGTH`."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password is shorter than {MIN_LENGTH} characters")
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, N, R, P, KEY_BYTES)
    return f"{SCHEME}:{N}:{R}:{P}:{_encode(salt)}:{_encode(key)}"
