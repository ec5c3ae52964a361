"""Fixtures running the shared store suite on both backends.

PostgreSQL: one fresh database `mesbridge_test_<random>` per test session (created from the server named
by MESBRIDGE_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/postgres, dropped at the end),
and one fresh schema per test inside it. An unreachable server fails those tests; it never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from engine.store import Store, open_store

ADMIN_URL = os.environ.get("MESBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.current = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this session and dropped after it."""
    name = f"mesbridge_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {ADMIN_URL} ({exc}). Start the server or point "
            "MESBRIDGE_TEST_POSTGRES at one; the PostgreSQL store tests never skip.",
            pytrace=False,
        )
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A store URL with nothing in it yet, for the backend under test."""
    return empty_store_url(request, tmp_path)


def empty_store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A store URL with nothing in it yet, for the backend `request.param` names (a fixture of tests
    elsewhere, with `pg_database` imported beside it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    database = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{database}?{urlencode({'options': f'-c search_path={schema}'}, quote_via=quote)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_store(backend: str, clock: FakeClock) -> AsyncIterator[Callable[..., Store]]:
    """Open further stores on the same backing (file or schema), sharing the fake clock; closed after."""
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(backend, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: Callable[..., Store]) -> Store:
    """A migrated, empty store of the backend under test."""
    s = make_store()
    await s.migrate()
    return s
