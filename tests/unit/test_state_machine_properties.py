"""Properties of the delivery state machine (messages.py) and of segment aggregation (segments.py).

tests/unit/test_messages.py checks the table entry by entry; here Hypothesis
walks it: random walks, every pair outside the table, and the one operator's
way back out of a final status.  Then the "worst of" rule that turns segment
receipts into a message status.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from iwork_mc.messages import (
    FINAL_STATUSES,
    REQUEUE_FROM,
    TRANSITIONS,
    InvalidTransition,
    MessageStatus,
    check_transition,
)
from iwork_mc.segments import FINAL_SEGMENT_STATES, SegmentState, aggregate

S = MessageStatus
statuses = st.sampled_from(list(MessageStatus))
final_states = st.sampled_from(sorted(FINAL_SEGMENT_STATES))
segment_states = st.sampled_from(list(SegmentState))
FORBIDDEN = [
    (current, target)
    for current, target in itertools.product(MessageStatus, repeat=2)
    if target not in TRANSITIONS[current]
]
#: How bad a message status is, for the "worst of" rule.
BADNESS = {S.DELIVERED: 0, S.EXPIRED: 1, S.FAILED: 2}


def allowed_walk(start: MessageStatus, choices: list[int]) -> list[MessageStatus]:
    """The statuses visited by following allowed transitions, picking by ``choices``."""
    path = [start]
    for choice in choices:
        targets = sorted(TRANSITIONS[path[-1]])
        if not targets:
            break
        path.append(targets[choice % len(targets)])
    return path


# -- the transition table -------------------------------------------------------


@given(statuses, st.lists(st.integers(min_value=0), max_size=40))
def test_a_walk_of_allowed_transitions_never_leaves_a_final_status(
    start: MessageStatus, choices: list[int]
) -> None:
    """Once a walk reaches a final status, it can take no further step."""
    path = allowed_walk(start, choices)
    for step, status in enumerate(path):
        if status in FINAL_STATUSES:
            assert len(path) - 1 == step
            break


@given(statuses, st.lists(st.integers(min_value=0), max_size=40))
def test_every_step_of_an_allowed_walk_passes_check_transition(
    start: MessageStatus, choices: list[int]
) -> None:
    """check_transition accepts each step the table allows."""
    path = allowed_walk(start, choices)
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), FORBIDDEN, ids=lambda s: str(s))
def test_check_transition_raises_for_every_pair_outside_the_table(
    current: MessageStatus, target: MessageStatus
) -> None:
    """Every (current, target) pair the table lacks raises InvalidTransition naming both."""
    with pytest.raises(InvalidTransition, match=f"{current} → {target}"):
        check_transition(current, target)


@given(statuses, statuses)
def test_check_transition_raises_exactly_when_the_table_lacks_the_pair(
    current: MessageStatus, target: MessageStatus
) -> None:
    """check_transition is the table: no rule of its own."""
    try:
        check_transition(current, target)
    except InvalidTransition:
        assert target not in TRANSITIONS[current]
    else:
        assert target in TRANSITIONS[current]


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES), ids=str)
def test_no_final_status_goes_back_to_queued_by_itself(status: MessageStatus) -> None:
    """Receipts and workers (the table) never requeue a final status."""
    with pytest.raises(InvalidTransition):
        check_transition(status, S.QUEUED)


def test_only_failed_and_expired_can_be_requeued_by_an_operator() -> None:
    """REQUEUE_FROM is failed and expired: never delivered (sent twice) nor rejected (policy)."""
    assert {S.FAILED, S.EXPIRED} == REQUEUE_FROM


def test_requeue_is_only_a_way_out_of_final_statuses() -> None:
    """Every status an operator may requeue is final: live messages are the worker's."""
    assert REQUEUE_FROM <= FINAL_STATUSES


class OperatedMessage(RuleBasedStateMachine):
    """One message moved by the table (workers, receipts) and by operator requeues."""

    def __init__(self) -> None:
        super().__init__()
        self.status = S.QUEUED
        self.final_seen: MessageStatus | None = None
        self.requeued = False

    @rule(wanted=statuses)
    def automatic(self, wanted: MessageStatus) -> None:
        """A worker or receipt asks for ``wanted``; the table decides."""
        before = self.status
        try:
            check_transition(before, wanted)
        except InvalidTransition:
            assert wanted not in TRANSITIONS[before]
            return
        self.status = wanted
        if wanted in FINAL_STATUSES:
            self.final_seen = wanted
            self.requeued = False

    @precondition(lambda self: self.status in FINAL_STATUSES)
    @rule()
    def operator_requeue(self) -> None:
        """An operator sends a final message again, if REQUEUE_FROM allows."""
        if self.status in REQUEUE_FROM:
            self.status = S.QUEUED
            self.requeued = True

    @invariant()
    def a_final_status_changes_only_by_requeue(self) -> None:
        if self.final_seen is not None and not self.requeued:
            assert self.final_seen == self.status

    @invariant()
    def delivered_and_rejected_are_forever(self) -> None:
        if self.final_seen in {S.DELIVERED, S.REJECTED}:
            assert self.final_seen == self.status


TestOperatedMessage = OperatedMessage.TestCase


# -- aggregate: a message is as good as its worst segment ----------------------------


@given(st.lists(segment_states, min_size=1))
def test_aggregate_waits_while_any_segment_is_not_final(states: list[SegmentState]) -> None:
    """None exactly when some segment is still pending, submitted, enroute or refused."""
    pending = any(state not in FINAL_SEGMENT_STATES for state in states)
    assert pending == (aggregate(states) is None)


def test_aggregate_of_no_segments_is_none() -> None:
    """An attempt with no segments has no outcome yet."""
    assert aggregate([]) is None


@given(st.lists(final_states, min_size=1))
def test_aggregate_of_final_segments_is_a_final_status(states: list[SegmentState]) -> None:
    """Final segments add up to delivered, failed or expired (never rejected by a carrier)."""
    assert aggregate(states) in {S.DELIVERED, S.FAILED, S.EXPIRED}


@given(st.lists(final_states, min_size=1), st.randoms())
def test_aggregate_ignores_the_order_of_segments(states: list[SegmentState], rng: object) -> None:
    """Receipts arrive in any order; the outcome is the same."""
    shuffled = list(states)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert aggregate(states) == aggregate(shuffled)


@given(st.lists(final_states, min_size=1), st.lists(final_states, min_size=1))
def test_aggregate_is_the_worst_of_its_parts(
    left: list[SegmentState], right: list[SegmentState]
) -> None:
    """Joining two groups of segments gives the worse of their two outcomes."""
    a, b = aggregate(left), aggregate(right)
    assert a is not None and b is not None
    assert max(a, b, key=BADNESS.__getitem__) == aggregate(left + right)


@given(st.lists(final_states, min_size=1))
def test_aggregate_is_delivered_only_when_every_segment_is(states: list[SegmentState]) -> None:
    """One segment short of delivered keeps the message from being delivered."""
    every = all(state is SegmentState.DELIVERED for state in states)
    assert every == (S.DELIVERED == aggregate(states))


@given(st.lists(final_states, min_size=1), st.integers(min_value=0), final_states)
def test_a_worse_segment_never_improves_the_outcome(
    states: list[SegmentState], index: int, replacement: SegmentState
) -> None:
    """Replacing one segment's state with a worse one never makes the message better."""
    position = index % len(states)
    before = aggregate(states)
    assert before is not None
    replaced = aggregate([replacement])
    original = aggregate([states[position]])
    assert replaced is not None and original is not None
    changed = [*states[:position], replacement, *states[position + 1 :]]
    after = aggregate(changed)
    assert after is not None
    if BADNESS[replaced] >= BADNESS[original]:
        assert BADNESS[after] >= BADNESS[before]


@given(st.lists(final_states, min_size=1), st.integers(min_value=1, max_value=5))
def test_a_duplicate_receipt_changes_no_outcome(states: list[SegmentState], repeats: int) -> None:
    """The same segment states counted again (duplicate receipts) add up the same."""
    assert aggregate(states) == aggregate(states * repeats)
