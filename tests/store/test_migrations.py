"""Schema migrations: versioned, idempotent, and applied once when replicas start together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import StoreError
from engine.store import Store, TraceQuery, open_store
from engine.store.migrations import POSTGRES, SQLITE, Migration, check_order


def _expected(backend: str) -> tuple[Migration, ...]:
    return SQLITE if backend.startswith("sqlite") else POSTGRES


async def _versions(backend: str, store: Store) -> list[int]:
    """Rows of schema_version, read through a backend's own connection."""
    if backend.startswith("sqlite"):
        import sqlite3

        path = backend[len("sqlite:///") :]
        with sqlite3.connect(path) as conn:
            return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    import psycopg

    async with await psycopg.AsyncConnection.connect(backend) as conn:
        cur = await conn.execute("SELECT version FROM schema_version ORDER BY version")
        return [row[0] for row in await cur.fetchall()]


def test_migration_lists_are_in_order() -> None:
    check_order(SQLITE)
    check_order(POSTGRES)
    assert [m.version for m in SQLITE] == [m.version for m in POSTGRES]


async def test_migrate_twice_is_a_no_op(backend: str, make_store: Callable[..., Store]) -> None:
    store = make_store()
    version = await store.migrate()
    assert version == len(_expected(backend))
    await store.enqueue("p", "A", {"kept": True})
    await store.set_cursor("p", "c1")
    assert await store.migrate() == version
    again = make_store()
    assert await again.migrate() == version
    assert await _versions(backend, store) == list(range(1, version + 1))
    [job] = await again.claim("w")
    assert job.payload == {"kept": True}
    assert await again.get_cursor("p") == "c1"


async def test_concurrent_migrate_applies_once(backend: str, make_store: Callable[..., Store]) -> None:
    """Replicas starting at once (separate connections) all succeed and the schema is built once."""
    stores = [make_store() for _ in range(4)]
    versions = await asyncio.gather(*(s.migrate() for s in stores))
    assert versions == [len(_expected(backend))] * 4
    assert await _versions(backend, stores[0]) == list(range(1, len(_expected(backend)) + 1))
    await stores[1].enqueue("p", "A", {})
    assert len(await stores[2].claim("w")) == 1


async def test_a_file_that_is_not_a_sqlite_database_is_a_store_error(tmp_path: Path) -> None:
    """SQLite answers "file is not a database" (a DatabaseError, not an OperationalError) at the first
    statement on the file: opening, migrating and reading all say so as a StoreError."""
    (tmp_path / "bad.db").write_bytes(b"not a database\n" * 100)
    store = open_store(f"sqlite:///{tmp_path / 'bad.db'}")
    with pytest.raises(StoreError, match="file is not a database"):
        await store.migrate()
    with pytest.raises(StoreError, match="file is not a database"):
        await store.list_traces(TraceQuery())
    await store.close()
