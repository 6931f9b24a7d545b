"""Named SQL queries, kept in ``sql/<dialect>/queries.sql`` (procrastinate style).

A query file is a sequence of blocks, each opened by a header line holding
only the query's name between double dashes::

    -- get_app --
    -- An app by its key (further comment lines are documentation).
    SELECT * FROM apps WHERE app_key = :app_key;

Each backend declares the queries it uses as the fields of a frozen dataclass
and calls :func:`load`, which fails at import time when the file lacks one of
them, so a typo is an import error and not a runtime surprise.  The text is
typed :data:`~typing.LiteralString`: it comes from a file shipped with the
package, never from user input, and psycopg's typing asks for exactly that.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from typing import TYPE_CHECKING, LiteralString, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["QueryFileError", "load", "parse", "read_text"]

_HEADER = re.compile(r"^--\s*([a-z][a-z0-9_]*)\s*--\s*$", re.MULTILINE)


class QueryFileError(ValueError):
    """A query file is malformed or lacks a query a backend needs."""


_Q = TypeVar("_Q", bound="DataclassInstance")


def read_text(dialect: str, *parts: str) -> str:
    """The text of a file under ``iwork_mc/store/sql/<dialect>/`` (packaged resource)."""
    resource = resources.files("iwork_mc.store").joinpath("sql", dialect, *parts)
    return resource.read_text(encoding="utf-8")


def parse(text: str) -> dict[str, LiteralString]:
    """Split a query file into ``{name: sql}``; comment-only lines are dropped."""
    headers = list(_HEADER.finditer(text))
    if not headers or text[: headers[0].start()].strip():
        raise QueryFileError("a query file must start with a '-- name --' header")
    queries: dict[str, LiteralString] = {}
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        name = header.group(1)
        end = following.start() if following else len(text)
        body = "\n".join(
            line
            for line in text[header.end() : end].splitlines()
            if line.strip() and not line.lstrip().startswith("--")
        ).strip()
        # psycopg and sqlite3 both want one statement without a trailing ';'.
        body = body.removesuffix(";").rstrip()
        if not body:
            raise QueryFileError(f"query {name!r} is empty")
        if name in queries:
            raise QueryFileError(f"query {name!r} is defined twice")
        # The text ships with the package: it is as literal as a string in the
        # code.  (mypy treats LiteralString as str, so no cast is needed.)
        queries[name] = body
    return queries


def load(dialect: str, into: type[_Q]) -> _Q:
    """Build ``into`` (a dataclass of ``LiteralString`` fields) from the dialect's queries."""
    queries = parse(read_text(dialect, "queries.sql"))
    names = [field.name for field in dataclasses.fields(into)]
    missing = [name for name in names if name not in queries]
    if missing:
        raise QueryFileError(f"{dialect}/queries.sql lacks {', '.join(missing)}")
    return into(**{name: queries[name] for name in names})
