"""``/v1/messages``: an app's own messages, their timelines, counts and retries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from iwork_mc import audit
from iwork_mc.gateway.rest_auth import RestError
from iwork_mc.gateway.rest_common import CallerDep, ContextDep, normalise_receiver, parse_instant
from iwork_mc.gateway.rest_models import (
    ErrorOut,
    MessageDetail,
    MessageOut,
    MessagePage,
    Responses,
    StatusCounts,
    TimelineOut,
)
from iwork_mc.messages import MAX_ID, REQUEUE_FROM, Message, MessageQuery, MessageStatus

__all__ = ["MAX_PAGE", "router"]

MAX_PAGE = 500

router = APIRouter(prefix="/v1/messages", tags=["messages"])

_NOT_FOUND: Responses = {
    404: {"model": ErrorOut, "description": "No message of the calling app has it."}
}
_INSTANT = "Epoch milliseconds or ISO 8601 (UTC when no offset is given)."


def _not_found() -> RestError:
    return RestError(404, "message_not_found", "this app has no message with that msg_key")


async def _detail(context: ContextDep, message: Message) -> MessageDetail:
    timeline = await context.store.timeline(message.id)
    return MessageDetail(
        **MessageOut.of(message).model_dump(),
        timeline=[TimelineOut.of(entry) for entry in timeline],
    )


@router.get("", response_model=MessagePage, summary="Find messages")
async def find_messages(
    caller: CallerDep,
    context: ContextDep,
    status: Annotated[
        list[MessageStatus] | None, Query(description="Any of these statuses (repeatable).")
    ] = None,
    receiver: Annotated[str | None, Query(description="A phone number; any spelling.")] = None,
    accepted_from: Annotated[str | None, Query(description=f"Inclusive. {_INSTANT}")] = None,
    accepted_until: Annotated[str | None, Query(description=f"Exclusive. {_INSTANT}")] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="The previous page's `next_before_id`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> MessagePage:
    """The calling app's messages matching every filter, newest first, one page at a time."""
    query = MessageQuery(
        app_key=caller.app_key,
        statuses=frozenset(status) if status else None,
        receiver=(
            normalise_receiver(receiver, context.settings.default_region)
            if receiver is not None
            else None
        ),
        accepted_from_ms=parse_instant(accepted_from, "accepted_from"),
        accepted_until_ms=parse_instant(accepted_until, "accepted_until"),
        before_id=before_id,
        limit=limit + 1,
    )
    found = await context.store.find_messages(query)
    page = found[:limit]
    return MessagePage(
        messages=[MessageOut.of(message) for message in page],
        next_before_id=page[-1].id if len(found) > limit else None,
    )


@router.get("/counts", response_model=StatusCounts, summary="Count messages by status")
async def count_messages(
    caller: CallerDep,
    context: ContextDep,
    accepted_from: Annotated[str | None, Query(description=f"Inclusive. {_INSTANT}")] = None,
    accepted_until: Annotated[str | None, Query(description=f"Exclusive. {_INSTANT}")] = None,
) -> StatusCounts:
    """How many of the calling app's messages are in each status (every status listed)."""
    from_ms = parse_instant(accepted_from, "accepted_from")
    until_ms = parse_instant(accepted_until, "accepted_until")
    counted = await context.store.count_by_status(
        caller.app_key, accepted_from_ms=from_ms, accepted_until_ms=until_ms
    )
    counts = {status: counted.get(status, 0) for status in MessageStatus}
    return StatusCounts(
        counts=counts,
        total=sum(counts.values()),
        accepted_from_ms=from_ms,
        accepted_until_ms=until_ms,
    )


@router.get(
    "/{msg_key:path}",
    response_model=MessageDetail,
    responses=_NOT_FOUND,
    summary="Read a message and its timeline",
)
async def get_message(msg_key: str, caller: CallerDep, context: ContextDep) -> MessageDetail:
    """One message of the calling app, by the msg_key it was sent with."""
    message = await context.store.get_message(caller.app_key, msg_key)
    if message is None:
        raise _not_found()
    return await _detail(context, message)


@router.post(
    "/{msg_key:path}/retry",
    response_model=MessageDetail,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "The message is not failed or expired."},
    },
    summary="Send a failed or expired message again",
)
async def retry_message(msg_key: str, caller: CallerDep, context: ContextDep) -> MessageDetail:
    """Queue a ``failed`` or ``expired`` message again, due now, with a fresh validity."""
    message = await context.store.get_message(caller.app_key, msg_key)
    if message is None:
        raise _not_found()
    expires_at_ms = caller.now_ms + context.settings.message_validity_s * 1000
    change = audit.message_requeued(
        audit.app_actor(caller.app_key), caller.now_ms,
        app_key=caller.app_key, msg_key=msg_key, expires_at_ms=expires_at_ms,
    )  # fmt: skip
    # The store requeues only from REQUEUE_FROM, atomically: no check beforehand.
    requeued = await context.store.requeue(
        message.id,
        now_ms=caller.now_ms,
        expires_at_ms=expires_at_ms,
        by=f"rest:{caller.app_key}",
        audit=change,
    )
    if not requeued:
        if message.redacted_at_ms is not None:
            raise RestError(
                409, "not_requeueable",
                "the message was redacted by retention: its receiver and data are gone",
                status=str(message.status),
            )  # fmt: skip
        raise RestError(
            409,
            "not_requeueable",
            f"a {message.status} message cannot be retried; only "
            f"{', '.join(sorted(REQUEUE_FROM))} ones can",
            status=str(message.status),
        )
    again = await context.store.get_message_by_id(message.id)
    return await _detail(context, again or message)
