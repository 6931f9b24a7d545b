"""``iwork-mc audit``: read the audit trail (who changed what, and when), newest first."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from iwork_mc import audit
from iwork_mc.cli import common
from iwork_mc.cli.messages import instant_ms

__all__ = ["audit_log"]


def _since_ms(text: str) -> int:
    """An age (``7d``: that long ago) or an instant (epoch ms, ISO 8601)."""
    from iwork_mc.retention import RetentionError, parse_age_ms

    try:
        return common.now_ms() - parse_age_ms(text)
    except RetentionError:
        return instant_ms(text, "--since")


def _action(text: str) -> audit.AuditAction:
    try:
        return audit.AuditAction(text.strip().lower())
    except ValueError:
        choices = ", ".join(a.value for a in audit.AuditAction)
        raise common.fail(f"--action {text!r}: use one of {choices}", 2) from None


def _view(record: audit.AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "at_ms": record.at_ms,
        "actor": record.actor,
        "action": record.action.value,
        "target": record.target,
        "detail": dict(record.detail),
    }


def audit_log(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Only changes since: an age (7d, 12h) or epoch ms / ISO 8601."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="Only this actor: operator:<user> or app:<app_key>."),
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. app.rotate_secret.")
    ] = None,
    before_id: Annotated[
        int | None, typer.Option(help="Only ids below this (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    json_output: common.JsonFlag = False,
) -> None:
    """Show the audit trail: every change by an operator or an app, newest first."""
    query = audit.AuditQuery(
        since_ms=None if since is None else _since_ms(since),
        actor=actor,
        action=None if action is None else _action(action),
        before_id=before_id,
        limit=limit,
    )
    settings = common.settings_from(ctx)
    records = common.run(settings, lambda store: store.list_audit(query))
    views = [_view(r) for r in records]
    if json_output:
        common.out.print_json(data=views)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("id", "when", "actor", "action", "target", "detail"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "when", "action"))
    for v in views:
        detail = json.dumps(v["detail"], ensure_ascii=False) if v["detail"] else ""
        table.add_row(
            str(v["id"]), common.local_time(v["at_ms"]), v["actor"], v["action"], v["target"],
            detail,
        )  # fmt: skip
    common.out.print(table)
