"""The pure rules of a message's parts: which copy decides, what to resend, which receipt fits."""

from __future__ import annotations

import pytest

from iwork_mc.messages import MessageStatus
from iwork_mc.segments import (
    RECEIPT_CLOCK_SKEW_MS,
    PartsPlan,
    Segment,
    SegmentState,
    aggregate,
    deciding_copies,
    kept_receipt_fits,
    plan_parts,
    receipt_names_receiver,
)

S = SegmentState


def copy(
    attempt: int, part: int, state: SegmentState, *, total: int = 2, channel: str = "smpp",
    carrier_id: str | None = None,
) -> Segment:  # fmt: skip
    if carrier_id is None and state not in (S.PENDING, S.REFUSED):
        carrier_id = f"c{attempt}-{part}"
    return Segment(message_id=1, attempt=attempt, part=part, total=total, channel=channel,
                   carrier_id=carrier_id, state=state, error=None, updated_at_ms=0)  # fmt: skip


def decided(segments: list[Segment]) -> list[tuple[int, int, SegmentState]]:
    return [(s.part, s.attempt, s.state) for s in deciding_copies(segments)]


def test_a_delivered_copy_decides_its_part_whatever_came_later() -> None:
    segments = [copy(1, 1, S.DELIVERED), copy(1, 2, S.PENDING), copy(2, 1, S.UNDELIVERABLE),
                copy(2, 2, S.DELIVERED)]  # fmt: skip
    assert [(1, 1, S.DELIVERED), (2, 2, S.DELIVERED)] == decided(segments)
    assert MessageStatus.DELIVERED == aggregate(s.state for s in deciding_copies(segments))


def test_without_a_delivered_copy_the_latest_decides() -> None:
    segments = [copy(1, 1, S.UNDELIVERABLE), copy(2, 1, S.SUBMITTED)]
    assert [(1, 2, S.SUBMITTED)] == decided(segments)


def test_a_partial_resend_keeps_the_untouched_parts_of_earlier_attempts() -> None:
    segments = [copy(1, 1, S.DELIVERED), copy(1, 2, S.PENDING), copy(2, 2, S.ENROUTE)]
    assert [(1, 1, S.DELIVERED), (2, 2, S.ENROUTE)] == decided(segments)


def test_copies_on_another_channel_or_cut_differently_do_not_count() -> None:
    segments = [copy(1, 1, S.DELIVERED, total=1), copy(2, 1, S.DELIVERED, channel="other"),
                copy(3, 1, S.SUBMITTED), copy(3, 2, S.SUBMITTED)]  # fmt: skip
    assert [(1, 3, S.SUBMITTED), (2, 3, S.SUBMITTED)] == decided(segments)
    assert [] == deciding_copies([])


def test_a_first_attempt_sends_every_part() -> None:
    assert PartsPlan(to_send=[1, 2, 3], in_doubt=[], carrier_ids={}) == plan_parts(
        [], channel="smpp", total=3
    )


def test_only_parts_no_copy_of_which_was_taken_are_sent_again() -> None:
    earlier = [copy(1, 1, S.SUBMITTED), copy(1, 2, S.PENDING), copy(1, 3, S.REFUSED, total=3),
               copy(1, 1, S.PENDING, total=3), copy(1, 2, S.DELIVERED, total=3)]  # fmt: skip
    assert PartsPlan(to_send=[2], in_doubt=[2], carrier_ids={1: "c1-1"}) == plan_parts(
        earlier[:2], channel="smpp", total=2
    )
    # Refused: never taken, so sent again, but not in doubt.
    assert PartsPlan(to_send=[1, 3], in_doubt=[1], carrier_ids={2: "c1-2"}) == plan_parts(
        earlier[2:], channel="smpp", total=3
    )


def test_a_late_answer_takes_a_part_out_of_doubt() -> None:
    earlier = [copy(1, 1, S.SUBMITTED, total=1, carrier_id="late")]
    plan = plan_parts(earlier, channel="smpp", total=1)
    assert ([], {1: "late"}) == (plan.to_send, plan.carrier_ids)
    assert [1] == plan_parts(earlier, channel="other", total=1).to_send


@pytest.mark.parametrize(
    ("address", "expected"),
    [("8613888888888", True), ("+8613888888888", True), ("13888888888", True),
     ("013888888888", True), ("", True), ("ParkDesk", True), ("8613900000000", False)],
)  # fmt: skip
def test_a_receipt_address_names_the_receiver(address: str, expected: bool) -> None:
    assert expected == receipt_names_receiver(address, "+8613888888888")


def test_a_kept_receipt_older_than_the_segment_does_not_fit() -> None:
    def fits(received_at_ms: int, address: str = "") -> bool:
        return kept_receipt_fits(received_at_ms=received_at_ms, address=address,
                                 pending_since_ms=10_000, receiver="+8613888888888")  # fmt: skip

    assert fits(10_000)
    assert fits(10_000 - RECEIPT_CLOCK_SKEW_MS)
    assert not fits(10_000 - RECEIPT_CLOCK_SKEW_MS - 1)
    assert not fits(20_000, "8613900000000")
