"""``iwork-mc opt-outs``: the receivers who get no messages, from one app or from every app."""

from __future__ import annotations

from typing import Annotated, Any, cast

import typer
from rich.table import Table

from iwork_mc import audit
from iwork_mc.cli import common
from iwork_mc.policies import OptOut
from iwork_mc.store.base import Store

__all__ = ["opt_outs_cli"]

opt_outs_cli = typer.Typer(help="Manage receivers who get no messages.")

ALL_APPS = "*"

#: An opt-out's fields as shown, in this order.
_VIEW_FIELDS = ("app_key", "receiver", "reason", "created_at_ms")


def _opt_out_scope(app_key: str | None, all_apps: bool) -> str:
    if (app_key is None) == (not all_apps):
        raise common.fail("give --app APP_KEY or --all-apps", 2)
    return ALL_APPS if all_apps else cast(str, app_key)


def _opt_out_view(opt_out: OptOut) -> dict[str, Any]:
    return {field: getattr(opt_out, field) for field in _VIEW_FIELDS}


OptOutAppOption = Annotated[str | None, typer.Option("--app", help="Only for this app_key.")]
AllAppsOption = Annotated[bool, typer.Option("--all-apps", help="For every app.")]


@opt_outs_cli.command("add")
def opt_outs_add(
    ctx: typer.Context,
    receiver: Annotated[str, typer.Argument(help="The number, e.g. 13888888888 or +86….")],
    app_key: OptOutAppOption = None,
    all_apps: AllAppsOption = False,
    reason: Annotated[str, typer.Option(help="Why (kept with the opt-out).")] = "",
    json_output: common.JsonFlag = False,
) -> None:
    """Stop messages to a receiver from one app or from every app."""
    scope = _opt_out_scope(app_key, all_apps)
    if len(reason) > 500:
        raise common.fail("--reason must be at most 500 characters", 2)
    settings = common.settings_from(ctx)
    number = common.e164(receiver, settings.default_region)
    opt_out = OptOut(app_key=scope, receiver=number, reason=reason, created_at_ms=common.now_ms())

    async def work(store: Store) -> bool:
        if scope != ALL_APPS:
            await common.require_app(store, scope)
        record = audit.opt_out_added(
            common.operator(), opt_out.created_at_ms, app_key=scope, receiver=number
        )
        return await store.add_opt_out(opt_out, audit=record)

    added = common.run(settings, work)
    if json_output:
        common.out.print_json(data={"added": added, **_opt_out_view(opt_out)})
    elif added:
        common.out.print(f"opted out {number} of {_scope_words(scope)}", highlight=False)
    else:
        common.out.print(
            f"{number} was already opted out of {_scope_words(scope)}", highlight=False
        )


def _scope_words(scope: str) -> str:
    return "every app" if scope == ALL_APPS else f"app {scope}"


@opt_outs_cli.command("remove")
def opt_outs_remove(
    ctx: typer.Context,
    receiver: str,
    app_key: OptOutAppOption = None,
    all_apps: AllAppsOption = False,
    json_output: common.JsonFlag = False,
) -> None:
    """Let a receiver get messages again (from one app, or end an every-app opt-out)."""
    scope = _opt_out_scope(app_key, all_apps)
    settings = common.settings_from(ctx)
    number = common.e164(receiver, settings.default_region)
    record = audit.opt_out_removed(
        common.operator(), common.now_ms(), app_key=scope, receiver=number
    )
    if not common.run(settings, lambda store: store.remove_opt_out(scope, number, audit=record)):
        raise common.fail(f"{number} is not opted out of {_scope_words(scope)}")
    if json_output:
        common.out.print_json(data={"removed": True, "app_key": scope, "receiver": number})
    else:
        common.out.print(
            f"{number} gets messages from {_scope_words(scope)} again", highlight=False
        )


@opt_outs_cli.command("list")
def opt_outs_list(
    ctx: typer.Context,
    app_key: Annotated[
        str | None, typer.Option("--app", help="Those of this app and of every app.")
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """List opt-outs, newest first, with full numbers (for the operator's eyes only)."""
    settings = common.settings_from(ctx)
    opt_outs = common.run(settings, lambda store: store.list_opt_outs(app_key))
    if json_output:
        common.out.print_json(data=[_opt_out_view(o) for o in opt_outs])
        return
    table = Table("receiver", "app", "reason", "since")
    for o in opt_outs:
        app_text = "every app" if o.app_key == ALL_APPS else o.app_key
        table.add_row(o.receiver, app_text, o.reason, common.local_time(o.created_at_ms))
    common.out.print(table)
