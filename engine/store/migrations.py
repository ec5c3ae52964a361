"""Versioned schema migrations of each backend, in order. Append new ones; never edit an applied one.

Each backend records the applied versions in `schema_version` and applies the missing ones in one
transaction (PostgreSQL: under an advisory transaction lock, so replicas starting together migrate once).

Tables (same shape in both backends):
    jobs            every event: state queued | done | dead; `seq` orders a key's jobs (FIFO)
    replies         idempotency: state pending (reserved, with holder and expiry) | done (reply)
    cursors         poll cursor per pipeline
    seen            (pipeline, key, version) already delivered by a poller
    leases          named poller leases with holder and expiry
    traces          what each run did (`engine.traces.document`), with the columns listings filter on
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: its version number, a description and the statements to run."""

    version: int
    description: str
    statements: tuple[str, ...]


SQLITE_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

POSTGRES_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)"""

# SQLite keeps timestamps as fixed-width UTC ISO-8601 text (sorts like time) and JSON as text.
SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "queue, idempotency, cursors, seen keys, leases",
        (
            """CREATE TABLE jobs (
                event_id TEXT PRIMARY KEY,
                seq INTEGER NOT NULL UNIQUE,
                pipeline TEXT NOT NULL,
                key TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'dead')),
                enqueued_at TEXT NOT NULL,
                available_at TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                history TEXT NOT NULL DEFAULT '[]',
                leased_by TEXT,
                lease_until TEXT,
                finished_at TEXT,
                result TEXT,
                error TEXT
            )""",
            "CREATE INDEX jobs_queued_key ON jobs (pipeline, key, seq) WHERE state = 'queued'",
            "CREATE INDEX jobs_queued_seq ON jobs (seq) WHERE state = 'queued'",
            "CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state <> 'queued'",
            """CREATE TABLE replies (
                pipeline TEXT NOT NULL,
                idem_key TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
                reply TEXT,
                holder TEXT,
                expires_at TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, idem_key)
            )""",
            """CREATE TABLE cursors (
                pipeline TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE seen (
                pipeline TEXT NOT NULL,
                key TEXT NOT NULL,
                version TEXT NOT NULL,
                seen_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, key, version)
            )""",
            "CREATE INDEX seen_at ON seen (seen_at)",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(2, "the kind of a dead letter's failure", ("ALTER TABLE jobs ADD COLUMN kind TEXT",)),
    Migration(
        3,
        "traces of runs",
        (
            """CREATE TABLE traces (
                id TEXT PRIMARY KEY,
                received TEXT NOT NULL,
                pipeline TEXT NOT NULL,
                event_id TEXT NOT NULL,
                source TEXT NOT NULL,
                outcome TEXT NOT NULL,
                status INTEGER,
                duration REAL NOT NULL,
                version TEXT NOT NULL,
                search TEXT NOT NULL,
                document TEXT NOT NULL
            )""",
            "CREATE INDEX traces_received ON traces (received)",
            "CREATE INDEX traces_pipeline ON traces (pipeline, received)",
        ),
    ),
)

POSTGRES: tuple[Migration, ...] = (
    Migration(
        1,
        "queue, idempotency, cursors, seen keys, leases",
        (
            "CREATE SEQUENCE jobs_seq",
            """CREATE TABLE jobs (
                event_id TEXT PRIMARY KEY,
                seq BIGINT NOT NULL UNIQUE DEFAULT nextval('jobs_seq'),
                pipeline TEXT NOT NULL,
                key TEXT NOT NULL,
                payload JSONB NOT NULL,
                state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'dead')),
                enqueued_at TIMESTAMPTZ NOT NULL,
                available_at TIMESTAMPTZ NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                history JSONB NOT NULL DEFAULT '[]',
                leased_by TEXT,
                lease_until TIMESTAMPTZ,
                finished_at TIMESTAMPTZ,
                result JSONB,
                error TEXT
            )""",
            "ALTER SEQUENCE jobs_seq OWNED BY jobs.seq",
            "CREATE INDEX jobs_queued_key ON jobs (pipeline, key, seq) WHERE state = 'queued'",
            "CREATE INDEX jobs_queued_seq ON jobs (seq) WHERE state = 'queued'",
            "CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE state <> 'queued'",
            """CREATE TABLE replies (
                pipeline TEXT NOT NULL,
                idem_key TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
                reply JSONB,
                holder TEXT,
                expires_at TIMESTAMPTZ,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (pipeline, idem_key)
            )""",
            """CREATE TABLE cursors (
                pipeline TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE seen (
                pipeline TEXT NOT NULL,
                key TEXT NOT NULL,
                version TEXT NOT NULL,
                seen_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (pipeline, key, version)
            )""",
            "CREATE INDEX seen_at ON seen (seen_at)",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL
            )""",
        ),
    ),
    Migration(2, "the kind of a dead letter's failure", ("ALTER TABLE jobs ADD COLUMN kind TEXT",)),
    Migration(
        3,
        "traces of runs",
        (
            """CREATE TABLE traces (
                id TEXT PRIMARY KEY,
                received TIMESTAMPTZ NOT NULL,
                pipeline TEXT NOT NULL,
                event_id TEXT NOT NULL,
                source TEXT NOT NULL,
                outcome TEXT NOT NULL,
                status INTEGER,
                duration DOUBLE PRECISION NOT NULL,
                version TEXT NOT NULL,
                search TEXT NOT NULL,
                document JSONB NOT NULL
            )""",
            "CREATE INDEX traces_received ON traces (received)",
            "CREATE INDEX traces_pipeline ON traces (pipeline, received)",
        ),
    ),
)


def check_order(migrations: tuple[Migration, ...]) -> None:
    """Fail loudly if versions are not 1, 2, 3, ... in order (a merge mistake)."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.version} out of order; expected {expected}")
