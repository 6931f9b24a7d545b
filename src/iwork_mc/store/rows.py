"""Domain objects ↔ database rows, in one place for both SQL backends.

Rows are mappings from column name to value (``dict_row`` in psycopg, a dict
row factory in sqlite3).  Both dialects' queries return the same column names
and plain types (``detail`` as JSON text, ``enabled`` as something truthy),
so nothing here depends on the backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iwork_mc.apps import App
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import (
    TRANSITIONS,
    Message,
    MessageStatus,
    NewMessage,
    TimelineEntry,
)
from iwork_mc.segments import FINAL_SEGMENT_STATES, Segment, SegmentState, aggregate

__all__ = [
    "Conclusion",
    "KeptReceipt",
    "Row",
    "accept_params",
    "app_from_row",
    "app_params",
    "conclusion",
    "detail_json",
    "duplicate_receipt_detail",
    "kept_receipt_from_row",
    "message_from_row",
    "receipt_detail",
    "recorded_state",
    "segment_from_row",
    "segment_key",
    "sources_of",
    "timeline_entry_from_row",
    "transition_params",
    "unmatched_receipt_params",
]

Row = Mapping[str, Any]


def app_from_row(row: Row) -> App:
    return App(
        app_key=row["app_key"],
        name=row["name"],
        secret=row["secret"],
        enabled=bool(row["enabled"]),
        created_at_ms=row["created_at_ms"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at_ms=row["previous_secret_expires_at_ms"],
    )


def app_params(app: App) -> dict[str, Any]:
    return {
        "app_key": app.app_key,
        "name": app.name,
        "secret": app.secret,
        "enabled": app.enabled,
        "created_at_ms": app.created_at_ms,
        "previous_secret": app.previous_secret,
        "previous_secret_expires_at_ms": app.previous_secret_expires_at_ms,
    }


def message_from_row(row: Row) -> Message:
    """The one place a ``messages`` row becomes a :class:`Message`."""
    return Message(
        id=row["id"],
        app_key=row["app_key"],
        event=MobileReceiverMessageEvent(
            msg_key=row["msg_key"],
            event_time_millis=row["event_time_millis"],
            source=row["source"],
            action=row["action"],
            mobile_receiver=row["mobile_receiver"],
            event_type=row["event_type"],
            json_data=row["json_data"],
            sender=row["sender"],
            resource_id=row["resource_id"],
            resource_url=row["resource_url"],
        ),
        fingerprint=row["fingerprint"],
        status=MessageStatus(row["status"]),
        request_id=row["request_id"],
        accepted_at_ms=row["accepted_at_ms"],
        updated_at_ms=row["updated_at_ms"],
        attempts=row["attempts"],
        channel=row["channel"],
        channel_ref=row["channel_ref"],
        last_error=row["last_error"],
    )


def accept_params(message: NewMessage) -> dict[str, Any]:
    """Parameters of the accept queries: the message, its first timeline entry."""
    event = message.event
    return {
        "app_key": message.app_key,
        "msg_key": event.msg_key,
        "fingerprint": message.fingerprint,
        "request_id": message.request_id,
        "status": MessageStatus.QUEUED.value,
        "now_ms": message.accepted_at_ms,
        "event_time_millis": event.event_time_millis,
        "source": event.source,
        "action": event.action,
        "mobile_receiver": event.mobile_receiver,
        "event_type": event.event_type,
        "json_data": event.json_data,
        "sender": event.sender,
        "resource_id": event.resource_id,
        "resource_url": event.resource_url,
        "kind": "accepted",
        "detail": detail_json({"request_id": message.request_id}),
    }


def timeline_entry_from_row(row: Row) -> TimelineEntry:
    return TimelineEntry(
        at_ms=row["at_ms"],
        kind=row["kind"],
        status=MessageStatus(row["status"]),
        detail=json.loads(row["detail"]),
    )


def detail_json(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(detail or {}), ensure_ascii=False, separators=(",", ":"))


def sources_of(target: MessageStatus) -> list[str]:
    """The statuses from which :data:`TRANSITIONS` allows a move to ``target``."""
    return sorted(source.value for source, targets in TRANSITIONS.items() if target in targets)


def transition_params(
    message_id: int,
    *,
    to: MessageStatus,
    now_ms: int,
    kind: str,
    detail: Mapping[str, Any] | None = None,
    worker_id: str | None = None,
    due_at_ms: int | None = None,
    channel: str | None = None,
    channel_ref: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """Parameters of the transition queries; ``sources`` is a list (SQLite wants it as JSON)."""
    return {
        "message_id": message_id,
        "status": to.value,
        "sources": sources_of(to),
        "now_ms": now_ms,
        "due_at_ms": now_ms if due_at_ms is None else due_at_ms,
        "worker_id": worker_id,
        "channel": channel,
        "channel_ref": channel_ref,
        "error": error,
        "kind": kind,
        "detail": detail_json(detail),
    }


# -- segments and receipts ---------------------------------------------------


def segment_from_row(row: Row) -> Segment:
    return Segment(
        message_id=row["message_id"],
        attempt=row["attempt"],
        part=row["part"],
        total=row["total"],
        channel=row["channel"],
        carrier_id=row["carrier_id"],
        state=SegmentState(row["state"]),
        error=row["error"],
        updated_at_ms=row["updated_at_ms"],
    )


def segment_key(segment: Segment) -> dict[str, Any]:
    """The primary key of a segment's row, as query parameters."""
    return {"message_id": segment.message_id, "attempt": segment.attempt, "part": segment.part}


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptReceipt:
    """A receipt kept in ``unmatched_receipts`` until its segment is named."""

    state: SegmentState
    error: str | None
    received_at_ms: int
    detail: dict[str, Any] = field(default_factory=dict)


def kept_receipt_from_row(row: Row) -> KeptReceipt:
    return KeptReceipt(
        state=SegmentState(row["state"]),
        error=row["error"],
        received_at_ms=row["received_at_ms"],
        detail=json.loads(row["detail"]),
    )


def unmatched_receipt_params(
    *,
    channel: str,
    carrier_id: str,
    state: SegmentState,
    error: str | None,
    now_ms: int,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "channel": channel,
        "carrier_id": carrier_id,
        "state": state.value,
        "error": error,
        "now_ms": now_ms,
        "detail": detail_json(detail),
    }


def recorded_state(state: SegmentState) -> SegmentState:
    """What a receipt's state is recorded as: a final state as is, any other as ``enroute``."""
    return state if state in FINAL_SEGMENT_STATES else SegmentState.ENROUTE


def receipt_detail(
    segment: Segment,
    *,
    state: SegmentState,
    error: str | None,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The detail of a ``receipt`` timeline entry; the receipt's own keys cannot mask ours."""
    return {
        **dict(detail or {}),
        "part": segment.part,
        "total": segment.total,
        "state": recorded_state(state).value,
        "error": error,
        "carrier_id": segment.carrier_id,
    }


def duplicate_receipt_detail(
    segment: Segment, *, state: SegmentState, detail: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The detail of a ``duplicate_receipt`` timeline entry (``state`` is what the receipt said)."""
    return {
        **dict(detail or {}),
        "part": segment.part,
        "state": recorded_state(state).value,
        "carrier_id": segment.carrier_id,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class Conclusion:
    """The final status an attempt's segments add up to, and what to record with it."""

    status: MessageStatus
    #: The first segment that made the message fail or expire: its error, else its state.
    error: str | None
    detail: dict[str, Any]


def conclusion(latest: Sequence[Segment]) -> Conclusion | None:
    """What :func:`~iwork_mc.segments.aggregate` makes of one attempt's segments, if final."""
    status = aggregate(segment.state for segment in latest)
    if status is None:
        return None
    detail: dict[str, Any] = {
        "attempt": latest[0].attempt,
        "states": [segment.state.value for segment in latest],
    }
    if status == MessageStatus.DELIVERED:
        return Conclusion(status=status, error=None, detail=detail)
    # The first segment that alone adds up to the message's status is the one to blame.
    culprit = next(segment for segment in latest if aggregate([segment.state]) == status)
    error = culprit.error or culprit.state.value
    return Conclusion(
        status=status, error=error, detail={**detail, "part": culprit.part, "error": error}
    )
