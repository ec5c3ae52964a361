"""Schema migrations: versioned, idempotent, and applied once when replicas start together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import StoreError, StoreMissingError
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


async def _add_version(backend: str, version: int) -> None:
    """A row in schema_version as a newer mesbridge would write it."""
    if backend.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(backend[len("sqlite:///") :]) as conn:
            conn.execute(
                "INSERT INTO schema_version VALUES (?, 'newer', '2031-01-01T00:00:00.000000Z')", (version,)
            )
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(backend, autocommit=True) as conn:
        await conn.execute("INSERT INTO schema_version VALUES (%s, 'newer', now())", (version,))


async def test_check_schema_creates_and_migrates_nothing(
    backend: str, make_store: Callable[..., Store]
) -> None:
    """What a command beside the service (`mesbridge dlq`, `traces`) does instead of migrating."""
    store = make_store()
    latest = len(_expected(backend))
    assert store.latest_schema == latest
    if backend.startswith("sqlite"):
        path = Path(backend[len("sqlite:///") :])
        with pytest.raises(StoreMissingError) as missing:
            await store.check_schema()
        assert missing.value.where == str(path)
        assert not path.exists()
        path.touch()  # an empty file: a database without tables
        assert await make_store().schema_version() == 0
    with pytest.raises(StoreError, match="holds no mesbridge tables"):
        await make_store().check_schema()
    assert await make_store().schema_version() == 0  # not even schema_version was created

    await make_store().migrate()
    assert await make_store().check_schema() == latest
    newer_cli = make_store()
    with pytest.MonkeyPatch.context() as patch:  # a mesbridge with one more migration than the store
        patch.setattr(type(newer_cli), "latest_schema", latest + 1)
        with pytest.raises(StoreError, match=f"version {latest}, this mesbridge's at {latest + 1}"):
            await newer_cli.check_schema()
    assert await _versions(backend, store) == [*range(1, latest + 1)]
    await _add_version(backend, latest + 1)  # a newer mesbridge migrated it: migrations only add
    assert await make_store().check_schema() == latest + 1
    assert await _versions(backend, store) == [*range(1, latest + 2)]
