"""The durable store, and :func:`create_store` to pick a backend from a database URL.

Backends are imported only when chosen, so psycopg is loaded only for
PostgreSQL.
"""

from __future__ import annotations

import importlib
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from iwork_mc.store.base import (
    AppExists,
    MessageNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    TemplateExists,
)

__all__ = [
    "BACKENDS",
    "AppExists",
    "MessageNotFound",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TemplateExists",
    "create_store",
]

#: URL scheme → backend class, imported on first use.
BACKENDS: dict[str, str] = {
    "sqlite": "iwork_mc.store.sqlite:SQLiteStore",
    "postgresql": "iwork_mc.store.postgres:PostgresStore",
    "postgres": "iwork_mc.store.postgres:PostgresStore",
}


def create_store(database_url: str, **options: Any) -> Store:
    """A closed store for ``database_url``; call ``open()`` (and ``migrate()``) next.

    Args:
        database_url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
            or ``postgresql://user@host:port/dbname?options=…`` (also ``postgres://``),
            which is handed to libpq unchanged.
        options: Keyword arguments for the backend's constructor
            (``busy_timeout_ms``, ``max_batch``; ``min_size``, ``max_size``, ``timeout``).

    Raises:
        ValueError: The URL's scheme is not one of :data:`BACKENDS`, or a
            SQLite URL names no file.
    """
    scheme = urlsplit(database_url).scheme.lower()
    if scheme not in BACKENDS:
        known = ", ".join(f"{name}://" for name in BACKENDS)
        raise ValueError(f"unsupported database URL scheme {scheme!r}; use one of {known}")
    backend = _import(BACKENDS[scheme])
    if scheme == "sqlite":
        return cast(Store, backend(_sqlite_path(database_url), **options))
    return cast(Store, backend(database_url, **options))


def _sqlite_path(database_url: str) -> str:
    # Not urlsplit: "sqlite:////abs" must keep its leading slash and no host is allowed.
    prefix = "sqlite:///"
    if not database_url.lower().startswith(prefix):
        raise ValueError(
            "a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    rest = database_url[len(prefix) :]
    if "?" in rest or "#" in rest:
        raise ValueError("a SQLite URL takes no query or fragment; settings are options")
    path = unquote(rest)
    if not path or path.endswith("/"):
        raise ValueError(f"the SQLite URL {database_url!r} names no file")
    if path == ":memory:":
        raise ValueError("an in-memory SQLite database is not durable; name a file")
    return path


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"the {module_name} backend needs a dependency that is missing ({exc.name}); "
            "reinstall iwork-mc with its dependencies"
        ) from exc
    return getattr(module, attribute)
