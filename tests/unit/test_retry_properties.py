"""Properties of RetryPolicy (retry.py): exponential backoff with half-fixed, half-random jitter.

The ceiling of attempt n is ``min(max_delay_s, base_s * 2**(n-1))``; the delay is
drawn from ``[ceiling/2, ceiling]``; after ``max_attempts`` failed attempts the
policy gives up.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from iwork_mc.retry import RetryPolicy

NOW_MS = 1_700_000_000_000

policies = st.builds(
    RetryPolicy,
    base_s=st.floats(min_value=0.001, max_value=600, allow_nan=False),
    max_delay_s=st.floats(min_value=0.001, max_value=86_400, allow_nan=False),
    max_attempts=st.integers(min_value=1, max_value=50),
)
nows = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to the year 2100
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def ceiling_ms(policy: RetryPolicy, attempts: int) -> float:
    return min(policy.max_delay_s, policy.base_s * 2 ** max(0, attempts - 1)) * 1000


class Extreme(random.Random):
    """A random source whose ``uniform`` always returns one end of its range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@given(policies, st.data(), nows, seeds)
def test_the_delay_lies_between_half_the_ceiling_and_the_ceiling(
    policy: RetryPolicy, data: st.DataObject, now_ms: int, seed: int
) -> None:
    """Every retry waits at least ceiling/2 and at most the ceiling (to the millisecond)."""
    attempts = data.draw(st.integers(min_value=0, max_value=policy.max_attempts - 1))
    due = policy.next_attempt_at_ms(attempts, now_ms, random.Random(seed))
    assert due is not None
    ceiling = ceiling_ms(policy, attempts)
    assert ceiling / 2 - 1 <= due - now_ms <= ceiling


@given(policies, st.data(), nows)
def test_both_ends_of_the_jitter_stay_within_the_ceiling(
    policy: RetryPolicy, data: st.DataObject, now_ms: int
) -> None:
    """The luckiest and unluckiest draws land on ceiling/2 and the ceiling."""
    attempts = data.draw(st.integers(min_value=0, max_value=policy.max_attempts - 1))
    ceiling = ceiling_ms(policy, attempts)
    low = policy.next_attempt_at_ms(attempts, now_ms, Extreme(high=False))
    high = policy.next_attempt_at_ms(attempts, now_ms, Extreme(high=True))
    assert low is not None and high is not None
    assert ceiling / 2 - 1 <= low - now_ms <= ceiling / 2
    assert ceiling - 1 <= high - now_ms <= ceiling


@given(policies, st.integers(min_value=0, max_value=200))
def test_ceilings_never_decrease_with_attempts(policy: RetryPolicy, attempts: int) -> None:
    """A later attempt never has a smaller ceiling than an earlier one."""
    assert ceiling_ms(policy, attempts) <= ceiling_ms(policy, attempts + 1)


@given(policies, st.data(), nows)
def test_the_longest_wait_never_decreases_with_attempts(
    policy: RetryPolicy, data: st.DataObject, now_ms: int
) -> None:
    """Measured through the policy itself: the top of the jitter range grows or stays."""
    attempts = data.draw(st.integers(min_value=0, max_value=max(0, policy.max_attempts - 2)))
    first = policy.next_attempt_at_ms(attempts, now_ms, Extreme(high=True))
    second = policy.next_attempt_at_ms(attempts + 1, now_ms, Extreme(high=True))
    if second is not None:
        assert first is not None
        assert first <= second


@given(policies, nows)
def test_no_ceiling_exceeds_max_delay(policy: RetryPolicy, now_ms: int) -> None:
    """However many attempts failed, no retry waits longer than max_delay_s."""
    due = policy.next_attempt_at_ms(policy.max_attempts - 1, now_ms, Extreme(high=True))
    assert due is not None
    assert due - now_ms <= policy.max_delay_s * 1000


@given(policies, nows, seeds)
def test_it_gives_up_exactly_at_max_attempts(policy: RetryPolicy, now_ms: int, seed: int) -> None:
    """Attempt max_attempts-1 still gets a retry; attempt max_attempts does not."""
    rng = random.Random(seed)
    assert policy.next_attempt_at_ms(policy.max_attempts - 1, now_ms, rng) is not None
    assert policy.next_attempt_at_ms(policy.max_attempts, now_ms, rng) is None


@given(policies, st.integers(min_value=0, max_value=1000), nows, seeds)
def test_it_never_retries_after_giving_up(
    policy: RetryPolicy, extra: int, now_ms: int, seed: int
) -> None:
    """Any attempt count at or beyond max_attempts is given up on."""
    attempts = policy.max_attempts + extra
    assert policy.next_attempt_at_ms(attempts, now_ms, random.Random(seed)) is None


@given(policies, st.integers(min_value=0, max_value=60), nows, seeds)
def test_a_retry_is_never_scheduled_in_the_past(
    policy: RetryPolicy, attempts: int, now_ms: int, seed: int
) -> None:
    """The next attempt is due at or after now, never before."""
    due = policy.next_attempt_at_ms(attempts, now_ms, random.Random(seed))
    assert due is None or due >= now_ms


def test_the_default_policy_doubles_from_two_seconds() -> None:
    """Defaults: ceilings 2, 4, 8 ... seconds up to 300, ten attempts."""
    policy = RetryPolicy()
    highs = [
        policy.next_attempt_at_ms(attempts, NOW_MS, Extreme(high=True)) for attempts in range(1, 10)
    ]
    assert [2, 4, 8, 16, 32, 64, 128, 256, 300] == [
        (due - NOW_MS) // 1000 for due in highs if due is not None
    ]
    assert policy.next_attempt_at_ms(10, NOW_MS, random.Random(0)) is None


def test_a_first_failure_counts_as_attempt_one() -> None:
    """Zero and one failed attempts share the base ceiling (no half-base wait)."""
    policy = RetryPolicy(base_s=4)
    assert policy.next_attempt_at_ms(0, NOW_MS, Extreme(True)) == policy.next_attempt_at_ms(
        1, NOW_MS, Extreme(True)
    )


def test_the_same_seed_gives_the_same_schedule() -> None:
    """The jitter comes only from the random source passed in."""
    policy = RetryPolicy()
    first = [policy.next_attempt_at_ms(n, NOW_MS, random.Random(3)) for n in range(10)]
    again = [policy.next_attempt_at_ms(n, NOW_MS, random.Random(3)) for n in range(10)]
    assert first == again
