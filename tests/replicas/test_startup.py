"""Replicas starting at the same moment on an empty database migrate it exactly once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.store.migrations import POSTGRES
from tests.replicas.conftest import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_replicas_starting_together_migrate_once(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    tables = cluster.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    assert tables[0][0] == 0, "the test database is not empty"
    replicas = cluster.start(3, wait=False)  # spawned back to back: all three race for the migration
    for replica in replicas:
        replica.wait_ready()
    rows = cluster.sql("SELECT version, description FROM schema_version ORDER BY version")
    assert rows == [(m.version, m.description) for m in POSTGRES], f"schema_version rows: {rows}"
    for replica in replicas:
        log = replica.log.read_text()
        assert '"level": "error"' not in log and "Traceback" not in log, f"{replica.name}:\n{replica.tail()}"
    for replica in replicas:
        assert replica.stop() == 0, f"{replica.name} did not stop cleanly:\n{replica.tail()}"
    # A restart on the migrated database applies nothing again.
    (again,) = cluster.start(1)
    assert cluster.sql("SELECT count(*) FROM schema_version")[0][0] == len(POSTGRES)
    assert again.stop() == 0
