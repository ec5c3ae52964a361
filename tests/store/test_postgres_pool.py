"""PostgreSQL only: the built-in pool drops a connection the server killed and carries on."""

from __future__ import annotations

import psycopg
import pytest

from engine.errors import StoreError
from engine.store import open_store
from engine.store.backends.postgres import split_url

pytestmark = pytest.mark.postgres


def test_pool_size_is_taken_out_of_the_libpq_url() -> None:
    url, size = split_url("postgresql://u@h:5432/db?pool_size=7&options=-c%20search_path%3Dx")
    assert size == 7
    assert url == "postgresql://u@h:5432/db?options=-c%20search_path%3Dx"
    with pytest.raises(StoreError):
        split_url("postgresql://u@h/db?pool_size=0")


async def test_killed_connection_is_replaced(pg_database: str) -> None:
    store = open_store(f"{pg_database}?pool_size=1&application_name=mesbridge_pool_test")
    try:
        await store.migrate()
        await store.set_cursor("p", "1")
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'mesbridge_pool_test'"
            )
        with pytest.raises(StoreError):
            await store.get_cursor("p")
        assert await store.get_cursor("p") == "1"
    finally:
        await store.close()
