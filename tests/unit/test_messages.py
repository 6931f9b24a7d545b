"""Unit tests for iwork_mc.messages: the one delivery state machine (DESIGN.md invariant 4)."""

# structlog style: `expected == actual`; until pyproject ignores SIM300 under tests/.

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iwork_mc.messages import (
    FINAL_STATUSES,
    TRANSITIONS,
    InvalidTransition,
    MessageStatus,
    check_transition,
)

S = MessageStatus
statuses = st.sampled_from(list(MessageStatus))


def _reachable(
    start: MessageStatus, table: dict[MessageStatus, frozenset[MessageStatus]]
) -> set[MessageStatus]:
    seen = {start}
    todo = [start]
    while todo:
        for target in table[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_table_covers_every_status() -> None:
    """TRANSITIONS has a row for every status and names only statuses."""
    assert (set(MessageStatus), True) == (
        set(TRANSITIONS),
        all(targets <= set(MessageStatus) for targets in TRANSITIONS.values()),
    )


def test_final_statuses() -> None:
    """delivered, failed, expired and rejected are the final statuses."""
    assert {S.DELIVERED, S.FAILED, S.EXPIRED, S.REJECTED} == FINAL_STATUSES


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES), ids=str)
def test_final_status_has_no_way_out(status: MessageStatus) -> None:
    """A final status has no outgoing transition, not even to itself."""
    assert frozenset() == TRANSITIONS[status]


@pytest.mark.parametrize("status", sorted(set(MessageStatus) - FINAL_STATUSES), ids=str)
def test_non_final_status_can_end(status: MessageStatus) -> None:
    """From every non-final status some final status is reachable."""
    assert _reachable(status, TRANSITIONS) & FINAL_STATUSES


def test_every_status_reachable_from_queued() -> None:
    """Every status can be reached from queued."""
    assert set(MessageStatus) == _reachable(S.QUEUED, TRANSITIONS)


def test_delivered_only_from_submitted_or_a_channel_confirming_at_once() -> None:
    """delivered follows submitted (a receipt) or sending (a channel that confirms at once)."""
    assert {S.SUBMITTED, S.SENDING} == {
        s for s, targets in TRANSITIONS.items() if S.DELIVERED in targets
    }


def test_delivered_needs_a_channel_answer() -> None:
    """Without sending (where a channel answers), delivered cannot be reached from queued."""
    without: dict[MessageStatus, frozenset[MessageStatus]] = {
        s: t - {S.SENDING} for s, t in TRANSITIONS.items()
    }
    without[S.SENDING] = frozenset()

    assert S.DELIVERED not in _reachable(S.QUEUED, without)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.SENDING),
        (S.SENDING, S.SUBMITTED),
        (S.SUBMITTED, S.DELIVERED),
        (S.SENDING, S.QUEUED),
        (S.SENDING, S.SENDING),
        (S.QUEUED, S.REJECTED),
        (S.SUBMITTED, S.EXPIRED),
    ],
    ids=["claim", "submit", "deliver", "retry", "lease-expiry", "policy", "validity"],
)
def test_allowed_transition(current: MessageStatus, target: MessageStatus) -> None:
    """The happy path, retries and lease re-claims are allowed."""
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DELIVERED, S.FAILED),
        (S.FAILED, S.DELIVERED),
        (S.DELIVERED, S.DELIVERED),
        (S.QUEUED, S.DELIVERED),
        (S.QUEUED, S.SUBMITTED),
        (S.SUBMITTED, S.QUEUED),
        (S.REJECTED, S.QUEUED),
    ],
    ids=[
        "downgrade",
        "late-receipt",
        "duplicate-receipt",
        "skip",
        "skip-sending",
        "resend",
        "undo",
    ],
)
def test_refused_transition(current: MessageStatus, target: MessageStatus) -> None:
    """Downgrades, skips and leaving a final status raise InvalidTransition."""
    with pytest.raises(InvalidTransition):
        check_transition(current, target)


@settings(max_examples=200)
@given(pairs=st.lists(st.tuples(statuses, statuses), max_size=30))
def test_check_transition_follows_table(pairs: list[tuple[MessageStatus, MessageStatus]]) -> None:
    """For any (status, target) pair, check_transition allows it iff the table lists it."""
    for current, target in pairs:
        try:
            check_transition(current, target)
            allowed = True
        except InvalidTransition:
            allowed = False

        assert (target in TRANSITIONS[current]) == allowed


@settings(max_examples=200)
@given(targets=st.lists(statuses, max_size=30))
def test_walk_never_leaves_a_final_status(targets: list[MessageStatus]) -> None:
    """Applying any receipts in any order, a message that reached a final status stays there."""
    status = S.QUEUED
    final_seen: MessageStatus | None = None
    for target in targets:
        try:
            check_transition(status, target)
        except InvalidTransition:
            continue
        status = target
        if status in FINAL_STATUSES and final_seen is None:
            final_seen = status

    assert final_seen in (None, status)
