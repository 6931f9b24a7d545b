"""Schema migrations and the named-query files, on both backends.

Run as a script, this file is one migrating process (see the ``race`` fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from iwork_mc.store import StoreError, create_store, migrations, postgres, sql
from iwork_mc.store import sqlite as sqlite_backend
from iwork_mc.store.migrations import Migration

INITIAL = "0001_initial"
SEGMENTS = "0002_segments"
ENGINE = "0003_engine"
RECEIPT_DESTINATION = "0004_receipt_destination"
FLOW_CONTROL = "0005_flow_control"
AUDIT_RETENTION = "0006_audit_retention"
AWAITING = "0007_awaiting_receipts"
OPERATORS = "0008_operators"
CHANNEL_BREAKERS = "0009_channel_breakers"
TRACE_CONTEXT = "0010_trace_context"
ALL = [
    INITIAL, SEGMENTS, ENGINE, RECEIPT_DESTINATION, FLOW_CONTROL, AUDIT_RETENTION, AWAITING,
    OPERATORS, CHANNEL_BREAKERS, TRACE_CONTEXT,
]  # fmt: skip
LEDGER = [
    (1, INITIAL), (2, SEGMENTS), (3, ENGINE), (4, RECEIPT_DESTINATION), (5, FLOW_CONTROL),
    (6, AUDIT_RETENTION), (7, AWAITING), (8, OPERATORS), (9, CHANNEL_BREAKERS), (10, TRACE_CONTEXT),
]  # fmt: skip


def ledger(database_url: str) -> list[tuple[int, str]]:
    """The ``schema_migrations`` rows, read with the raw driver."""
    query = "SELECT version, name FROM schema_migrations WHERE applied_at_ms > 0 ORDER BY version"
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return [(version, name) for version, name in conn.execute(query)]
    with psycopg.connect(database_url) as conn:
        return [(version, name) for version, name in conn.execute(query)]


def table_exists(database_url: str, table: str) -> bool:
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            return conn.execute(query, (table,)).fetchone() is not None
    with psycopg.connect(database_url) as conn:
        query = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = %s"
        return conn.execute(query, (table,)).fetchone() is not None


async def migrate(database_url: str) -> list[str]:
    store = create_store(database_url)
    await store.open()
    try:
        return await store.migrate()
    finally:
        await store.close()


async def test_migrate_twice(database_url: str) -> None:
    """A second migrate() applies nothing; the ledger records each migration once."""
    first = await migrate(database_url)
    second = await migrate(database_url)

    assert (ALL, []) == (first, second)
    assert LEDGER == ledger(database_url)
    for table in (
        "apps",
        "messages",
        "outbox",
        "timeline",
        "segments",
        "unmatched_receipts",
        "templates",
        "opt_outs",
        "status_events",
    ):
        assert table_exists(database_url, table), table


async def test_processes_migrating_at_once(
    database_url: str, race: Callable[..., list[Any]]
) -> None:
    """Two processes migrating one fresh database at once both succeed, each migration applied once."""
    results = await asyncio.to_thread(race, Path(__file__), database_url)

    # They may split the work (one applies 0001, the other 0002), never repeat it.
    applied = [name for names in results for name in names]
    assert ALL == sorted(applied)
    assert LEDGER == ledger(database_url)


async def test_failed_migration_leaves_no_trace(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails halfway is rolled back whole and not recorded."""
    real = migrations.discover

    def with_broken(dialect: str) -> list[Migration]:
        found = real(dialect)
        broken = Migration(
            version=len(found) + 1,
            name=f"{len(found) + 1:04d}_broken",
            sql="CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);",
        )
        return [*found, broken]

    monkeypatch.setattr(migrations, "discover", with_broken)

    with pytest.raises(StoreError):
        await migrate(database_url)

    assert LEDGER == ledger(database_url)
    assert False is table_exists(database_url, "half_done")


@pytest.mark.postgres
async def test_postgres_schema_follows_search_path(pg_url: str) -> None:
    """Migrations create their tables in the DSN's search_path schema."""
    await migrate(pg_url)

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT current_schema(), to_regclass('outbox')::text").fetchone()

    assert row is not None
    schema, outbox = row
    assert schema.startswith("t_")
    assert "outbox" == outbox  # Unqualified: found through search_path, in that schema.
    assert table_exists(pg_url, "outbox")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migrations_are_packaged_and_numbered(dialect: str) -> None:
    """Each dialect ships its migrations as package data, numbered from 1."""
    found = migrations.discover(dialect)

    assert [INITIAL] == [migration.name for migration in found][:1]
    assert list(range(1, len(found) + 1)) == [migration.version for migration in found]


@pytest.mark.parametrize(
    ("dialect", "users"),
    [
        ("sqlite", [sqlite_backend._Queries, migrations.SQLiteMigrationQueries]),
        ("postgres", [postgres._Queries, migrations.PostgresMigrationQueries]),
    ],
)
def test_every_named_query_is_used(dialect: str, users: list[type]) -> None:
    """A dialect's queries.sql holds exactly the queries its backend declares."""
    in_file = set(sql.parse(sql.read_text(dialect, "queries.sql")))
    declared = {field.name for user in users for field in dataclasses.fields(user)}

    assert declared == in_file


def test_query_file_errors() -> None:
    """A query file with a duplicate name or text before the first header is refused."""
    with pytest.raises(sql.QueryFileError, match="twice"):
        sql.parse("-- a --\nSELECT 1;\n-- a --\nSELECT 2;\n")
    with pytest.raises(sql.QueryFileError, match="header"):
        sql.parse("SELECT 0;\n-- a --\nSELECT 1;\n")


def test_query_file_parsing() -> None:
    """Comment lines and the trailing semicolon are dropped from each query."""
    text = "-- a --\n-- What a does.\nSELECT 1\nFROM t; \n\n-- b_2 --\nSELECT ';'\n"

    assert {"a": "SELECT 1\nFROM t", "b_2": "SELECT ';'"} == sql.parse(text)


def test_split_sqlite_script() -> None:
    """Statements split where SQLite ends them, not at every semicolon."""
    script = """
        -- a comment; with a semicolon
        CREATE TABLE t (x TEXT DEFAULT ';');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            UPDATE t SET x = 'a;b';
        END;
        ;
    """

    statements = migrations.split_sqlite_script(script)

    assert 2 == len(statements)
    assert statements[0].endswith("DEFAULT ';');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


async def _migrating_process(database_url: str) -> list[str]:
    store = create_store(database_url)
    await store.open()
    try:
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        return await store.migrate()
    finally:
        await store.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_migrating_process(sys.argv[1]))))


async def test_pending_migrations_are_reported(database_url: str) -> None:
    """A fresh database reports every migration pending, a migrated one none."""
    from iwork_mc.store import create_store

    store = create_store(database_url)
    await store.open()
    try:
        assert ALL == await store.pending_migrations()
        await store.migrate()
        assert [] == await store.pending_migrations()
    finally:
        await store.close()
