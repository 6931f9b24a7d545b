"""The circuit breaker (breaker.py): window, opening, probes, hysteresis; properties over any history."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc.breaker import Admission, BreakerPolicy, BreakerState, CircuitBreaker

POLICY = BreakerPolicy(
    window_s=10, min_calls=4, failure_ratio=0.5, slow_call_s=2, open_s=5, probes=2
)

LEGAL = {
    (BreakerState.CLOSED, BreakerState.OPEN),
    (BreakerState.OPEN, BreakerState.HALF_OPEN),
    (BreakerState.HALF_OPEN, BreakerState.OPEN),
    (BreakerState.HALF_OPEN, BreakerState.CLOSED),
}


def fail(breaker: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(now, ok=False, latency_s=0.01)


def succeed(breaker: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(now, ok=True, latency_s=0.01)


def test_a_breaker_opens_on_the_failure_share_over_enough_calls() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 3)
    assert BreakerState.CLOSED is breaker.state(100.0)  # 3 calls < min_calls
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0)
    succeed(breaker, 100.0, 3)
    fail(breaker, 100.5)
    assert BreakerState.CLOSED is breaker.state(100.5)  # 2 of 5 failed: 40 %
    assert Admission.SEND is breaker.admit(100.5)
    fail(breaker, 101.0)  # 3 of 6: 50 %
    assert BreakerState.OPEN is breaker.state(101.0)
    assert Admission.SKIP is breaker.admit(101.0)
    assert 1 == breaker.times_opened


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 3)
    fail(breaker, 111.0)  # the first three fell out of the 10 s window
    assert BreakerState.CLOSED is breaker.state(111.0)
    assert 1 == breaker.snapshot(111.0)["calls"]


def test_a_slow_success_counts_as_a_failure() -> None:
    breaker = CircuitBreaker(POLICY)
    for _ in range(4):
        breaker.record(100.0, ok=True, latency_s=2.5)
    assert BreakerState.OPEN is breaker.state(100.0)
    assert (4, 4) == (breaker.snapshot(100.0)["slow"], breaker.snapshot(100.0)["failures"])


def test_after_open_s_one_probe_at_a_time_and_two_successes_close_it() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 4)
    assert Admission.SKIP is breaker.admit(104.9)
    assert Admission.PROBE is breaker.admit(105.0)
    assert Admission.SKIP is breaker.admit(105.1)  # the probe is still out
    breaker.record(105.2, ok=True, latency_s=0.2, probe=True)
    assert BreakerState.HALF_OPEN is breaker.state(105.2)
    assert Admission.PROBE is breaker.admit(105.3)
    breaker.record(105.4, ok=True, latency_s=0.2, probe=True)
    assert BreakerState.CLOSED is breaker.state(105.4)
    assert 0 == breaker.snapshot(105.4)["calls"]  # closed with an empty window


def test_a_failed_probe_opens_the_breaker_again() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 4)
    assert Admission.PROBE is breaker.admit(105.0)
    breaker.record(105.5, ok=False, latency_s=0.1, probe=True)
    assert BreakerState.OPEN is breaker.state(105.5)
    assert 5.0 == breaker.reopens_in(105.5)
    assert 2 == breaker.times_opened


def test_a_probe_never_recorded_stops_blocking_after_open_s() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 4)
    assert Admission.PROBE is breaker.admit(105.0)
    assert Admission.SKIP is breaker.admit(109.9)
    assert Admission.PROBE is breaker.admit(110.0)


def test_sends_made_anyway_while_open_or_half_open_do_not_count() -> None:
    breaker = CircuitBreaker(POLICY)
    fail(breaker, 100.0, 4)
    succeed(breaker, 101.0, 10)
    assert BreakerState.OPEN is breaker.state(101.0)
    succeed(breaker, 105.0, 10)  # half-open now; not probes
    assert BreakerState.HALF_OPEN is breaker.state(105.0)


@pytest.mark.parametrize(
    "changes",
    [{"window_s": 0}, {"min_calls": 0}, {"probes": 0}, {"failure_ratio": 0.0},
     {"failure_ratio": 1.5}, {"slow_call_s": 0}, {"open_s": -1}],
)  # fmt: skip
def test_a_nonsense_policy_is_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**changes)  # type: ignore[arg-type]


# -- properties over any history ----------------------------------------------


@dataclass(frozen=True)
class Step:
    advance_s: float
    ok: bool
    latency_s: float


steps = st.lists(
    st.builds(
        Step,
        advance_s=st.floats(min_value=0, max_value=8, allow_nan=False),
        ok=st.booleans(),
        latency_s=st.floats(min_value=0, max_value=4, allow_nan=False),
    ),
    max_size=120,
)
policies = st.builds(
    BreakerPolicy,
    window_s=st.integers(min_value=1, max_value=30),
    min_calls=st.integers(min_value=1, max_value=10),
    failure_ratio=st.floats(min_value=0.05, max_value=1.0),
    slow_call_s=st.floats(min_value=0.5, max_value=5),
    open_s=st.floats(min_value=0.5, max_value=10),
    probes=st.integers(min_value=1, max_value=4),
)


def drive(policy: BreakerPolicy, history: list[Step]) -> list[tuple[BreakerState, Admission]]:
    """Play ``history`` as a worker does (admit, then record); the states and admissions seen."""
    breaker = CircuitBreaker(policy)
    now = 1_000.0
    seen = []
    for step in history:
        now += step.advance_s
        admission = breaker.admit(now)
        seen.append((breaker.state(now), admission))
        if admission is not Admission.SKIP:
            breaker.record(
                now, ok=step.ok, latency_s=step.latency_s, probe=admission is Admission.PROBE
            )
        seen.append((breaker.state(now), admission))
    return seen


@given(policies, steps)
def test_every_state_change_is_a_legal_edge(policy: BreakerPolicy, history: list[Step]) -> None:
    seen = drive(policy, history)
    states = [BreakerState.CLOSED] + [state for state, _ in seen]
    for before, after in itertools.pairwise(states):
        assert before is after or (before, after) in LEGAL


@given(policies, steps)
def test_only_closed_sends_freely_and_only_half_open_probes(
    policy: BreakerPolicy, history: list[Step]
) -> None:
    breaker = CircuitBreaker(policy)
    now = 1_000.0
    for step in history:
        now += step.advance_s
        before = breaker.state(now)
        admission = breaker.admit(now)
        assert (admission is Admission.SEND) == (before is BreakerState.CLOSED)
        if admission is Admission.PROBE:
            assert before is BreakerState.HALF_OPEN
        if admission is not Admission.SKIP:
            breaker.record(
                now, ok=step.ok, latency_s=step.latency_s, probe=admission is Admission.PROBE
            )


@given(policies, st.lists(st.floats(min_value=0, max_value=8, allow_nan=False), max_size=200))
def test_fast_successes_never_open_a_breaker(policy: BreakerPolicy, gaps: list[float]) -> None:
    breaker = CircuitBreaker(policy)
    now = 1_000.0
    for gap in gaps:
        now += gap
        breaker.record(now, ok=True, latency_s=policy.slow_call_s / 2)
        assert BreakerState.CLOSED is breaker.state(now)


@given(policies, st.integers(min_value=0, max_value=200))
def test_fewer_calls_than_min_calls_never_open_it(policy: BreakerPolicy, failures: int) -> None:
    breaker = CircuitBreaker(policy)
    fail(breaker, 1_000.0, min(failures, policy.min_calls - 1))
    assert BreakerState.CLOSED is breaker.state(1_000.0)


@given(policies, steps)
def test_an_open_breaker_lets_nothing_out_until_open_s_has_passed(
    policy: BreakerPolicy, history: list[Step]
) -> None:
    breaker = CircuitBreaker(policy)
    fail(breaker, 1_000.0, policy.min_calls)
    assert BreakerState.OPEN is breaker.state(1_000.0)
    now = 1_000.0
    for step in history:
        now += step.advance_s / 10
        admission = breaker.admit(now)
        if now - 1_000.0 < policy.open_s:
            assert Admission.SKIP is admission
        else:
            break


@given(policies, st.lists(st.booleans(), max_size=30))
def test_a_half_open_breaker_closes_only_after_probes_successes_in_a_row(
    policy: BreakerPolicy, outcomes: list[bool]
) -> None:
    """Hysteresis: closing needs ``probes`` consecutive good probes; one bad probe reopens."""
    breaker = CircuitBreaker(policy)
    fail(breaker, 0.0, policy.min_calls)
    now = 0.0
    run = 0
    for ok in outcomes:
        now += policy.open_s + 0.001  # long enough for any open breaker to half-open
        if breaker.state(now) is BreakerState.CLOSED:
            break
        assert Admission.PROBE is breaker.admit(now)
        breaker.record(now, ok=ok, latency_s=0.0, probe=True)
        run = run + 1 if ok else 0
        closed = breaker.state(now) is BreakerState.CLOSED
        assert closed == (run >= policy.probes)
        if not ok:
            assert BreakerState.OPEN is breaker.state(now)


@given(policies, steps)
def test_the_window_holds_at_most_window_s_buckets_and_its_sums_are_right(
    policy: BreakerPolicy, history: list[Step]
) -> None:
    """Memory is bounded by the window's length, whatever the traffic."""
    breaker = CircuitBreaker(policy)
    now = 1_000.0
    for step in history:
        now += step.advance_s
        breaker.record(now, ok=step.ok, latency_s=step.latency_s)
        assert len(breaker._buckets) <= policy.window_s + 1
        snapshot = breaker.snapshot(now)
        buckets = list(breaker._buckets)
        assert sum(b.calls for b in buckets) == snapshot["calls"]  # the running sums hold
        assert sum(b.failures for b in buckets) == snapshot["failures"]


def test_an_opening_from_another_worker_opens_a_closed_breaker_until_its_end() -> None:
    breaker = CircuitBreaker(POLICY)
    assert not breaker.open_until(100.0, 99.0)  # already over
    assert breaker.open_until(100.0, 103.0)
    assert (Admission.SKIP, 3.0) == (breaker.admit(100.0), breaker.reopens_in(100.0))
    assert not breaker.open_until(101.0, 120.0)  # open here already: its own timing stays
    assert Admission.PROBE is breaker.admit(103.0)
