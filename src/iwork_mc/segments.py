"""Segments of a message on a carrier, their receipts, and the message status they add up to (pure).

A long SMS travels as several segments, each with its own carrier id and its
own delivery receipt.  Rule 1: a segment's final state is never replaced (a late
``enroute`` or a duplicate ``delivered`` changes nothing).  Rule 2: the message
is as good as its worst part: one undeliverable part fails the message, one
expired (and none failed) expires it, and it is delivered only when every part
is.  Rule 3: a part resent because it was in doubt has several copies (one
segment per attempt); a delivered copy makes the part delivered, otherwise its
latest copy decides (:func:`deciding_copies`).  Rule 4: only the parts no copy of
which the carrier took are sent again (:func:`plan_parts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from iwork_mc.messages import MessageStatus

__all__ = [
    "FINAL_SEGMENT_STATES",
    "RECEIPT_CLOCK_SKEW_MS",
    "AwaitingReceipt",
    "PartsPlan",
    "ReceiptOutcome",
    "Segment",
    "SegmentState",
    "aggregate",
    "deciding_copies",
    "kept_receipt_fits",
    "plan_parts",
    "receipt_names_receiver",
]


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


def deciding_copies(segments: Iterable[Segment]) -> list[Segment]:
    """The copy that decides each part of the message, by part.

    Only the copies made like the latest attempt's (same channel, same number
    of parts) count: an attempt on another channel is another story.  Of a
    part's copies, a delivered one decides (the handset has it, whatever became
    of the others); otherwise the latest.  A part with no copy is missing from
    the list, so callers compare its length with ``total``.
    """
    segments = list(segments)
    if not segments:
        return []
    latest = max(segments, key=lambda segment: segment.attempt)
    deciding: dict[int, Segment] = {}
    for segment in sorted(segments, key=lambda segment: segment.attempt):
        if segment.channel != latest.channel or segment.total != latest.total:
            continue
        current = deciding.get(segment.part)
        if current is None or current.state is not SegmentState.DELIVERED:
            deciding[segment.part] = segment
    return [deciding[part] for part in sorted(deciding)]


@dataclass(frozen=True, kw_only=True, slots=True)
class PartsPlan:
    """What an attempt must send, given the copies earlier attempts left."""

    #: Parts no copy of which the carrier took: send them (all parts on a first attempt).
    to_send: list[int]
    #: Of those, the parts with a copy in doubt (sent, never answered): resending may duplicate.
    in_doubt: list[int]
    #: The carrier's id of each part it took (its latest copy's).
    carrier_ids: dict[int, str]


def plan_parts(earlier: Iterable[Segment], *, channel: str, total: int) -> PartsPlan:
    """Which of ``total`` parts to send on ``channel`` after the ``earlier`` copies.

    Copies on another channel, or of a text cut into another number of parts,
    do not count.  A refused copy was never taken: its part goes again, not in
    doubt.  A pending copy is in doubt: the carrier may have it.
    """
    taken: dict[int, str] = {}
    pending: set[int] = set()
    for segment in sorted(earlier, key=lambda segment: segment.attempt):
        if segment.channel != channel or segment.total != total:
            continue
        if segment.carrier_id is not None:
            taken[segment.part] = segment.carrier_id
        elif segment.state is SegmentState.PENDING:
            pending.add(segment.part)
    to_send = [part for part in range(1, total + 1) if part not in taken]
    return PartsPlan(
        to_send=to_send,
        in_doubt=[part for part in to_send if part in pending],
        carrier_ids=taken,
    )


#: How much earlier than its segment a kept receipt may have arrived and still be
#: that segment's: the receiving and the submitting worker may run on hosts whose
#: clocks differ a little.
RECEIPT_CLOCK_SKEW_MS = 2_000


def receipt_names_receiver(receipt_address: str, receiver: str) -> bool:
    """Whether a receipt's address (the handset, as the SMSC writes it) can be ``receiver``.

    ``receiver`` is E.164 (``+8613900000000``); SMSCs write the address
    international (``8613900000000``) or national (``13900000000``).  A receipt
    with no address (or not a number) cannot be told apart, so it may be anyone's.
    """
    digits = receipt_address.lstrip("+").lstrip("0")
    if not digits.isdigit():
        return True
    return receiver.lstrip("+").endswith(digits)


def kept_receipt_fits(
    *, received_at_ms: int, address: str, pending_since_ms: int, receiver: str
) -> bool:
    """Whether a receipt kept as unmatched can be the receipt of a segment just named.

    A receipt kept before the segment's submit_sm was even sent belongs to
    another message that had the same carrier id (an SMSC that restarted
    reuses its ids), and so does one about another handset.
    """
    if received_at_ms < pending_since_ms - RECEIPT_CLOCK_SKEW_MS:
        return False
    return receipt_names_receiver(address, receiver)


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


@dataclass(frozen=True, kw_only=True, slots=True)
class AwaitingReceipt:
    """A submitted segment whose receipt has not come yet: what a receipt poller asks about."""

    message_id: int
    attempt: int
    carrier_id: str
    #: The message's receiver (E.164): some carriers look receipts up by number and day.
    receiver: str
    #: When the carrier took it (or last reported it en route).
    updated_at_ms: int

    @property
    def cursor(self) -> tuple[int, int, int]:
        """Where the next page of :meth:`~iwork_mc.store.base.Store.awaiting_receipts` starts."""
        return (self.updated_at_ms, self.message_id, self.attempt)
