"""``iwork-mc messages``: find, count, retry and purge stored messages.

Receivers are masked unless ``--show-numbers`` is given; times are taken as
epoch milliseconds or ISO 8601.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from iwork_mc import audit
from iwork_mc.cli import common
from iwork_mc.messages import REQUEUE_FROM, Message, MessageQuery, MessageStatus, parse_instant
from iwork_mc.privacy import mask_phone
from iwork_mc.store.base import Store

__all__ = ["instant_ms", "messages_cli"]

messages_cli = typer.Typer(help="Find, count, retry and purge stored messages.")

AppOption = Annotated[str | None, typer.Option("--app", help="Only this app's.")]
SinceOption = Annotated[
    str | None, typer.Option(help="Accepted at or after: epoch ms or ISO 8601.")
]
UntilOption = Annotated[str | None, typer.Option(help="Accepted before: epoch ms or ISO 8601.")]


def instant_ms(text: str, option: str) -> int:
    """Epoch milliseconds, or an ISO 8601 date/time (local time unless it has an offset)."""
    try:
        return parse_instant(text, naive_zone=None)
    except ValueError:
        raise common.fail(
            f"{option} {text!r}: give epoch milliseconds or an ISO 8601 time "
            "(2026-05-01, 2026-05-01T08:00, 2026-05-01T08:00+08:00)",
            2,
        ) from None


def _statuses(values: Iterable[str]) -> frozenset[MessageStatus] | None:
    names = [name.strip().lower() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return None
    known = {status.value for status in MessageStatus}
    unknown = [name for name in names if name not in known]
    if unknown:
        choices = ", ".join(s.value for s in MessageStatus)
        raise common.fail(f"--status {', '.join(unknown)}: use one of {choices}", 2)
    return frozenset(MessageStatus(name) for name in names)


def _message_view(message: Message, *, show_numbers: bool) -> dict[str, Any]:
    receiver = message.event.mobile_receiver
    return {
        "id": message.id,
        "app_key": message.app_key,
        "msg_key": message.msg_key,
        "status": str(message.status),
        "receiver": receiver if show_numbers else mask_phone(receiver),
        "template": message.template,
        "segments": message.segments,
        "attempts": message.attempts,
        "channel": message.channel,
        "last_error": message.last_error,
        "accepted_at_ms": message.accepted_at_ms,
        "updated_at_ms": message.updated_at_ms,
    }


@messages_cli.command("list")
def messages_list(
    ctx: typer.Context,
    app_key: AppOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only these statuses (repeat it, or separate with commas)."),
    ] = None,
    receiver: Annotated[str | None, typer.Option(help="Only messages to this number.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    before_id: Annotated[
        int | None, typer.Option(help="Only ids below this (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    show_numbers: Annotated[
        bool, typer.Option("--show-numbers", help="Show receivers in full, not masked.")
    ] = False,
    json_output: common.JsonFlag = False,
) -> None:
    """List stored messages, newest first."""
    settings = common.settings_from(ctx)
    query = MessageQuery(
        app_key=app_key,
        statuses=_statuses(status or ()),
        receiver=None if receiver is None else common.e164(receiver, settings.default_region),
        accepted_from_ms=None if since is None else instant_ms(since, "--since"),
        accepted_until_ms=None if until is None else instant_ms(until, "--until"),
        before_id=before_id,
        limit=limit,
    )
    messages = common.run(settings, lambda store: store.find_messages(query))
    views = [_message_view(m, show_numbers=show_numbers) for m in messages]
    if json_output:
        common.out.print_json(data=views)
        return
    # Narrow terminals squeeze msg_key and error; the other cells are kept whole.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("id", "app", "msg_key", "status", "receiver", "tries", "accepted", "error"):
        squeezable = column in ("msg_key", "error")
        table.add_column(
            column, no_wrap=not squeezable, overflow="fold", min_width=12 if squeezable else None
        )
    for v in views:
        table.add_row(
            str(v["id"]), v["app_key"], v["msg_key"], v["status"], v["receiver"],
            str(v["attempts"]), common.local_time(v["accepted_at_ms"]), v["last_error"] or "",
        )  # fmt: skip
    common.out.print(table)


@messages_cli.command("retry")
def messages_retry(
    ctx: typer.Context,
    app_key: Annotated[str | None, typer.Argument(help="The sending app.")] = None,
    msg_key: Annotated[str | None, typer.Argument(help="The message's msg_key.")] = None,
    message_id: Annotated[
        int | None, typer.Option("--id", help="The message's id instead.")
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """Send a failed or expired message again, with a fresh validity period."""
    by_key = app_key is not None and msg_key is not None
    if by_key == (message_id is not None) or (app_key is None) != (msg_key is None):
        raise common.fail("give APP_KEY MSG_KEY, or --id ID", 2)
    settings = common.settings_from(ctx)
    validity_ms = settings.message_validity_s * 1000

    async def work(store: Store) -> tuple[Message, int]:
        if message_id is not None:
            found = await store.get_message_by_id(message_id)
            what = f"no message with id {message_id}"
        else:
            assert app_key is not None and msg_key is not None
            found = await store.get_message(app_key, msg_key)
            what = f"no message with msg_key {msg_key} for app {app_key}"
        if found is None:
            raise common.fail(what)
        # The store requeues only from REQUEUE_FROM, atomically: no check beforehand.
        now = common.now_ms()
        expires = now + validity_ms
        record = audit.message_requeued(
            common.operator(), now,
            app_key=found.app_key, msg_key=found.msg_key, expires_at_ms=expires,
        )  # fmt: skip
        if not await store.requeue(
            found.id, now_ms=now, expires_at_ms=expires, by="cli", audit=record
        ):
            again = await store.get_message_by_id(found.id)
            raise common.fail(_not_retryable(again or found))
        return found, expires

    message, expires_at = common.run(settings, work)
    view = {"id": message.id, "app_key": message.app_key, "msg_key": message.msg_key,
            "status": str(MessageStatus.QUEUED), "previous_status": str(message.status),
            "expires_at_ms": expires_at}  # fmt: skip
    if json_output:
        common.out.print_json(data=view)
    else:
        common.out.print(
            f"requeued message {message.id} (msg_key {message.msg_key}, app {message.app_key}): "
            f"{message.status} → queued, valid until {common.local_time(expires_at)}",
            highlight=False,
        )


def _not_retryable(message: Message) -> str:
    if message.redacted_at_ms is not None:
        return (
            f"message {message.id} (msg_key {message.msg_key}) was redacted by retention: "
            "its receiver and data are gone, so it cannot be sent again"
        )
    allowed = " or ".join(sorted(str(s) for s in REQUEUE_FROM))
    return (
        f"message {message.id} (msg_key {message.msg_key}) is {message.status}: "
        f"only {allowed} messages can be retried"
    )


@messages_cli.command("counts")
def messages_counts(
    ctx: typer.Context,
    app_key: AppOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    json_output: common.JsonFlag = False,
) -> None:
    """How many messages are in each status."""
    settings = common.settings_from(ctx)
    from_ms = None if since is None else instant_ms(since, "--since")
    until_ms = None if until is None else instant_ms(until, "--until")
    counts = common.run(
        settings,
        lambda store: store.count_by_status(
            app_key, accepted_from_ms=from_ms, accepted_until_ms=until_ms
        ),
    )
    view = {str(status): counts.get(status, 0) for status in MessageStatus}
    total = sum(view.values())
    if json_output:
        common.out.print_json(data={**view, "total": total})
        return
    table = Table("status", "messages")
    for name, count in view.items():
        table.add_row(name, str(count))
    table.add_row("total", str(total))
    common.out.print(table)


@messages_cli.command("purge")
def messages_purge(
    ctx: typer.Context,
    app_key: Annotated[str | None, typer.Option("--app", help="Only this app's messages.")] = None,
    msg_key: Annotated[
        str | None, typer.Option("--msg-key", help="Only this message (with --app).")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(help="Only messages that ended longer ago than this: 90d, 12h, 30m, 2w."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; delete nothing.")
    ] = False,
    batch: Annotated[
        int | None,
        typer.Option(
            min=1, max=100_000, help="Messages per transaction [default: retention_batch]."
        ),
    ] = None,
    json_output: common.JsonFlag = False,
) -> None:
    """Delete ended messages (delivered, failed, expired, rejected) with their timelines.

    A message still in flight is never deleted: named by --msg-key it is refused,
    otherwise it is kept and counted.  Each batch is one transaction and one
    audit record.
    """
    from iwork_mc.retention import EndedSelection, RetentionError, parse_age_ms

    settings = common.settings_from(ctx)
    now = common.now_ms()
    try:
        ended_before = None if older_than is None else now - parse_age_ms(older_than)
        selection = EndedSelection(app_key=app_key, msg_key=msg_key, ended_before_ms=ended_before)
    except RetentionError as exc:
        raise common.fail(str(exc), 2) from None
    size = batch or settings.retention_batch
    actor = common.operator()

    async def work(store: Store) -> dict[str, Any]:
        await common.require_app(store, app_key)
        ended, in_flight = await store.count_ended(selection)
        if msg_key is not None:
            assert app_key is not None  # EndedSelection refuses a msg_key without its app
            found = await store.get_message(app_key, msg_key)
            if found is None:
                raise common.fail(f"no message with msg_key {msg_key} for app {app_key}")
            if in_flight:
                raise common.fail(
                    f"message {found.id} (msg_key {msg_key}) is still in flight "
                    f"({found.status}): it can be purged once it has ended"
                )
        view = {"ended": ended, "in_flight_kept": in_flight, "deleted": 0, "dry_run": dry_run}
        if dry_run or not ended:
            return view
        record = audit.messages_purged(actor, now, selection=selection.as_params())
        progress = Progress(
            TextColumn("purging"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=common.err, disable=json_output,
        )  # fmt: skip
        with progress:
            task = progress.add_task("purge", total=ended)
            # Bounded: the batches the count needs, and one more for what ended meanwhile.
            for _ in range(ended // size + 2):
                done = await store.delete_ended(selection, limit=size, audit=record)
                view["deleted"] += done
                progress.update(task, advance=done)
                if done < size:
                    break
        return view

    view = common.run(settings, work)
    if json_output:
        common.out.print_json(data=view)
        return
    kept = view["in_flight_kept"]
    kept_text = f"; {kept} matching message(s) still in flight kept" if kept else ""
    if dry_run:
        common.out.print(
            f"would purge {view['ended']} ended message(s){kept_text} (dry run: nothing deleted)",
            highlight=False,
        )
    else:
        common.out.print(f"purged {view['deleted']} message(s){kept_text}", highlight=False)
