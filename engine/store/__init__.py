"""The state store: durable queue, idempotency replies, poll cursors, dead letters, poller leases and
traces.

    store = open_store("sqlite:///var/mesbridge.db")      # or postgresql://user@host:5432/db
    await store.migrate()         # the service; a command beside it: `await store.check_schema()`

Each backend is one module of `engine.store.backends`, registered in `STORES` by URL scheme:
    sqlite:///relative/path.db   sqlite:////absolute/path.db   sqlite:///:memory:
        optional `?synchronous=normal` (default full: every commit fsynced)
    postgresql://user@host:port/db  (also postgres://); optional `?pool_size=N` (default 4),
        every other parameter goes to libpq.
"""

from __future__ import annotations

from engine.errors import StoreError
from engine.registry import Registry
from engine.store.base import (
    STORES,
    Attempt,
    Clock,
    DeadLetter,
    Job,
    PolledItem,
    QueuedEvent,
    Seen,
    Store,
    StoredTrace,
    TraceQuery,
    TraceSummary,
    utc_now,
)
from engine.store.urls import hide_password, safe_url

Registry.load("engine.store.backends")

__all__ = [
    "STORES",
    "Attempt",
    "Clock",
    "DeadLetter",
    "Job",
    "PolledItem",
    "QueuedEvent",
    "Seen",
    "Store",
    "StoredTrace",
    "TraceQuery",
    "TraceSummary",
    "hide_password",
    "open_store",
    "safe_url",
    "scheme_of",
    "utc_now",
]


def scheme_of(url: str) -> str:
    """The backend a store URL names; a StoreError lists the known ones when none is registered."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in STORES:
        known = " or ".join(f"{kind}://" for kind in STORES.kinds)
        raise StoreError(f"unsupported store URL scheme {scheme!r} (use {known})")
    return scheme


def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """A store for `url`. Nothing connects until first use; call `await store.migrate()` first."""
    return STORES.implementation(scheme_of(url)).from_url(url, clock)
