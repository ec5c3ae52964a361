"""The state store: durable queue, idempotency replies, poll cursors, dead letters and poller leases.

    store = open_store("sqlite:///var/mesbridge.db")      # or postgresql://user@host:5432/db
    await store.migrate()

URLs:
    sqlite:///relative/path.db   sqlite:////absolute/path.db   sqlite:///:memory:
        optional `?synchronous=normal` (default full: every commit fsynced)
    postgresql://user@host:port/db  (also postgres://); optional `?pool_size=N` (default 4),
        every other parameter goes to libpq.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from engine.errors import StoreError
from engine.store.base import (
    Attempt,
    Clock,
    DeadLetter,
    Job,
    PolledItem,
    Store,
    utc_now,
)

__all__ = [
    "Attempt",
    "Clock",
    "DeadLetter",
    "Job",
    "PolledItem",
    "Store",
    "open_store",
    "utc_now",
]


def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """A store for `url`. Nothing connects until first use; call `await store.migrate()` first."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from engine.store.sqlite import SQLiteStore

        if not url.startswith("sqlite:///"):
            raise StoreError(f"SQLite URL must look like sqlite:///path/to/file.db, not {url!r}")
        rest = url[len("sqlite:///") :]
        path, _, query = rest.partition("?")
        if not path:
            raise StoreError(f"SQLite URL has no path: {url!r}")
        options = dict(parse_qsl(query))
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise StoreError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
        return SQLiteStore(path, clock=clock, synchronous=options.get("synchronous", "full"))
    if scheme in ("postgresql", "postgres"):
        from engine.store.postgres import PostgresStore

        urlsplit(url)  # reject malformed URLs here rather than at first use
        return PostgresStore(url, clock=clock)
    raise StoreError(f"unsupported store URL scheme {scheme!r} (use sqlite:/// or postgresql://)")
