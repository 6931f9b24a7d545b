"""Versioned schema migrations, shared by the SQLite and PostgreSQL stores.

Migrations are numbered SQL files, ``sql/<dialect>/migrations/NNNN_name.sql``,
applied in number order.  Each one runs in its own transaction together with
the row that records it in ``schema_migrations(version, name, applied_at_ms)``,
so a migration is either entirely applied and recorded or not at all.

Several processes may start at once against a fresh database (a gateway and
a worker, or many workers).  Each migration's transaction first takes a
lock that serialises the runners: ``BEGIN IMMEDIATE`` (SQLite's write lock)
or ``pg_advisory_xact_lock`` (PostgreSQL, scoped to the current schema), then
checks the ledger again, so the second runner finds the migration applied
and skips it instead of failing on ``CREATE TABLE``.

No schema is ever named: PostgreSQL objects go to the first schema of the
connection's ``search_path``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, LiteralString

from iwork_mc.store import sql

if TYPE_CHECKING:
    # Imported for typing only: SQLite users need not have psycopg importable.
    from psycopg import AsyncConnection

__all__ = [
    "Migration",
    "PostgresMigrationQueries",
    "SQLiteMigrationQueries",
    "discover",
    "migrate_postgres",
    "migrate_sqlite",
    "split_sqlite_script",
]

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Migration:
    version: int
    #: The file name without ``.sql``, e.g. ``0001_initial``.
    name: str
    sql: LiteralString


@dataclass(frozen=True, slots=True)
class SQLiteMigrationQueries:
    create_schema_migrations: LiteralString
    migration_applied: LiteralString
    record_migration: LiteralString


@dataclass(frozen=True, slots=True)
class PostgresMigrationQueries:
    migration_lock: LiteralString
    create_schema_migrations: LiteralString
    migration_applied: LiteralString
    record_migration: LiteralString


def discover(dialect: str) -> list[Migration]:
    """The dialect's migrations in order; numbers must run 1, 2, 3… without gaps."""
    folder = resources.files("iwork_mc.store").joinpath("sql", dialect, "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=entry.name.removesuffix(".sql"),
                # Shipped with the package, never built from input.
                sql=text,
            )
        )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"{dialect} migrations must be numbered 1..n without gaps: {versions}")
    return found


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into statements, the way SQLite's own parser sees them.

    ``executescript`` would commit the transaction holding our write lock, so
    the statements run one by one through ``execute`` instead.
    """
    statements: list[str] = []
    start = 0
    for position, char in enumerate(script):
        if char != ";":
            continue
        candidate = script[start : position + 1]
        # complete_statement knows about strings, comments and trigger bodies.
        if sqlite3.complete_statement(candidate):
            if _has_code(candidate):
                statements.append(candidate.strip())
            start = position + 1
    if _has_code(script[start:]):
        raise ValueError("the script ends with an incomplete statement")
    return statements


def _has_code(text: str) -> bool:
    lines = (line.strip() for line in text.splitlines())
    return any(line and line != ";" and not line.startswith("--") for line in lines)


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations on a connection in autocommit mode; return their names."""
    queries = sql.load("sqlite", SQLiteMigrationQueries)
    _sqlite_transaction(conn, lambda: conn.execute(queries.create_schema_migrations))
    applied: list[str] = []
    for migration in discover("sqlite"):

        def apply(migration: Migration = migration) -> None:
            params = {"version": migration.version, "name": migration.name}
            if conn.execute(queries.migration_applied, params).fetchone() is not None:
                return
            for statement in split_sqlite_script(migration.sql):
                conn.execute(statement)
            conn.execute(queries.record_migration, params)
            applied.append(migration.name)

        _sqlite_transaction(conn, apply)
    return applied


def pending_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations not yet applied, in order."""
    exists = conn.execute(
        "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    applied = (
        {row["version"] for row in conn.execute("SELECT version FROM schema_migrations")}
        if exists
        else set()
    )
    return [m.name for m in discover("sqlite") if m.version not in applied]


async def pending_postgres(conn: AsyncConnection[Any]) -> list[str]:
    """Names of the migrations not yet applied, in order (search_path decides the schema)."""
    cursor = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS found")
    row = await cursor.fetchone()
    applied: set[int] = set()
    if row is not None and row["found"]:
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        applied = {found["version"] for found in await cursor.fetchall()}
    return [m.name for m in discover("postgres") if m.version not in applied]


def _sqlite_transaction(conn: sqlite3.Connection, body: Callable[[], object]) -> None:
    # IMMEDIATE takes the write lock up front: the ledger check and the
    # migration happen under one lock, with no window for another runner.
    conn.execute("BEGIN IMMEDIATE")
    try:
        body()
    except BaseException:
        # Some errors (a full disk) already ended the transaction.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


async def migrate_postgres(conn: AsyncConnection[Any]) -> list[str]:
    """Apply pending migrations on an autocommit connection; return their names."""
    queries = sql.load("postgres", PostgresMigrationQueries)
    async with conn.transaction():
        # Even CREATE TABLE IF NOT EXISTS can fail when two sessions race on it.
        await conn.execute(queries.migration_lock)
        await conn.execute(queries.create_schema_migrations)
    applied: list[str] = []
    for migration in discover("postgres"):
        params = {"version": migration.version, "name": migration.name}
        async with conn.transaction():
            await conn.execute(queries.migration_lock)
            cursor = await conn.execute(queries.migration_applied, params)
            if await cursor.fetchone() is not None:
                continue
            # No parameters: the file may hold many statements (simple query protocol).
            await conn.execute(migration.sql)
            await conn.execute(queries.record_migration, params)
        applied.append(migration.name)
    return applied
