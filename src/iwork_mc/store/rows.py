"""Domain objects ↔ database rows, in one place for both SQL backends.

Rows are mappings from column name to value (``dict_row`` in psycopg, a dict
row factory in sqlite3).  Both dialects' queries return the same column names
and plain types (``detail`` as JSON text, ``enabled`` as something truthy),
so nothing here depends on the backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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

__all__ = [
    "Row",
    "accept_params",
    "app_from_row",
    "app_params",
    "detail_json",
    "message_from_row",
    "sources_of",
    "timeline_entry_from_row",
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
