"""What the operator's command groups share: store access, output, errors, numbers.

The ``templates`` (:mod:`iwork_mc.cli_templates`), ``opt-outs``
(:mod:`iwork_mc.cli_optouts`) and ``messages`` (:mod:`iwork_mc.cli_messages`)
groups, and ``apps set-callback``, open the store named by the settings here,
which refuses a database with pending migrations (as ``run`` does).  They print
a rich table or, with ``--json``, JSON.  Exit status: 0 done, 1 not found or
not possible now, 2 bad input.  Receiver numbers are shown to the operator but
never logged.

The deeper plumbing (settings, the event loop, error mapping) is
:mod:`iwork_mc.cli`'s; it is imported when a command runs, because ``cli``
imports the group modules to register them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from iwork_mc import events
from iwork_mc.callback_targets import AllowList
from iwork_mc.callbacks import InvalidCallbackURL, check_callback_url
from iwork_mc.config import Settings
from iwork_mc.store.base import Store

__all__ = [
    "JsonFlag",
    "callback_url",
    "e164",
    "fail",
    "local_time",
    "now_ms",
    "out",
    "require_app",
    "require_migrated",
    "run",
    "settings_from",
    "with_store",
]

T = TypeVar("T")

out = Console(soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(ctx: typer.Context) -> Settings:
    """The settings of this invocation (flags, ``IWORK_MC_*`` variables, the TOML file)."""
    from iwork_mc import cli

    return cli._settings(ctx)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; the exit to raise, with status ``code``."""
    from iwork_mc import cli

    return cli._fail(message, code)


def run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on the store (see :func:`with_store`) in a fresh event loop."""
    from iwork_mc import cli

    return cli._run(with_store(settings, work))


async def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, refuse one with pending migrations, run ``work``, close it."""
    from iwork_mc import cli

    async def migrated_work(store: Store) -> T:
        await require_migrated(store)
        return await work(store)

    return await cli._with_store(settings, migrated_work)


async def require_migrated(store: Store) -> None:
    """Exit 1 if the store has migrations still to apply."""
    pending = await store.pending_migrations()
    if pending:
        raise fail(
            f"the database needs migration(s) {', '.join(pending)}: run `iwork-mc db upgrade`"
        )


def now_ms() -> int:
    """The time now, in epoch milliseconds."""
    return int(time.time() * 1000)


def local_time(ms: int | None) -> str:
    """Epoch milliseconds as a local ``YYYY-MM-DD HH:MM:SS``; ``""`` for ``None``."""
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


async def require_app(store: Store, app_key: str | None) -> None:
    """Exit 1 unless ``app_key`` is empty or names a stored app."""
    if app_key and await store.get_app(app_key) is None:
        raise fail(f"no app with app_key {app_key}")


def callback_url(text: str, allow: AllowList) -> str:
    """``text`` as a status callback URL (stripped); exits 2 if it cannot or may not be one."""
    try:
        return check_callback_url(text, allow)
    except InvalidCallbackURL as exc:
        raise fail(f"URL {text!r}: {exc}", 2) from None


def e164(text: str, default_region: str) -> str:
    """``text`` as an E.164 number (``+8613888888888``); exits 2 if it is not one."""
    try:
        return events.e164(text, default_region)
    except events.InvalidNumber as exc:
        raise fail(f"{text!r} {exc}", 2) from None
