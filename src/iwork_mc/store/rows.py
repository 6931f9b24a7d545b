"""Domain objects ↔ database rows, in one place for both SQL backends.

Rows are mappings from column name to value (``dict_row`` in psycopg, a dict
row factory in sqlite3).  Both dialects' queries return the same column names
and plain types (``detail`` as JSON text, ``enabled`` as something truthy),
so nothing here depends on the backend.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iwork_mc import retention
from iwork_mc.apps import App
from iwork_mc.audit import AuditAction, AuditQuery, AuditRecord
from iwork_mc.breaker import ChannelOpening
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import (
    REQUEUE_FROM,
    TRANSITIONS,
    AcceptOutcome,
    AcceptResult,
    Activity,
    Message,
    MessageQuery,
    MessageStatus,
    NewMessage,
    Rejection,
    StatusEvent,
    TimelineEntry,
)
from iwork_mc.operators import LockOut, Operator
from iwork_mc.policies import AcceptChecks, CountQuery, OptOut, ReceiverFacts
from iwork_mc.ratelimits import Bucket, Grant, Rate, take
from iwork_mc.segments import (
    FINAL_SEGMENT_STATES,
    Segment,
    SegmentState,
    aggregate,
    deciding_copies,
    kept_receipt_fits,
    receipt_names_receiver,
)
from iwork_mc.store.base import QueueSnapshot, StoreError
from iwork_mc.templates import Template

__all__ = [
    "Conclusion",
    "KeptReceipt",
    "Row",
    "accept_params",
    "app_from_row",
    "bucket_params",
    "callback_detail",
    "conclusion",
    "count_params",
    "count_query_params",
    "detail_json",
    "duplicate_receipt_detail",
    "emits_status_event",
    "find_params",
    "fitting_receipts",
    "kept_receipt_from_row",
    "lease",
    "message_from_row",
    "not_inserted",
    "opt_out_from_row",
    "params_of",
    "parts_param",
    "queue_snapshot",
    "receipt_detail",
    "receipt_fits_segment",
    "receiver_facts",
    "receiver_facts_params",
    "recorded_state",
    "rejected",
    "repeat",
    "requeue_detail",
    "requeue_params",
    "seed_bucket_params",
    "segment_from_row",
    "segment_key",
    "sources_of",
    "status_event_from_row",
    "template_from_row",
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
        callback_url=row["callback_url"],
        rate_limit=row["rate_limit"],
        rate_burst=row["rate_burst"],
    )


def seed_bucket_params(app_key: str, rate: Rate, now_ms: int) -> dict[str, Any]:
    """A bucket seen for the first time is full."""
    return {"app_key": app_key, "tokens": float(rate.burst), "now_ms": now_ms}


def lease(row: Row, want: int, rate: Rate, now_ms: int) -> Grant:
    """Take tokens from the locked ``rate_buckets`` row (the rule is :func:`ratelimits.take`)."""
    return take(Bucket(float(row["tokens"]), int(row["updated_at_ms"])), want, rate, now_ms)


def bucket_params(app_key: str, grant: Grant) -> dict[str, Any]:
    return {
        "app_key": app_key,
        "tokens": grant.bucket.tokens,
        "updated_at_ms": grant.bucket.updated_at_ms,
    }


def params_of(
    value: App | Template | OptOut | Operator | ChannelOpening,
) -> dict[str, Any]:
    """Parameters of the insert/update queries of an app, template, opt-out, operator or opening.

    Each is a flat dataclass whose fields are its table's columns, by name.
    """
    return dataclasses.asdict(value)


def opening_from_row(row: Row) -> ChannelOpening:
    return ChannelOpening(
        channel=row["channel"],
        opened_at_ms=row["opened_at_ms"],
        open_until_ms=row["open_until_ms"],
        opened_by=row["opened_by"],
    )


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
        text=row["text"],
        template=row["template"],
        encoding=row["encoding"],
        segments=row["segments"],
        urgent=bool(row["urgent"]),
        expires_at_ms=row["expires_at_ms"],
        route_step=row["route_step"],
        step_attempts=row["step_attempts"],
        receiver_opted_out=bool(row.get("receiver_opted_out", False)),
        trace_parent=row["trace_parent"],
        redacted_at_ms=row.get("redacted_at_ms"),
    )


def accept_params(message: NewMessage, checks: AcceptChecks | None = None) -> dict[str, Any]:
    """Parameters of the accept queries: the message, its outbox row, its first entries.

    ``entries`` lists the timeline entries after the message is stored
    (``accepted``, then ``message.notes``) as ``{"kind", "detail"}`` objects;
    ``detail`` is the ``accepted`` entry's (and the status event's) detail, as JSON.
    """
    event = message.event
    accepted = {"request_id": message.request_id}
    entries = [{"kind": "accepted", "detail": accepted}] + [
        {"kind": kind, "detail": dict(detail)} for kind, detail in message.notes
    ]
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
        "text": message.text,
        "template": message.template,
        "encoding": message.encoding,
        "segments": message.segments,
        "urgent": message.urgent,
        "expires_at_ms": message.expires_at_ms,
        "text_digest": "" if checks is None else checks.text_digest,
        "trace_parent": message.trace_parent,
        # With checks, the insert itself refuses an opted-out receiver (see queries.sql).
        "check_opt_out": checks is not None,
        "due_at_ms": message.accepted_at_ms if message.due_at_ms is None else message.due_at_ms,
        "detail": detail_json(accepted),
        "entries": json.dumps(entries, ensure_ascii=False, separators=(",", ":")),
    }


def repeat(message: NewMessage, existing: Row) -> AcceptResult:
    """DUPLICATE or CONFLICT: the answer to a msg_key already stored.

    ``existing`` is the stored message's ``id`` and ``fingerprint``.
    """
    same = existing["fingerprint"] == message.fingerprint
    outcome = AcceptOutcome.DUPLICATE if same else AcceptOutcome.CONFLICT
    return AcceptResult(outcome=outcome, message_id=existing["id"])


def rejected(rejection: Rejection) -> AcceptResult:
    return AcceptResult(outcome=AcceptOutcome.REJECTED, message_id=0, rejection=rejection)


def not_inserted(
    message: NewMessage, checks: AcceptChecks | None, existing: Row | None
) -> AcceptResult:
    """The answer when the accept's insert stored nothing.

    ``existing`` is the msg_key's row, looked up after the insert: a repeat.  Without
    one, the insert's own opt-out guard (``check_opt_out``) refused the receiver.
    """
    if existing is not None:
        return repeat(message, existing)
    if checks is None:
        raise StoreError("the conflicting message vanished")
    opted_out = ReceiverFacts(opted_out=True, counts=(), duplicate_text=False)
    return AcceptResult(
        outcome=AcceptOutcome.REJECTED, message_id=0, rejection=checks.decide(opted_out)
    )


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
    route_step: int | None = None,
    attempt_not_made: bool = False,
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
        "route_step": route_step,
        "attempt_not_made": int(attempt_not_made),
        "kind": kind,
        "detail": detail_json(detail),
    }


def emits_status_event(status: MessageStatus | str) -> bool:
    """Whether a change to ``status`` is reported to the app's callback URL.

    Every status but ``sending``: claims (and reclaims) are too chatty to report.
    """
    return status != MessageStatus.SENDING


def count_params(
    app_key: str | None, accepted_from_ms: int | None, accepted_until_ms: int | None
) -> dict[str, Any]:
    """Parameters of the count_by_status queries (``None``: no such filter)."""
    return {
        "app_key": app_key,
        "accepted_from_ms": accepted_from_ms,
        "accepted_until_ms": accepted_until_ms,
    }


def find_params(query: MessageQuery) -> dict[str, Any]:
    """Parameters of the find_messages queries; ``statuses`` is a sorted list or ``None``."""
    return {
        "app_key": query.app_key,
        "statuses": None
        if query.statuses is None
        else sorted(MessageStatus(status).value for status in query.statuses),
        "receiver": query.receiver,
        "msg_key": query.msg_key,
        "channel": query.channel,
        "accepted_from_ms": query.accepted_from_ms,
        "accepted_until_ms": query.accepted_until_ms,
        "before_id": query.before_id,
        "limit": query.limit,
    }


# -- templates, opt-outs, status events ----------------------------------------


def template_from_row(row: Row) -> Template:
    return Template(
        name=row["name"],
        body=row["body"],
        app_key=row["app_key"],
        source=row["source"],
        action=row["action"],
        event_type=row["event_type"],
        urgent=bool(row["urgent"]),
        limits=row["limits"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def operator_from_row(row: Row) -> Operator:
    return Operator(
        name=row["name"],
        password_hash=row["password_hash"],
        created_at_ms=row["created_at_ms"],
        failed_sign_ins=row["failed_sign_ins"],
        locked_until_ms=row["locked_until_ms"],
        last_sign_in_ms=row["last_sign_in_ms"],
    )


def lock_out_params(name: str, now_ms: int, lock_out: LockOut) -> dict[str, Any]:
    """Parameters of the ``sign_in_failed`` query."""
    return {
        "name": name,
        "now_ms": now_ms,
        "max_failures": lock_out.max_failures,
        "lockout_ms": lock_out.duration_ms,
    }


def activity_from_rows(found: Sequence[Row], *, since_ms: int, bucket_ms: int) -> list[Activity]:
    """Rows of the ``activity`` query as one :class:`Activity` per bucket that has any."""
    return [
        Activity(
            start_ms=since_ms + int(row["bucket"]) * bucket_ms,
            accepted=int(row["accepted"]),
            delivered=int(row["delivered"]),
        )
        for row in found
    ]


def opt_out_from_row(row: Row) -> OptOut:
    return OptOut(
        app_key=row["app_key"],
        receiver=row["receiver"],
        reason=row["reason"],
        created_at_ms=row["created_at_ms"],
    )


def status_event_from_row(row: Row) -> StatusEvent:
    return StatusEvent(
        id=row["id"],
        message_id=row["message_id"],
        app_key=row["app_key"],
        msg_key=row["msg_key"],
        status=MessageStatus(row["status"]),
        at_ms=row["at_ms"],
        url=row["url"],
        attempts=row["attempts"],
        detail=json.loads(row["detail"]),
    )


def callback_detail(row: Row, **extra: Any) -> dict[str, Any]:
    """The detail of a ``callback_delivered``/``callback_failed`` note.

    ``row`` is the status event as updated (its ``attempts`` count this attempt).
    """
    return {"event_id": row["id"], "attempt": row["attempts"], **extra}


def requeue_params(message_id: int, *, now_ms: int, expires_at_ms: int) -> dict[str, Any]:
    """Parameters of the requeue queries; ``sources`` is :data:`REQUEUE_FROM` as a list."""
    return {
        "message_id": message_id,
        "now_ms": now_ms,
        "due_at_ms": now_ms,
        "expires_at_ms": expires_at_ms,
        "sources": sorted(status.value for status in REQUEUE_FROM),
        "status": MessageStatus.QUEUED.value,
        "kind": "requeued",
    }


def requeue_detail(by: str, previous: Row) -> dict[str, Any]:
    """The detail of a ``requeued`` entry; ``previous`` is the message row before it."""
    return {
        "by": by,
        "previous_status": previous["status"],
        "previous_error": previous["last_error"],
    }


def receiver_facts_params(message: NewMessage, checks: AcceptChecks) -> dict[str, Any]:
    """Parameters of the receiver_facts query: opt-out and dedupe for the receiver."""
    return {
        "receiver": message.event.mobile_receiver,
        "app_key": message.app_key,
        "text_digest": checks.text_digest,
        "dedupe_since_ms": checks.dedupe_since_ms,
    }


def count_query_params(message: NewMessage, query: CountQuery) -> dict[str, Any]:
    """Parameters of the count_to_receiver query; ``None`` app_key/template mean any."""
    return {
        "receiver": message.event.mobile_receiver,
        "since_ms": query.since_ms,
        "app_key": message.app_key if query.scope == "app" else None,
        "template": message.template if query.scope == "template" else None,
    }


def receiver_facts(facts_row: Row, counts: Sequence[int]) -> ReceiverFacts:
    return ReceiverFacts(
        opted_out=bool(facts_row["opted_out"]),
        counts=tuple(int(count) for count in counts),
        duplicate_text=bool(facts_row["duplicate_text"]),
    )


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

    id: int
    state: SegmentState
    error: str | None
    received_at_ms: int
    #: The handset the receipt names ('' if it names none).
    destination: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def kept_receipt_from_row(row: Row) -> KeptReceipt:
    return KeptReceipt(
        id=row["id"],
        state=SegmentState(row["state"]),
        error=row["error"],
        received_at_ms=row["received_at_ms"],
        destination=row["destination"],
        detail=json.loads(row["detail"]),
    )


def parts_param(total: int, parts: Sequence[int] | None, *, as_json: bool) -> dict[str, Any]:
    """The ``parts`` parameter of add_segments (``None``: all), checked against ``total``.

    SQLite takes the list as a JSON array, PostgreSQL as an array.
    """
    if total < 1:
        raise ValueError(f"a message has at least one segment, not {total}")
    if parts is not None and (not parts or not all(1 <= part <= total for part in parts)):
        raise ValueError(f"parts {list(parts)} are not among 1..{total}")
    if parts is None:
        return {"parts": None}
    return {"parts": json.dumps(list(parts)) if as_json else list(parts)}


def receipt_fits_segment(row: Row, destination: str) -> bool:
    """Whether a receipt about ``destination`` can be for the segment of ``row``.

    ``row`` is a segment_by_carrier row (it carries its message's receiver).
    """
    return receipt_names_receiver(destination, row["mobile_receiver"])


def fitting_receipts(
    kept: Sequence[KeptReceipt], pending: Segment, receiver: str
) -> list[KeptReceipt]:
    """The kept receipts that can belong to ``pending`` (as it was before it was named)."""
    return [
        receipt
        for receipt in kept
        if kept_receipt_fits(
            received_at_ms=receipt.received_at_ms,
            address=receipt.destination,
            pending_since_ms=pending.updated_at_ms,
            receiver=receiver,
        )
    ]


def unmatched_receipt_params(
    *,
    channel: str,
    carrier_id: str,
    state: SegmentState,
    error: str | None,
    now_ms: int,
    detail: Mapping[str, Any] | None,
    destination: str = "",
) -> dict[str, Any]:
    return {
        "channel": channel,
        "carrier_id": carrier_id,
        "destination": destination,
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


def conclusion(segments: Sequence[Segment]) -> Conclusion | None:
    """What :func:`~iwork_mc.segments.aggregate` makes of every part, if final.

    ``segments``: every copy of every part (:func:`~iwork_mc.segments.deciding_copies`
    picks the one that decides each part).
    """
    if not segments:
        return None
    deciding = deciding_copies(segments)
    if len(deciding) < deciding[0].total:
        return None  # a part was never even recorded
    status = aggregate(segment.state for segment in deciding)
    if status is None:
        return None
    latest = max(segment.attempt for segment in segments)
    detail: dict[str, Any] = {
        "attempt": latest,
        "states": [segment.state.value for segment in deciding],
    }
    if any(segment.attempt != latest for segment in deciding):
        detail["copies_from_attempts"] = [segment.attempt for segment in deciding]
    if status == MessageStatus.DELIVERED:
        return Conclusion(status=status, error=None, detail=detail)
    # The first part that alone adds up to the message's status is the one to blame.
    culprit = next(segment for segment in deciding if aggregate([segment.state]) == status)
    error = culprit.error or culprit.state.value
    return Conclusion(
        status=status, error=error, detail={**detail, "part": culprit.part, "error": error}
    )


def queue_snapshot(counts: Sequence[Row], due: Row | None) -> QueueSnapshot:
    """The rows of ``count_by_status_and_channel`` and ``due_queue`` as one snapshot."""
    return QueueSnapshot(
        by_status_channel={(row["status"], row["channel"]): row["n"] for row in counts},
        due=due["n"] if due is not None else 0,
        oldest_due_at_ms=due["oldest_due_at_ms"] if due is not None else None,
    )


# -- retention and the audit trail ---------------------------------------------


def ended_params(
    selection: retention.EndedSelection, *, limit: int | None = None
) -> dict[str, Any]:
    """Parameters of the delete_ended / count_ended queries."""
    return {**selection.as_params(), "final": retention.final_statuses(), "limit": limit}


def redact_candidates_params(*, ended_before_ms: int, limit: int) -> dict[str, Any]:
    return {"final": retention.final_statuses(), "ended_before_ms": ended_before_ms, "limit": limit}


def redact_params(row: Row, *, now_ms: int, by: str) -> dict[str, Any]:
    """Parameters of redact_message (and of its ``redacted`` timeline entry) for one
    candidate row (``id``, ``mobile_receiver``)."""
    return {
        "message_id": row["id"],
        "now_ms": now_ms,
        "receiver": retention.redacted_receiver(row["mobile_receiver"]),
        "json_data": retention.REDACTED_JSON_DATA,
        "kind": "redacted",
        "detail": detail_json(retention.redaction_detail(by)),
    }


def audit_params(record: AuditRecord, **extra_detail: Any) -> dict[str, Any]:
    return {
        "at_ms": record.at_ms,
        "actor": record.actor,
        "action": record.action.value,
        "target": record.target,
        "detail": detail_json({**record.detail, **extra_detail}),
    }


def audit_query_params(query: AuditQuery) -> dict[str, Any]:
    return {
        "since_ms": query.since_ms,
        "actor": query.actor,
        "action": None if query.action is None else query.action.value,
        "before_id": query.before_id,
        "limit": query.limit,
    }


def audit_from_row(row: Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at_ms=row["at_ms"],
        actor=row["actor"],
        action=AuditAction(row["action"]),
        target=row["target"],
        detail=json.loads(row["detail"]),
    )
