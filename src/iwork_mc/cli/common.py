"""What every command group shares: settings, store access, output, errors, numbers.

Commands open the store named by the settings through :func:`run`, which
refuses a database with pending migrations (as ``run`` does) with a one-line
hint to run ``iwork-mc db upgrade``; only ``db upgrade`` itself opens an
unmigrated store.  They print a rich table or, with ``--json``, JSON.  Exit
status: 0 done, 1 not found or not possible now, 2 bad input.  Receiver numbers
are shown to the operator but never logged.

This module imports nothing from the rest of :mod:`iwork_mc.cli`: the command
modules import it, and the package root imports the command modules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console

if TYPE_CHECKING:
    import asyncio

    from iwork_mc.callback_targets import AllowList
    from iwork_mc.config import Settings
    from iwork_mc.store.base import Store

# The domain (settings, store, event loop) is imported inside the helpers: `iwork-mc --help`
# and `--version` then start without loading it.

__all__ = [
    "JsonFlag",
    "callback_url",
    "credentials",
    "e164",
    "err",
    "fail",
    "gateway_url",
    "local_time",
    "now_ms",
    "open_store",
    "operator",
    "out",
    "require_app",
    "require_migrated",
    "run",
    "run_loop",
    "saved_dev_app",
    "settings_from",
    "with_store",
]

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(ctx: typer.Context, **flags: Any) -> Settings:
    """The settings of this invocation (flags, ``IWORK_MC_*`` variables, the TOML file)."""
    # Imported when a command runs: `--help` needs neither pydantic-settings nor structlog.
    from iwork_mc.config import ConfigError, Settings
    from iwork_mc.logs import configure_logging

    overrides = {**ctx.obj["overrides"], **flags}
    try:
        settings = Settings.load(os.environ, overrides, ctx.obj["config"])
        configure_logging(settings.log_format, settings.log_level)
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; the exit to raise, with status ``code``."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def open_store(settings: Settings) -> Store:
    """The store the settings name, not yet open; exits 2 on a URL no backend takes."""
    from iwork_mc.store import create_store

    try:
        return create_store(settings.effective_database_url, **settings.store_options)
    except ValueError as exc:
        raise fail(f"database_url: {exc}", 2) from None


async def with_store(
    settings: Settings, work: Callable[[Store], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Open the store, refuse one with pending migrations (unless ``migrated`` is
    false: ``db upgrade``), run ``work``, close it."""
    store = open_store(settings)
    await store.open()
    try:
        if migrated:
            await require_migrated(store)
        return await work(store)
    finally:
        await store.close()


def run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on the migrated store (see :func:`with_store`) in a fresh event loop."""
    return run_loop(with_store(settings, work))


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion; a store failure is a one-line error, exit 1."""
    import asyncio

    from iwork_mc.store.base import StoreError

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except StoreError as exc:
        # The store's messages already carry the driver's reason: print it once.
        raise fail(f"store: {exc}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop where it exists: the gateway's hot path spends much of its time in the loop.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def require_migrated(store: Store) -> None:
    """Exit 1 if the store has migrations still to apply."""
    pending = await store.pending_migrations()
    if pending:
        raise fail(
            f"the database needs migration(s) {', '.join(pending)}: run `iwork-mc db upgrade`"
        )


def credentials(settings: Settings, app_key: str | None, secret: str | None) -> tuple[str, str]:
    """The app to sign as: both given, or neither (the dev app ``make run`` saved).

    Exactly one given is refused: signing as the dev app instead would send
    under an identity the caller did not ask for.
    """
    if app_key and secret:
        return app_key, secret
    if app_key or secret:
        given, missing = (
            ("the app key", "IWORK_MC_SECRET / --secret")
            if app_key
            else ("the secret", "IWORK_MC_APP_KEY / --app-key")
        )
        raise fail(f"only {given} is given: give {missing} too, or neither for the dev app", 2)
    saved = saved_dev_app(settings)
    if saved is None:
        raise fail(
            "give --app-key and --secret (or IWORK_MC_APP_KEY and IWORK_MC_SECRET), "
            "or run `make run` once to create a dev app",
            2,
        )
    return saved


def saved_dev_app(settings: Settings) -> tuple[str, str] | None:
    """The (app_key, secret) of the dev app ``make run`` saved, if any."""
    # Imported here: it brings the SDK (httpx), which most commands never need.
    from iwork_mc import devapp

    return devapp.load_saved(settings.data_dir / "dev-app.json")


def gateway_url(settings: Settings, url: str | None) -> str:
    """The ``/router/rest`` URL to call: ``url`` (checked) or the settings' host and port."""
    if url is None:
        return f"http://{settings.host}:{settings.port}/router/rest"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(
            f"--url {url!r} is not an http(s) URL: write it like "
            f"http://{settings.host}:{settings.port}/router/rest",
            2,
        )
    return url.strip()


def now_ms() -> int:
    """The time now, in epoch milliseconds."""
    return int(time.time() * 1000)


def operator() -> str:
    """The audit actor of this command: the OS user running it (``operator:<name>``)."""
    from iwork_mc.audit import operator_actor

    return operator_actor()


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
    from iwork_mc.callbacks import InvalidCallbackURL, check_callback_url

    try:
        return check_callback_url(text, allow)
    except InvalidCallbackURL as exc:
        raise fail(f"URL {text!r}: {exc}", 2) from None


def e164(text: str, default_region: str) -> str:
    """``text`` as an E.164 number (``+8613888888888``); exits 2 if it is not one."""
    from iwork_mc import events

    try:
        return events.e164(text, default_region)
    except events.InvalidNumber as exc:
        raise fail(f"{text!r} {exc}", 2) from None
