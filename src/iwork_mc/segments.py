"""Segments of a message on a carrier, their receipts, and the message status they add up to (pure).

A long SMS travels as several segments, each with its own carrier id and its
own delivery receipt.  Rule 1: a segment's final state is never replaced (a late
``enroute`` or a duplicate ``delivered`` changes nothing).  Rule 2: the message
is as good as its worst segment: one undeliverable segment fails the message,
one expired (and none failed) expires it, and it is delivered only when every
segment is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from iwork_mc.messages import MessageStatus

__all__ = ["FINAL_SEGMENT_STATES", "ReceiptOutcome", "Segment", "SegmentState", "aggregate"]


class SegmentState(StrEnum):
    PENDING = "pending"  #: Being submitted; no carrier id yet (in doubt if the session drops)
    REFUSED = "refused"  #: The carrier answered with an error: never accepted, not in doubt
    SUBMITTED = "submitted"  #: The carrier answered with its id; waiting for a receipt
    ENROUTE = "enroute"  #: An intermediate receipt (enroute / accepted) arrived
    DELIVERED = "delivered"
    EXPIRED = "expired"
    UNDELIVERABLE = "undeliverable"
    REJECTED = "rejected"
    DELETED = "deleted"
    UNKNOWN = "unknown"


FINAL_SEGMENT_STATES = frozenset(
    {
        SegmentState.DELIVERED,
        SegmentState.EXPIRED,
        SegmentState.UNDELIVERABLE,
        SegmentState.REJECTED,
        SegmentState.DELETED,
        SegmentState.UNKNOWN,
    }
)

_FAILED = frozenset(
    {SegmentState.UNDELIVERABLE, SegmentState.REJECTED, SegmentState.DELETED, SegmentState.UNKNOWN}
)


def aggregate(states: Iterable[SegmentState]) -> MessageStatus | None:
    """The message status its segments add up to, or ``None`` while any is not final."""
    states = list(states)
    if not states or any(state not in FINAL_SEGMENT_STATES for state in states):
        return None
    if any(state in _FAILED for state in states):
        return MessageStatus.FAILED
    if SegmentState.EXPIRED in states:
        return MessageStatus.EXPIRED
    return MessageStatus.DELIVERED


@dataclass(frozen=True, kw_only=True, slots=True)
class Segment:
    """One part of one attempt to send a message through one channel."""

    message_id: int
    attempt: int
    part: int
    total: int
    channel: str
    carrier_id: str | None
    state: SegmentState
    error: str | None
    updated_at_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptOutcome:
    """What recording one receipt did."""

    #: The receipt named a known segment (else it was kept as unmatched, for later).
    matched: bool
    #: The segment already had a final state: the receipt changed nothing.
    duplicate: bool = False
    message_id: int | None = None
    #: The message's new final status, when this receipt completed it.
    message_status: MessageStatus | None = None
    #: When the segment last changed before this receipt (its submission, or an
    #: interim receipt): the receipt's latency is measured from it (for metrics only,
    #: so not part of the outcome's equality).
    since_ms: int | None = field(default=None, compare=False)
