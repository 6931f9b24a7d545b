"""Messages and the one delivery state machine every channel shares (pure).

Rule 1: every allowed status change is in :data:`TRANSITIONS`; nothing else
decides whether a change is legal.  Rule 2: a final status is never left, so a
late, duplicate or out-of-order receipt can never downgrade a message.

::

    queued ──▶ sending ──▶ submitted ──▶ delivered
                 │  └───────────────────────▲ (confirmed at once)
      │  ▲         │ │ ↺ (claimed again after its lease expired)
      │  └─────────┘ │ (retry scheduled)        submitted ──▶ failed / expired
      ▼              ▼
    expired /      failed / expired /
    rejected       rejected (by a policy: an opt-out since acceptance)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from iwork_mc.events import MobileReceiverMessageEvent

__all__ = [
    "FINAL_STATUSES",
    "MAX_ID",
    "REQUEUE_FROM",
    "TRANSITIONS",
    "AcceptOutcome",
    "AcceptResult",
    "Activity",
    "InvalidTransition",
    "Message",
    "MessageQuery",
    "MessageStatus",
    "NewMessage",
    "Rejection",
    "StatusEvent",
    "TimelineEntry",
    "check_transition",
    "parse_instant",
]

#: The largest message id: both stores keep ids as signed 64-bit integers.
MAX_ID = 2**63 - 1


class MessageStatus(StrEnum):
    QUEUED = "queued"  #: Accepted and durable, waiting for a worker (or for its retry time)
    SENDING = "sending"  #: Claimed by a worker that holds a lease on it
    SUBMITTED = "submitted"  #: Accepted by the channel, waiting for a delivery receipt
    DELIVERED = "delivered"  #: The channel confirmed delivery to the handset
    FAILED = "failed"  #: Permanent failure, or retries exhausted; the reason is kept
    EXPIRED = "expired"  #: Not delivered within its validity period
    REJECTED = "rejected"  #: Declined by a receiver policy after acceptance


FINAL_STATUSES = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.EXPIRED, MessageStatus.REJECTED}
)

TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.QUEUED: frozenset(
        {MessageStatus.SENDING, MessageStatus.EXPIRED, MessageStatus.REJECTED}
    ),
    MessageStatus.SENDING: frozenset(
        {
            # A lease that expired is claimed again: sending → sending.
            MessageStatus.SENDING,
            MessageStatus.SUBMITTED,
            # A channel that confirms delivery at once (the sandbox): one transaction,
            # so no crash can leave the message "submitted" with nothing to come.
            MessageStatus.DELIVERED,
            MessageStatus.QUEUED,
            MessageStatus.FAILED,
            MessageStatus.EXPIRED,
            # The receiver opted out after the message was accepted.
            MessageStatus.REJECTED,
        }
    ),
    MessageStatus.SUBMITTED: frozenset(
        {MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.EXPIRED}
    ),
    MessageStatus.DELIVERED: frozenset(),
    MessageStatus.FAILED: frozenset(),
    MessageStatus.EXPIRED: frozenset(),
    MessageStatus.REJECTED: frozenset(),
}


#: Final statuses an operator may send again (``iwork-mc messages retry``, the REST
#: call).  This is the one way out of a final status, and never an automatic one:
#: receipts and workers go only by :data:`TRANSITIONS`.
REQUEUE_FROM = frozenset({MessageStatus.FAILED, MessageStatus.EXPIRED})


class InvalidTransition(ValueError):
    """A status change outside :data:`TRANSITIONS`."""


def check_transition(current: MessageStatus, target: MessageStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``current → target`` is in the table."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"{current} → {target} is not allowed")


class AcceptOutcome(StrEnum):
    ACCEPTED = "accepted"  #: A new message was stored
    DUPLICATE = "duplicate"  #: Same msg_key and same event: nothing new stored
    CONFLICT = "conflict"  #: Same msg_key, different event: nothing stored
    REJECTED = "rejected"  #: A receiver policy declined it: nothing stored


@dataclass(frozen=True, kw_only=True, slots=True)
class Rejection:
    """Why a valid request is declined: the business ``error_code`` and a sentence."""

    code: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceptResult:
    outcome: AcceptOutcome
    #: The stored message's id; 0 when nothing was stored (``REJECTED``).
    message_id: int
    rejection: Rejection | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMessage:
    """What the gateway asks the store to keep, in one transaction with its outbox row."""

    app_key: str
    event: MobileReceiverMessageEvent
    fingerprint: str
    request_id: str
    accepted_at_ms: int
    #: What the receiver will read, rendered at accept time (see templates.py).
    text: str = ""
    #: The template that rendered ``text``; ``""`` for the configured default.
    template: str = ""
    #: ``gsm7`` or ``ucs2``, and how many SMS segments ``text`` costs.
    encoding: str = "gsm7"
    segments: int = 1
    urgent: bool = False
    #: When the first attempt is due (later than ``accepted_at_ms`` when deferred).
    due_at_ms: int | None = None
    #: After this instant the message is expired instead of sent.
    expires_at_ms: int | None = None
    #: Timeline entries written after ``accepted`` in the same transaction
    #: (policy decisions: ``("deferred", {...})``), as ``(kind, detail)``.
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: The W3C traceparent of the accepting call's span (tracing.py); ``""``: none.
    trace_parent: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """A stored message as the worker and the status queries see it."""

    id: int
    app_key: str
    event: MobileReceiverMessageEvent
    fingerprint: str
    status: MessageStatus
    request_id: str
    accepted_at_ms: int
    updated_at_ms: int
    attempts: int
    channel: str | None = None
    channel_ref: str | None = None
    last_error: str | None = None
    text: str = ""
    template: str = ""
    encoding: str = "gsm7"
    segments: int = 1
    urgent: bool = False
    expires_at_ms: int | None = None
    #: Index in the route's channel list now in use (0: the first choice).
    route_step: int = 0
    #: Attempts on the current route step (retries are counted per channel).
    step_attempts: int = 0
    #: Set by a claim: the receiver was on an opt-out list (this app's or every
    #: app's) at that moment, so the worker sends nothing.
    receiver_opted_out: bool = False
    #: The W3C traceparent stored at accept time; ``""``: not traced.
    trace_parent: str = ""
    #: When retention redacted its personal data (see retention.py); ``None``: not redacted.
    redacted_at_ms: int | None = None

    @property
    def msg_key(self) -> str:
        return self.event.msg_key


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    """One line of a message's history: a status change, an attempt, a receipt."""

    at_ms: int
    kind: str
    status: MessageStatus
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageQuery:
    """Filters of a message search; ``None`` means "any".  Newest first, by id."""

    app_key: str | None = None
    statuses: frozenset[MessageStatus] | None = None
    receiver: str | None = None
    #: Exact matches (the console searches every app's messages by msg_key or channel).
    msg_key: str | None = None
    channel: str | None = None
    accepted_from_ms: int | None = None
    accepted_until_ms: int | None = None
    #: Only messages with an id below this (the previous page's last id).
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, kw_only=True, slots=True)
class Activity:
    """Messages accepted and delivered in one time bucket starting at ``start_ms``."""

    start_ms: int
    accepted: int
    delivered: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusEvent:
    """One status change of a message, queued for the app's callback URL.

    ``id`` is unique and increasing: receivers use it to drop repeats.
    """

    id: int
    message_id: int
    app_key: str
    msg_key: str
    status: MessageStatus
    at_ms: int
    url: str
    attempts: int
    #: The timeline entry's detail at the change (error, channel, ref...).
    detail: dict[str, Any] = field(default_factory=dict)


def parse_instant(text: str, *, naive_zone: tzinfo | None) -> int:
    """An instant written as epoch milliseconds or ISO 8601, as epoch milliseconds.

    A time without an offset is in ``naive_zone`` (``None``: this machine's zone).
    Raises :class:`ValueError` for anything else.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 16:
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone() if naive_zone is None else moment.replace(tzinfo=naive_zone)
    return int(moment.timestamp() * 1000)
