"""``iwork-mc apps``: the apps (app_key + secret) allowed to call the gateway."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from iwork_mc import audit
from iwork_mc.apps import App, new_app_key, new_secret
from iwork_mc.cli import common
from iwork_mc.store.base import AppExists, Store

__all__ = ["apps_cli"]

apps_cli = typer.Typer(help="Manage the apps (app_key + secret) allowed to call the gateway.")


def _app_view(app_: App, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "app_key": app_.app_key,
        "name": app_.name,
        "enabled": app_.enabled,
        "created_at_ms": app_.created_at_ms,
        "previous_secret_valid_until_ms": app_.previous_secret_expires_at_ms,
        "callback_url": app_.callback_url,
        # None: the app_rate_limit / app_rate_burst settings apply.
        "rate_limit": app_.rate_limit,
        "rate_burst": app_.rate_burst,
    }
    if with_secret:
        view["secret"] = app_.secret
    return view


def _print_app(app_: App, json_output: bool, *, with_secret: bool = False) -> None:
    view = _app_view(app_, with_secret=with_secret)
    if json_output:
        common.out.print_json(data=view)
        return
    for key, value in view.items():
        common.out.print(f"{key:32} {value}", highlight=False)
    if with_secret:
        common.err.print("The secret is shown once: store it now.")


def _existing(app_: App | None, app_key: str) -> App:
    if app_ is None:
        raise common.fail(f"no app with app_key {app_key}")
    return app_


@apps_cli.command("create")
def apps_create(ctx: typer.Context, name: str, json_output: common.JsonFlag = False) -> None:
    """Create an app and print its app_key and secret (the secret is shown only now)."""
    settings = common.settings_from(ctx)

    async def work(store: Store) -> App:
        while True:
            now = common.now_ms()
            candidate = App(
                app_key=new_app_key(), name=name, secret=new_secret(), enabled=True,
                created_at_ms=now,
            )  # fmt: skip
            record = audit.app_created(common.operator(), now, app_key=candidate.app_key, name=name)
            try:
                await store.insert_app(candidate, audit=record)
                return candidate
            except AppExists:
                continue

    _print_app(common.run(settings, work), json_output, with_secret=True)


@apps_cli.command("list")
def apps_list(ctx: typer.Context, json_output: common.JsonFlag = False) -> None:
    """List every app (never their secrets)."""
    settings = common.settings_from(ctx)
    apps = common.run(settings, lambda store: store.list_apps())
    if json_output:
        common.out.print_json(data=[_app_view(a) for a in apps])
        return
    table = Table("app_key", "name", "enabled", "created")
    for a in apps:
        created = common.local_time(a.created_at_ms)
        table.add_row(a.app_key, a.name, "yes" if a.enabled else "no", created)
    common.out.print(table)


@apps_cli.command("show")
def apps_show(ctx: typer.Context, app_key: str, json_output: common.JsonFlag = False) -> None:
    """Show one app (never its secret)."""
    settings = common.settings_from(ctx)
    found = _existing(common.run(settings, lambda s: s.get_app(app_key)), app_key)
    _print_app(found, json_output)


@apps_cli.command("disable")
def apps_disable(ctx: typer.Context, app_key: str, json_output: common.JsonFlag = False) -> None:
    """Refuse calls from an app (code 11) until it is enabled again."""
    settings = common.settings_from(ctx)
    record = audit.app_enabled(common.operator(), common.now_ms(), app_key=app_key, enabled=False)
    found = common.run(settings, lambda s: s.set_app_enabled(app_key, False, audit=record))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("enable")
def apps_enable(ctx: typer.Context, app_key: str, json_output: common.JsonFlag = False) -> None:
    """Accept calls from an app again."""
    settings = common.settings_from(ctx)
    record = audit.app_enabled(common.operator(), common.now_ms(), app_key=app_key, enabled=True)
    found = common.run(settings, lambda s: s.set_app_enabled(app_key, True, audit=record))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("rotate-secret")
def apps_rotate_secret(
    ctx: typer.Context,
    app_key: str,
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="How long the old secret stays valid [default: secret_grace_s]."),
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """Give an app a new secret; the old one stays valid for a grace period."""
    settings = common.settings_from(ctx)
    grace = settings.secret_grace_s if grace_seconds is None else grace_seconds
    if grace < 0:
        raise common.fail("--grace-seconds must not be negative", 2)
    now = common.now_ms()
    valid_until = now + grace * 1000
    record = audit.secret_rotated(
        common.operator(), now, app_key=app_key, previous_valid_until_ms=valid_until
    )
    rotated = common.run(
        settings, lambda s: s.rotate_secret(app_key, new_secret(), valid_until, audit=record)
    )
    _print_app(_existing(rotated, app_key), json_output, with_secret=True)


@apps_cli.command("set-callback")
def apps_set_callback(
    ctx: typer.Context, app_key: str, url: str, json_output: common.JsonFlag = False
) -> None:
    """POST each status change of the app's messages to URL (http or https, a public host).

    Internal hosts are refused unless listed in the callback_allow_hosts setting.
    """
    settings = common.settings_from(ctx)
    checked = common.callback_url(url, settings.callback_allow_list)
    record = audit.callback_url_set(
        common.operator(), common.now_ms(), app_key=app_key, url=checked
    )
    found = common.run(settings, lambda s: s.set_callback_url(app_key, checked, audit=record))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("clear-callback")
def apps_clear_callback(
    ctx: typer.Context, app_key: str, json_output: common.JsonFlag = False
) -> None:
    """Stop sending the app's status callbacks."""
    settings = common.settings_from(ctx)
    record = audit.callback_url_set(common.operator(), common.now_ms(), app_key=app_key, url=None)
    found = common.run(settings, lambda s: s.set_callback_url(app_key, None, audit=record))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("set-rate")
def apps_set_rate(
    ctx: typer.Context,
    app_key: str,
    rate: Annotated[
        float, typer.Option(min=0, help="Calls per second over every gateway (0: no limit).")
    ],
    burst: Annotated[
        int | None,
        typer.Option(min=1, help="Calls it may burst above the rate [default: app_rate_burst]."),
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """Give an app its own flow control, instead of app_rate_limit / app_rate_burst."""
    settings = common.settings_from(ctx)
    record = audit.app_rate_set(
        common.operator(), common.now_ms(), app_key=app_key, rate_limit=rate, rate_burst=burst
    )
    found = common.run(settings, lambda s: s.set_app_rate(app_key, rate, burst, audit=record))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("clear-rate")
def apps_clear_rate(ctx: typer.Context, app_key: str, json_output: common.JsonFlag = False) -> None:
    """Put an app back on the default flow control (app_rate_limit / app_rate_burst)."""
    settings = common.settings_from(ctx)
    record = audit.app_rate_set(
        common.operator(), common.now_ms(), app_key=app_key, rate_limit=None, rate_burst=None
    )
    found = common.run(settings, lambda s: s.set_app_rate(app_key, None, None, audit=record))
    _print_app(_existing(found, app_key), json_output)
