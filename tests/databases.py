"""PostgreSQL for tests: the server named by ``IWORK_MC_TEST_PG_DSN``, a schema per use.

Unset, PostgreSQL cases skip (a laptop without PostgreSQL); set but
unreachable, they fail: CI sets it and must never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

PG_DSN_ENV = "IWORK_MC_TEST_PG_DSN"


@contextlib.contextmanager
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(f"{PG_DSN_ENV} is not set; PostgreSQL tests need a server")
    schema = f"t_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        # Not the DSN itself: it may hold a password.
        pytest.fail(f"{PG_DSN_ENV} is set but PostgreSQL is unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield with_search_path(dsn, schema)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``-csearch_path=<schema>`` added to its libpq ``options``."""
    option = f"-csearch_path={schema}"
    if "://" not in dsn:  # key=value conninfo
        options = psycopg.conninfo.conninfo_to_dict(dsn).get("options") or ""
        return psycopg.conninfo.make_conninfo(dsn, options=f"{options} {option}".strip())
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    existing = [value for key, value in query if key == "options"]
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", " ".join([*existing, option])))
    # libpq decodes %XX but not '+', so spaces must be %20: quote, not quote_plus.
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
