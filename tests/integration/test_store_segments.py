"""Segments and delivery receipts in the Store, on SQLite and on PostgreSQL (one suite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from iwork_mc.apps import App
from iwork_mc.messages import AcceptOutcome, MessageStatus, NewMessage, TimelineEntry
from iwork_mc.segments import ReceiptOutcome, Segment, SegmentState
from iwork_mc.store import MessageNotFound, Store, StoreError, create_store

MessageFactory = Callable[..., NewMessage]

T0 = 1_700_000_001_000  # message_factory's accepted_at_ms
LEASE_MS = 30_000
SMPP = "smpp"
FINAL_KINDS = {"delivered", "failed", "expired"}


async def accepted_id(store: Store, message: NewMessage) -> int:
    result = await store.accept(message)
    assert AcceptOutcome.ACCEPTED == result.outcome
    return result.message_id


async def sending(store: Store, message: NewMessage, *, parts: int, worker: str = "w") -> int:
    """A message claimed by ``worker`` whose ``parts`` segments are recorded, none submitted."""
    message_id = await accepted_id(store, message)
    claimed = await store.claim_due(worker_id=worker, now_ms=T0, lease_ms=LEASE_MS, limit=1)
    assert [message_id] == [found.id for found in claimed]
    await store.add_segments(message_id, attempt=1, channel=SMPP, total=parts, now_ms=T0 + 1)
    return message_id


async def submit_all(store: Store, message_id: int, *, parts: int, attempt: int = 1) -> None:
    """Name every segment of the attempt ``c<message_id>-<attempt>-<part>``."""
    for part in range(1, parts + 1):
        await store.segment_submitted(
            message_id,
            attempt=attempt,
            part=part,
            carrier_id=carrier(message_id, part, attempt),
            now_ms=T0 + 2,
        )


async def record_submitted(store: Store, message_id: int, *, worker: str = "w") -> None:
    """The worker's sending → submitted transition."""
    moved = await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + 3,
        kind="submitted",
        worker_id=worker,
        channel=SMPP,
    )
    assert moved


async def submitted(store: Store, message: NewMessage, *, parts: int) -> int:
    """A message whose ``parts`` segments are all submitted, and that is itself ``submitted``."""
    message_id = await sending(store, message, parts=parts)
    await submit_all(store, message_id, parts=parts)
    await record_submitted(store, message_id)
    return message_id


def carrier(message_id: int, part: int, attempt: int = 1) -> str:
    return f"c{message_id}-{attempt}-{part}"


async def receipt(
    store: Store,
    carrier_id: str,
    state: SegmentState,
    *,
    at: int,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
    channel: str = SMPP,
) -> ReceiptOutcome:
    return await store.apply_receipt(
        channel=channel,
        carrier_id=carrier_id,
        state=state,
        error=error,
        now_ms=at,
        detail=detail,
    )


async def status_of(store: Store, message_id: int) -> MessageStatus:
    message = await store.get_message_by_id(message_id)
    assert message is not None
    return message.status


async def states_of(store: Store, message_id: int) -> list[SegmentState]:
    return [segment.state for segment in await store.segments(message_id)]


async def kinds_after_submitted(store: Store, message_id: int) -> list[tuple[str, MessageStatus]]:
    """The (kind, status) of the timeline entries after the worker's ``submitted`` entry."""
    entries = await store.timeline(message_id)
    kinds = [entry.kind for entry in entries]
    start = kinds.index("submitted") + 1 if "submitted" in kinds else 0
    return [(entry.kind, entry.status) for entry in entries[start:]]


# -- recording segments -------------------------------------------------------------


async def test_add_segments(store: Store, app: App, message_factory: MessageFactory) -> None:
    """add_segments records every part of the attempt, pending, without a carrier id."""
    message_id = await accepted_id(store, message_factory())

    await store.add_segments(message_id, attempt=1, channel=SMPP, total=3, now_ms=T0 + 1)

    expected = [
        Segment(
            message_id=message_id,
            attempt=1,
            part=part,
            total=3,
            channel=SMPP,
            carrier_id=None,
            state=SegmentState.PENDING,
            error=None,
            updated_at_ms=T0 + 1,
        )
        for part in (1, 2, 3)
    ]
    assert expected == await store.segments(message_id)


async def test_add_segments_is_idempotent(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Recording an attempt's segments again changes nothing, even with another total."""
    message_id = await accepted_id(store, message_factory())
    await store.add_segments(message_id, attempt=1, channel=SMPP, total=2, now_ms=T0 + 1)
    before = await store.segments(message_id)

    await store.add_segments(message_id, attempt=1, channel=SMPP, total=2, now_ms=T0 + 5)
    await store.add_segments(message_id, attempt=1, channel=SMPP, total=4, now_ms=T0 + 6)

    assert before == await store.segments(message_id)


async def test_segments_by_attempt_then_part(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """segments() lists every attempt's segments, by attempt then part."""
    message_id = await accepted_id(store, message_factory())
    await store.add_segments(message_id, attempt=2, channel=SMPP, total=2, now_ms=T0 + 2)
    await store.add_segments(message_id, attempt=1, channel="other", total=1, now_ms=T0 + 1)

    found = await store.segments(message_id)

    assert [(1, 1, "other"), (2, 1, SMPP), (2, 2, SMPP)] == [
        (segment.attempt, segment.part, segment.channel) for segment in found
    ]


async def test_add_segments_unknown_message(store: Store) -> None:
    """Segments of a message that does not exist raise MessageNotFound."""
    with pytest.raises(MessageNotFound):
        await store.add_segments(123_456, attempt=1, channel=SMPP, total=1, now_ms=T0)


async def test_add_segments_needs_one_part(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A message of zero segments is refused with ValueError and nothing is stored."""
    message_id = await accepted_id(store, message_factory())

    with pytest.raises(ValueError, match="at least one"):
        await store.add_segments(message_id, attempt=1, channel=SMPP, total=0, now_ms=T0)

    assert [] == await store.segments(message_id)


async def test_segments_of_unknown_message(store: Store) -> None:
    """A message without segments (or without existence) lists none."""
    assert [] == await store.segments(123_456)


# -- naming segments ------------------------------------------------------------------


async def test_segment_submitted(store: Store, app: App, message_factory: MessageFactory) -> None:
    """The carrier id is recorded and the segment is submitted; nothing else changes."""
    message_id = await sending(store, message_factory(), parts=2)
    timeline = await store.timeline(message_id)

    outcome = await store.segment_submitted(
        message_id, attempt=1, part=2, carrier_id="abc", now_ms=T0 + 2
    )

    segments = await store.segments(message_id)
    assert None is outcome
    assert [
        (None, SegmentState.PENDING, T0 + 1),
        ("abc", SegmentState.SUBMITTED, T0 + 2),
    ] == [(s.carrier_id, s.state, s.updated_at_ms) for s in segments]
    assert timeline == await store.timeline(message_id)
    assert MessageStatus.SENDING == await status_of(store, message_id)


async def test_segment_submitted_only_from_pending(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A segment that has its carrier id keeps it: a second call changes nothing."""
    message_id = await sending(store, message_factory(), parts=1)
    await store.segment_submitted(message_id, attempt=1, part=1, carrier_id="a", now_ms=T0 + 2)
    before = await store.segments(message_id)

    again = await store.segment_submitted(
        message_id, attempt=1, part=1, carrier_id="b", now_ms=T0 + 3
    )

    assert None is again
    assert before == await store.segments(message_id)


async def test_segment_submitted_unknown_segment(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Naming a segment that was never recorded raises StoreError."""
    message_id = await sending(store, message_factory(), parts=1)

    with pytest.raises(StoreError, match="no segment"):
        await store.segment_submitted(message_id, attempt=1, part=2, carrier_id="x", now_ms=T0)


async def test_carrier_id_names_one_segment_per_channel(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A carrier id names one segment per channel: reused, it moves; another channel keeps its own."""
    message_id = await accepted_id(store, message_factory())
    await store.add_segments(message_id, attempt=1, channel=SMPP, total=2, now_ms=T0)
    await store.add_segments(message_id, attempt=2, channel="smpp-b", total=1, now_ms=T0)
    await store.segment_submitted(message_id, attempt=1, part=1, carrier_id="id", now_ms=T0)
    await store.segment_submitted(message_id, attempt=2, part=1, carrier_id="id", now_ms=T0)
    await store.segment_submitted(message_id, attempt=1, part=2, carrier_id="id", now_ms=T0)

    assert [None, "id", "id"] == [s.carrier_id for s in await store.segments(message_id)]


# -- receipts -----------------------------------------------------------------------------


async def test_one_part_undeliverable_fails_the_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Part 1 delivered and part 2 undeliverable: the message fails with part 2's error."""
    message_id = await submitted(store, message_factory(), parts=2)

    first = await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 10)
    second = await receipt(
        store,
        carrier(message_id, 2),
        SegmentState.UNDELIVERABLE,
        at=T0 + 11,
        error="001",
        detail={"stat": "UNDELIV"},
    )

    assert ReceiptOutcome(matched=True, message_id=message_id) == first
    assert (
        ReceiptOutcome(matched=True, message_id=message_id, message_status=MessageStatus.FAILED)
        == second
    )
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.FAILED, "001", T0 + 11) == (
        message.status,
        message.last_error,
        message.updated_at_ms,
    )
    assert [SegmentState.DELIVERED, SegmentState.UNDELIVERABLE] == await states_of(
        store, message_id
    )
    expected = [
        TimelineEntry(
            at_ms=T0 + 10,
            kind="receipt",
            status=MessageStatus.SUBMITTED,
            detail={
                "part": 1,
                "total": 2,
                "state": "delivered",
                "error": None,
                "carrier_id": carrier(message_id, 1),
            },
        ),
        TimelineEntry(
            at_ms=T0 + 11,
            kind="receipt",
            status=MessageStatus.SUBMITTED,
            detail={
                "stat": "UNDELIV",
                "part": 2,
                "total": 2,
                "state": "undeliverable",
                "error": "001",
                "carrier_id": carrier(message_id, 2),
            },
        ),
        TimelineEntry(
            at_ms=T0 + 11,
            kind="failed",
            status=MessageStatus.FAILED,
            detail={
                "attempt": 1,
                "states": ["delivered", "undeliverable"],
                "part": 2,
                "error": "001",
            },
        ),
    ]
    assert expected == (await store.timeline(message_id))[-3:]


async def test_every_part_delivered_delivers_the_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """The message is delivered by the receipt for its last part, not before."""
    message_id = await submitted(store, message_factory(), parts=3)

    outcomes = [
        await receipt(store, carrier(message_id, part), SegmentState.DELIVERED, at=T0 + 10 + n)
        for n, part in enumerate((2, 3, 1))
    ]

    assert [None, None, MessageStatus.DELIVERED] == [o.message_status for o in outcomes]
    assert MessageStatus.DELIVERED == await status_of(store, message_id)
    assert [
        ("receipt", MessageStatus.SUBMITTED),
        ("receipt", MessageStatus.SUBMITTED),
        ("receipt", MessageStatus.SUBMITTED),
        ("delivered", MessageStatus.DELIVERED),
    ] == await kinds_after_submitted(store, message_id)
    last = (await store.timeline(message_id))[-1]
    assert {"attempt": 1, "states": ["delivered"] * 3} == last.detail
    # Delivered releases nothing more: the outbox row went with "submitted".
    assert [] == await store.claim_due(worker_id="w", now_ms=T0 * 2, lease_ms=1, limit=10)


async def test_one_part_expired_expires_the_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """An expired part (and no failed one) expires the message; its state stands for a missing error."""
    message_id = await submitted(store, message_factory(), parts=2)

    await receipt(store, carrier(message_id, 1), SegmentState.EXPIRED, at=T0 + 10)
    outcome = await receipt(store, carrier(message_id, 2), SegmentState.DELIVERED, at=T0 + 11)

    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert MessageStatus.EXPIRED == outcome.message_status
    assert (MessageStatus.EXPIRED, "expired") == (message.status, message.last_error)
    assert ("expired", MessageStatus.EXPIRED) == (await kinds_after_submitted(store, message_id))[
        -1
    ]


async def test_failed_part_outranks_expired_part(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Part 1 expired, part 2 rejected: the message fails, blamed on the rejected part."""
    message_id = await submitted(store, message_factory(), parts=2)

    await receipt(store, carrier(message_id, 1), SegmentState.EXPIRED, at=T0 + 10, error="e1")
    await receipt(store, carrier(message_id, 2), SegmentState.REJECTED, at=T0 + 11, error="e2")

    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.FAILED, "e2") == (message.status, message.last_error)
    assert 2 == (await store.timeline(message_id))[-1].detail["part"]


async def test_duplicate_receipt(store: Store, app: App, message_factory: MessageFactory) -> None:
    """A second receipt for a final segment changes nothing and is noted as a duplicate."""
    message_id = await submitted(store, message_factory(), parts=2)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 10)
    segments = await store.segments(message_id)

    outcome = await receipt(
        store,
        carrier(message_id, 1),
        SegmentState.UNDELIVERABLE,
        at=T0 + 11,
        error="late",
        detail={"stat": "UNDELIV"},
    )

    assert ReceiptOutcome(matched=True, duplicate=True, message_id=message_id) == outcome
    assert segments == await store.segments(message_id)
    assert MessageStatus.SUBMITTED == await status_of(store, message_id)
    expected = TimelineEntry(
        at_ms=T0 + 11,
        kind="duplicate_receipt",
        status=MessageStatus.SUBMITTED,
        detail={
            "stat": "UNDELIV",
            "part": 1,
            "state": "undeliverable",
            "carrier_id": carrier(message_id, 1),
        },
    )
    assert expected == (await store.timeline(message_id))[-1]


async def test_duplicate_receipt_after_the_message_is_final(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A repeated receipt for a delivered message is noted with the final status and moves nothing."""
    message_id = await submitted(store, message_factory(), parts=1)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 10)

    outcome = await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 11)

    assert (True, None) == (outcome.duplicate, outcome.message_status)
    assert [
        ("receipt", MessageStatus.SUBMITTED),
        ("delivered", MessageStatus.DELIVERED),
        ("duplicate_receipt", MessageStatus.DELIVERED),
    ] == await kinds_after_submitted(store, message_id)


async def test_enroute_then_final(store: Store, app: App, message_factory: MessageFactory) -> None:
    """An enroute receipt records the segment as enroute; the final receipt after it concludes."""
    message_id = await submitted(store, message_factory(), parts=1)

    enroute = await receipt(store, carrier(message_id, 1), SegmentState.ENROUTE, at=T0 + 10)
    states = await states_of(store, message_id)
    delivered = await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 11)

    assert (False, None) == (enroute.duplicate, enroute.message_status)
    assert [SegmentState.ENROUTE] == states
    assert MessageStatus.DELIVERED == delivered.message_status


async def test_enroute_after_delivered_changes_nothing(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A late enroute never replaces a final segment state: it is a duplicate."""
    message_id = await submitted(store, message_factory(), parts=2)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 10)

    late = await receipt(store, carrier(message_id, 1), SegmentState.ENROUTE, at=T0 + 11)

    assert True is late.duplicate
    assert [SegmentState.DELIVERED, SegmentState.SUBMITTED] == await states_of(store, message_id)
    assert {"part": 1, "state": "enroute", "carrier_id": carrier(message_id, 1)} == (
        await store.timeline(message_id)
    )[-1].detail


async def test_non_final_receipt_is_recorded_as_enroute(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A receipt saying pending or submitted is recorded as enroute."""
    message_id = await submitted(store, message_factory(), parts=2)

    await receipt(store, carrier(message_id, 1), SegmentState.SUBMITTED, at=T0 + 10)
    await receipt(store, carrier(message_id, 2), SegmentState.PENDING, at=T0 + 11)

    assert [SegmentState.ENROUTE, SegmentState.ENROUTE] == await states_of(store, message_id)
    assert ["enroute", "enroute"] == [
        entry.detail["state"] for entry in (await store.timeline(message_id))[-2:]
    ]


async def test_receipt_updates_segment(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A receipt sets the segment's state, error and update time."""
    message_id = await submitted(store, message_factory(), parts=2)

    await receipt(store, carrier(message_id, 2), SegmentState.ENROUTE, at=T0 + 10, error="slow")

    second = (await store.segments(message_id))[1]
    assert (SegmentState.ENROUTE, "slow", T0 + 10) == (
        second.state,
        second.error,
        second.updated_at_ms,
    )


# -- receipts that come early -------------------------------------------------------------


async def test_unknown_carrier_id_is_kept(store: Store) -> None:
    """A receipt naming no segment is kept as unmatched, counted per channel."""
    outcome = await receipt(store, "nobody", SegmentState.DELIVERED, at=T0)
    await receipt(store, "nobody", SegmentState.DELIVERED, at=T0 + 1)
    await receipt(store, "else", SegmentState.DELIVERED, at=T0, channel="other")

    assert ReceiptOutcome(matched=False) == outcome
    assert (2, 1, 0) == (
        await store.unmatched_receipts(SMPP),
        await store.unmatched_receipts("other"),
        await store.unmatched_receipts("none"),
    )


async def test_receipt_before_its_carrier_id(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A receipt that overtakes the submit_sm_resp is applied when the carrier id is recorded."""
    message_id = await sending(store, message_factory(), parts=1)
    early = await receipt(
        store, "early", SegmentState.DELIVERED, at=T0 + 2, detail={"stat": "DELIVRD"}
    )

    outcome = await store.segment_submitted(
        message_id, attempt=1, part=1, carrier_id="early", now_ms=T0 + 3
    )

    assert ReceiptOutcome(matched=False) == early
    assert ReceiptOutcome(matched=True, message_id=message_id) == outcome
    assert 0 == await store.unmatched_receipts(SMPP)
    assert [SegmentState.DELIVERED] == await states_of(store, message_id)
    expected = TimelineEntry(
        at_ms=T0 + 3,
        kind="receipt",
        status=MessageStatus.SENDING,
        detail={
            "stat": "DELIVRD",
            "received_at_ms": T0 + 2,
            "part": 1,
            "total": 1,
            "state": "delivered",
            "error": None,
            "carrier_id": "early",
        },
    )
    assert expected == (await store.timeline(message_id))[-1]


async def test_kept_receipts_apply_in_arrival_order(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Several kept receipts apply oldest first: delivered then a late enroute leaves delivered."""
    message_id = await sending(store, message_factory(), parts=2)
    await receipt(store, "x", SegmentState.ENROUTE, at=T0 + 5)
    await receipt(store, "x", SegmentState.DELIVERED, at=T0 + 2)
    await receipt(store, "y", SegmentState.DELIVERED, at=T0 + 2)  # Another segment's, kept.

    outcome = await store.segment_submitted(
        message_id, attempt=1, part=1, carrier_id="x", now_ms=T0 + 6
    )

    assert ReceiptOutcome(matched=True, duplicate=True, message_id=message_id) == outcome
    assert [SegmentState.DELIVERED, SegmentState.PENDING] == await states_of(store, message_id)
    assert [("receipt", "delivered"), ("duplicate_receipt", "enroute")] == [
        (entry.kind, entry.detail["state"]) for entry in (await store.timeline(message_id))[-2:]
    ]
    assert 1 == await store.unmatched_receipts(SMPP)


async def test_kept_receipt_completes_a_submitted_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A kept receipt applied by segment_submitted can complete the message; its outcome says so."""
    message_id = await sending(store, message_factory(), parts=2)
    await store.segment_submitted(
        message_id, attempt=1, part=1, carrier_id=carrier(message_id, 1), now_ms=T0 + 2
    )
    await record_submitted(store, message_id)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 4)
    await receipt(store, carrier(message_id, 2), SegmentState.DELIVERED, at=T0 + 5)

    outcome = await store.segment_submitted(
        message_id, attempt=1, part=2, carrier_id=carrier(message_id, 2), now_ms=T0 + 6
    )

    assert (
        ReceiptOutcome(matched=True, message_id=message_id, message_status=MessageStatus.DELIVERED)
        == outcome
    )
    assert MessageStatus.DELIVERED == await status_of(store, message_id)


# -- receipts while sending, and settle -----------------------------------------------------


async def test_receipt_while_sending_is_applied_when_submitted_is_recorded(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Receipts before the worker records submitted update segments only; recording
    submitted concludes the message in the same transaction (settle then finds nothing)."""
    message_id = await sending(store, message_factory(), parts=2)
    await submit_all(store, message_id, parts=2)

    outcomes = [
        await receipt(store, carrier(message_id, part), SegmentState.DELIVERED, at=T0 + 2)
        for part in (1, 2)
    ]
    while_sending = await status_of(store, message_id)
    await record_submitted(store, message_id)
    settled = await store.settle(message_id, now_ms=T0 + 4)

    assert [None, None] == [outcome.message_status for outcome in outcomes]
    assert MessageStatus.SENDING == while_sending
    assert MessageStatus.DELIVERED == await status_of(store, message_id)
    assert settled is None
    timeline = await store.timeline(message_id)
    assert [
        ("receipt", MessageStatus.SENDING),
        ("receipt", MessageStatus.SENDING),
        ("submitted", MessageStatus.SUBMITTED),
        ("delivered", MessageStatus.DELIVERED),
    ] == [(entry.kind, entry.status) for entry in timeline[-4:]]
    assert T0 + 3 == timeline[-1].at_ms


async def test_settle_waits_for_every_part(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """settle leaves a submitted message alone while a part has no final receipt."""
    message_id = await submitted(store, message_factory(), parts=2)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 4)
    timeline = await store.timeline(message_id)

    settled = await store.settle(message_id, now_ms=T0 + 5)

    assert None is settled
    assert MessageStatus.SUBMITTED == await status_of(store, message_id)
    assert timeline == await store.timeline(message_id)


async def test_settle_only_moves_submitted_messages(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """settle does nothing to a message still sending, nor to one without segments or any message."""
    message_id = await sending(store, message_factory(), parts=1)
    await submit_all(store, message_id, parts=1)
    await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 3)
    plain_id = await accepted_id(store, message_factory(msg_key="plain"))

    assert None is await store.settle(message_id, now_ms=T0 + 4)
    assert None is await store.settle(plain_id, now_ms=T0 + 4)
    assert None is await store.settle(123_456, now_ms=T0 + 4)
    assert MessageStatus.SENDING == await status_of(store, message_id)


async def test_final_message_is_never_downgraded(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A message the worker failed stays failed; its segments still record the receipts."""
    message_id = await sending(store, message_factory(), parts=1)
    await submit_all(store, message_id, parts=1)
    await store.transition(
        message_id, to=MessageStatus.FAILED, now_ms=T0 + 3, kind="failed", error="gave up"
    )

    outcome = await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 4)
    settled = await store.settle(message_id, now_ms=T0 + 5)

    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (None, None) == (outcome.message_status, settled)
    assert (MessageStatus.FAILED, "gave up") == (message.status, message.last_error)
    assert [SegmentState.DELIVERED] == await states_of(store, message_id)
    assert ("receipt", MessageStatus.FAILED) == (await kinds_after_submitted(store, message_id))[-1]


async def test_an_attempt_cut_into_other_parts_replaces_the_older_one(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A new cut of the text (other parts): only the latest attempt's receipts conclude."""
    message_id = await sending(store, message_factory(), parts=1)
    await submit_all(store, message_id, parts=1)
    # The first attempt's part was in doubt; the second attempt sends two parts again.
    await store.add_segments(message_id, attempt=2, channel=SMPP, total=2, now_ms=T0 + 2)
    await submit_all(store, message_id, parts=2, attempt=2)
    await record_submitted(store, message_id)

    old = await receipt(store, carrier(message_id, 1, 1), SegmentState.UNDELIVERABLE, at=T0 + 4)
    first = await receipt(store, carrier(message_id, 1, 2), SegmentState.DELIVERED, at=T0 + 5)
    second = await receipt(store, carrier(message_id, 2, 2), SegmentState.DELIVERED, at=T0 + 6)

    assert (None, None, MessageStatus.DELIVERED) == (
        old.message_status,
        first.message_status,
        second.message_status,
    )
    assert {"attempt": 2, "states": ["delivered", "delivered"]} == (
        await store.timeline(message_id)
    )[-1].detail


async def test_a_delivered_copy_of_a_resent_part_delivers_the_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Part 1 in doubt and resent: the first copy's late id and DELIVRD receipt decide it."""
    message_id = await sending(store, message_factory(), parts=1)
    await store.add_segments(message_id, attempt=2, channel=SMPP, total=1, now_ms=T0 + 2)
    await submit_all(store, message_id, parts=1, attempt=2)
    await record_submitted(store, message_id)
    # The first copy's submit_sm_resp came late, then its receipt.
    await store.segment_submitted(message_id, attempt=1, part=1,
                                  carrier_id=carrier(message_id, 1, 1), now_ms=T0 + 4)  # fmt: skip

    outcome = await receipt(store, carrier(message_id, 1, 1), SegmentState.DELIVERED, at=T0 + 5)

    assert MessageStatus.DELIVERED == outcome.message_status
    assert MessageStatus.DELIVERED == await status_of(store, message_id)


async def test_a_partial_resend_completes_the_parts_of_the_first_attempt(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Attempt 2 resent only part 2: parts 1 (attempt 1) and 2 (attempt 2) make the message."""
    message_id = await sending(store, message_factory(), parts=2)
    await store.segment_submitted(message_id, attempt=1, part=1,
                                  carrier_id=carrier(message_id, 1, 1), now_ms=T0 + 2)  # fmt: skip
    await store.add_segments(message_id, attempt=2, channel=SMPP, total=2, now_ms=T0 + 3,
                             parts=[2])  # fmt: skip
    await store.segment_submitted(message_id, attempt=2, part=2,
                                  carrier_id=carrier(message_id, 2, 2), now_ms=T0 + 3)  # fmt: skip
    await record_submitted(store, message_id)
    first = await receipt(store, carrier(message_id, 1, 1), SegmentState.DELIVERED, at=T0 + 4)
    second = await receipt(store, carrier(message_id, 2, 2), SegmentState.DELIVERED, at=T0 + 5)

    assert [(1, 1), (1, 2), (2, 2)] == [
        (s.attempt, s.part) for s in await store.segments(message_id)
    ]
    assert (None, MessageStatus.DELIVERED) == (first.message_status, second.message_status)


# -- concurrency -------------------------------------------------------------------------------


def final_entries(timeline: list[TimelineEntry]) -> list[str]:
    return [entry.kind for entry in timeline if entry.kind in FINAL_KINDS]


async def test_racing_receipts_conclude_once(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Receipts for every part of many messages, all at once, move each message exactly once."""
    ids = [await submitted(store, message_factory(msg_key=f"m{i}"), parts=2) for i in range(10)]

    outcomes = await asyncio.gather(
        *(
            receipt(store, carrier(message_id, part), SegmentState.DELIVERED, at=T0 + 10)
            for message_id in ids
            for part in (1, 2)
        )
    )

    concluded = [o.message_id for o in outcomes if o.message_status is MessageStatus.DELIVERED]
    assert sorted(ids) == sorted(concluded)
    for message_id in ids:
        assert ["delivered"] == final_entries(await store.timeline(message_id))
        assert MessageStatus.DELIVERED == await status_of(store, message_id)


async def test_racing_receipts_through_two_stores(
    store: Store, database_url: str, app: App, message_factory: MessageFactory
) -> None:
    """Two stores (two connections, two write locks) racing on the parts of one message move it once."""
    ids = [await submitted(store, message_factory(msg_key=f"m{i}"), parts=2) for i in range(10)]
    other = create_store(database_url)
    await other.open()
    try:
        outcomes = await asyncio.gather(
            *(
                receipt(
                    receiver,
                    carrier(message_id, part),
                    SegmentState.UNDELIVERABLE if part == 2 else SegmentState.DELIVERED,
                    at=T0 + 10,
                    error=f"e{part}",
                )
                for message_id in ids
                for part, receiver in ((1, store), (2, other))
            )
        )
    finally:
        await other.close()

    concluded = [o.message_id for o in outcomes if o.message_status is MessageStatus.FAILED]
    assert sorted(ids) == sorted(concluded)
    for message_id in ids:
        message = await store.get_message_by_id(message_id)
        assert message is not None
        assert (MessageStatus.FAILED, "e2") == (message.status, message.last_error)
        assert ["failed"] == final_entries(await store.timeline(message_id))


async def test_racing_settle_and_receipt_conclude_once(
    store: Store, database_url: str, app: App, message_factory: MessageFactory
) -> None:
    """settle racing the last receipt through another store moves the message once."""
    ids = []
    for i in range(10):
        message_id = await submitted(store, message_factory(msg_key=f"m{i}"), parts=2)
        await receipt(store, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 4)
        ids.append(message_id)
    other = create_store(database_url)
    await other.open()
    try:
        await asyncio.gather(
            *(
                task
                for message_id in ids
                for task in (
                    receipt(other, carrier(message_id, 2), SegmentState.DELIVERED, at=T0 + 5),
                    store.settle(message_id, now_ms=T0 + 5),
                )
            )
        )
    finally:
        await other.close()

    for message_id in ids:
        assert ["delivered"] == final_entries(await store.timeline(message_id))


async def test_receipt_racing_its_carrier_id(
    store: Store, database_url: str, app: App, message_factory: MessageFactory
) -> None:
    """A receipt racing the segment_submitted that names its segment is applied exactly once."""
    ids = [await sending(store, message_factory(msg_key=f"m{i}"), parts=1) for i in range(30)]
    other = create_store(database_url)
    await other.open()
    try:
        await asyncio.gather(
            *(
                task
                for message_id in ids
                for task in (
                    receipt(other, carrier(message_id, 1), SegmentState.DELIVERED, at=T0 + 2),
                    store.segment_submitted(
                        message_id,
                        attempt=1,
                        part=1,
                        carrier_id=carrier(message_id, 1),
                        now_ms=T0 + 2,
                    ),
                )
            )
        )
    finally:
        await other.close()

    assert 0 == await store.unmatched_receipts(SMPP)
    for message_id in ids:
        assert [SegmentState.DELIVERED] == await states_of(store, message_id)
        kinds = [entry.kind for entry in await store.timeline(message_id)]
        assert 1 == kinds.count("receipt")


async def test_a_reused_carrier_id_moves_to_the_newest_segment(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """An SMSC that reuses an id: the newest segment takes it, the old one keeps its state."""
    old = await sending(store, message_factory(msg_key="old"), parts=1)
    await store.segment_submitted(old, attempt=1, part=1, carrier_id="42", now_ms=T0 + 2)
    await record_submitted(store, old)
    await store.apply_receipt(channel=SMPP, carrier_id="42", state=SegmentState.DELIVERED,
                              error=None, now_ms=T0 + 4)  # fmt: skip
    new = await sending(store, message_factory(msg_key="new"), parts=1)
    await store.segment_submitted(new, attempt=1, part=1, carrier_id="42", now_ms=T0 + 5)
    await record_submitted(store, new)
    outcome = await store.apply_receipt(channel=SMPP, carrier_id="42",
                                        state=SegmentState.UNDELIVERABLE, error="1", now_ms=T0 + 6)  # fmt: skip
    assert (new, MessageStatus.FAILED) == (outcome.message_id, outcome.message_status)
    [kept] = await store.segments(old)
    assert (None, SegmentState.DELIVERED) == (kept.carrier_id, kept.state)


async def test_a_refused_segment_is_not_in_doubt(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """segment_refused marks a pending part the carrier answered with an error."""
    message_id = await sending(store, message_factory(), parts=2)
    await store.segment_refused(message_id, attempt=1, part=2, error="ESME_RSYSERR", now_ms=T0 + 2)
    states = [(s.part, s.state, s.error) for s in await store.segments(message_id)]
    assert [(1, SegmentState.PENDING, None), (2, SegmentState.REFUSED, "ESME_RSYSERR")] == states


# -- receipts kept across an SMSC restart (ids reused) ------------------------------------------


async def test_a_receipt_kept_before_the_segment_existed_is_not_applied_to_it(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A restarted SMSC reuses id 42: the old session's kept receipt is not the new segment's."""
    stale = T0 + 1 - 60_000  # kept a minute before the segment was added
    await store.apply_receipt(channel=SMPP, carrier_id="42", state=SegmentState.UNDELIVERABLE,
                              error="001", now_ms=stale, destination="8613888888888")  # fmt: skip
    message_id = await sending(store, message_factory(), parts=1)

    outcome = await store.segment_submitted(
        message_id, attempt=1, part=1, carrier_id="42", now_ms=T0 + 2
    )
    await record_submitted(store, message_id)
    delivered = await receipt(store, "42", SegmentState.DELIVERED, at=T0 + 4)

    assert outcome is None
    assert 1 == await store.unmatched_receipts(SMPP)  # still kept, still counted
    assert MessageStatus.DELIVERED == delivered.message_status
    assert MessageStatus.DELIVERED == await status_of(store, message_id)


@pytest.mark.parametrize(
    ("address", "applied"),
    [("8613888888888", True), ("13888888888", True), ("", True), ("8613900000000", False)],
    ids=["international", "national", "no-address", "another-handset"],
)
async def test_a_kept_receipt_is_applied_only_if_it_names_the_receiver(
    store: Store, app: App, message_factory: MessageFactory, address: str, applied: bool
) -> None:
    """A receipt that overtook its submit_sm_resp fits only a message to the number it names."""
    message_id = await sending(store, message_factory(), parts=1)  # to +8613888888888
    await store.apply_receipt(channel=SMPP, carrier_id="7", state=SegmentState.DELIVERED,
                              error=None, now_ms=T0 + 2, destination=address)  # fmt: skip

    await store.segment_submitted(message_id, attempt=1, part=1, carrier_id="7", now_ms=T0 + 3)

    state = SegmentState.DELIVERED if applied else SegmentState.SUBMITTED
    assert [state] == await states_of(store, message_id)
    assert (0 if applied else 1) == await store.unmatched_receipts(SMPP)


async def test_a_receipt_about_another_handset_does_not_match_by_id(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A stale receipt with a reused id that names another number is kept, not applied."""
    message_id = await submitted(store, message_factory(), parts=1)

    outcome = await store.apply_receipt(
        channel=SMPP, carrier_id=carrier(message_id, 1), state=SegmentState.UNDELIVERABLE,
        error="001", now_ms=T0 + 4, destination="8613900000000",
    )  # fmt: skip

    assert ReceiptOutcome(matched=False) == outcome
    assert [SegmentState.SUBMITTED] == await states_of(store, message_id)
    assert MessageStatus.SUBMITTED == await status_of(store, message_id)
