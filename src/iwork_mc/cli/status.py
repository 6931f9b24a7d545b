"""``iwork-mc status`` (also ``messages show``): one message's status and timeline."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from iwork_mc.cli import common
from iwork_mc.messages import Message, TimelineEntry
from iwork_mc.privacy import mask_phone
from iwork_mc.store.base import Store

__all__ = ["status"]


def status(
    ctx: typer.Context,
    msg_key: str,
    app_key: Annotated[
        str | None,
        typer.Option(
            envvar="IWORK_MC_APP_KEY", help="The sending app [default: the dev app of `make run`]."
        ),
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """Show a message's status and timeline, looked up by msg_key in the local store."""
    settings = common.settings_from(ctx)
    if not app_key:
        saved = common.saved_dev_app(settings)
        if saved is None:
            raise common.fail("give --app-key (or IWORK_MC_APP_KEY): there is no dev app", 2)
        app_key = saved[0]
    sender = app_key

    async def work(store: Store) -> tuple[Message, list[TimelineEntry]] | None:
        message = await store.get_message(sender, msg_key)
        if message is None:
            return None
        return message, await store.timeline(message.id)

    found = common.run(settings, work)
    if found is None:
        raise common.fail(f"no message with msg_key {msg_key} for app {app_key}")
    message, timeline = found
    view: dict[str, Any] = {
        "msg_key": message.msg_key,
        "app_key": message.app_key,
        "status": str(message.status),
        "receiver": mask_phone(message.event.mobile_receiver),
        "template": message.template or "(default)",
        "text": message.text,
        "encoding": f"{message.encoding}, {message.segments} segment(s)",
        "urgent": message.urgent,
        "attempts": message.attempts,
        "route_step": message.route_step,
        "channel": message.channel,
        "channel_ref": message.channel_ref,
        "last_error": message.last_error,
        "accepted_at_ms": message.accepted_at_ms,
        "expires_at_ms": message.expires_at_ms,
        "updated_at_ms": message.updated_at_ms,
        "redacted_at_ms": message.redacted_at_ms,
        "timeline": [
            {"at_ms": e.at_ms, "kind": e.kind, "status": str(e.status), "detail": e.detail}
            for e in timeline
        ],
    }
    if json_output:
        common.out.print_json(data=view)
        return
    for key, value in view.items():
        if key != "timeline":
            common.out.print(f"{key:16} {value}", highlight=False)
    table = Table("at", "event", "status", "detail")
    for entry in timeline:
        table.add_row(
            common.local_time(entry.at_ms),
            entry.kind,
            str(entry.status),
            json.dumps(entry.detail, ensure_ascii=False),
        )
    common.out.print(table)
