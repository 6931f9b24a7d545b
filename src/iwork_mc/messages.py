"""Messages and the one delivery state machine every channel shares (pure).

Rule 1: every allowed status change is in :data:`TRANSITIONS`; nothing else
decides whether a change is legal.  Rule 2: a final status is never left, so a
late, duplicate or out-of-order receipt can never downgrade a message.

::

    queued ──▶ sending ──▶ submitted ──▶ delivered
      │  ▲         │ │ ↺ (claimed again after its lease expired)
      │  └─────────┘ │ (retry scheduled)        submitted ──▶ failed / expired
      ▼              ▼
    expired /      failed / expired
    rejected (by policy)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from iwork_mc.events import MobileReceiverMessageEvent

__all__ = [
    "FINAL_STATUSES",
    "TRANSITIONS",
    "AcceptOutcome",
    "AcceptResult",
    "InvalidTransition",
    "Message",
    "MessageStatus",
    "NewMessage",
    "TimelineEntry",
    "check_transition",
]


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
            MessageStatus.QUEUED,
            MessageStatus.FAILED,
            MessageStatus.EXPIRED,
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


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceptResult:
    outcome: AcceptOutcome
    message_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMessage:
    """What the gateway asks the store to keep, in one transaction with its outbox row."""

    app_key: str
    event: MobileReceiverMessageEvent
    fingerprint: str
    request_id: str
    accepted_at_ms: int


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
