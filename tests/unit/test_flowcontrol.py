"""Flow control's arithmetic (code 7 / 429): a shared token bucket and the slices leased from it."""

from __future__ import annotations

import pytest

from iwork_mc.ratelimits import Bucket, Grant, Rate, take


def take_one(bucket: Bucket, rate: Rate, now_ms: int) -> tuple[Bucket, int, float]:
    grant: Grant = take(bucket, 1, rate, now_ms)
    return grant.bucket, grant.granted, grant.wait_s


def test_bursts_then_waits() -> None:
    """An app may burst, then waits for the next token (half a second at 2 per second)."""
    rate = Rate(per_second=2.0, burst=3)
    bucket = Bucket(tokens=3.0, updated_at_ms=100_000)
    granted = []
    for _ in range(4):
        bucket, got, wait = take_one(bucket, rate, 100_000)
        granted.append(got)
    assert [1, 1, 1, 0] == granted
    assert 0.5 == wait
    assert 1 == take_one(bucket, rate, 100_600)[1]


def test_out_of_order_clock_readings_take_no_extra_tokens() -> None:
    """A lease that read the clock earlier but arrives later neither refills nor rewinds."""
    rate = Rate(per_second=100.0, burst=100)
    bucket = take(Bucket(0.0, 10_000), 1, rate, 10_000).bucket
    assert 10_000 == bucket.updated_at_ms
    for _ in range(50):
        grant = take(bucket, 1, rate, 9_000)  # a stale reading from a concurrent call
        assert (0, 10_000) == (grant.granted, grant.bucket.updated_at_ms)


def test_a_lease_takes_whole_tokens_up_to_what_is_left() -> None:
    rate = Rate(per_second=10.0, burst=20)
    grant = take(Bucket(7.5, 0), 10, rate, 0)
    assert (7, 0.5, 0.0) == (grant.granted, grant.bucket.tokens, grant.wait_s)


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    grant = take(Bucket(0.0, 0), 1_000, Rate(per_second=10.0, burst=20), 3_600_000)
    assert 20 == grant.granted


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(Rate(0.5, 2), 1), (Rate(50, 100), 5), (Rate(1e6, 1_000_000), 100_000), (Rate(1e6, 10), 10)],
)
def test_a_slice_is_a_tenth_of_a_second_of_the_rate_within_the_burst(
    rate: Rate, expected: int
) -> None:
    assert expected == rate.lease_size


def test_zero_rate_is_no_limit() -> None:
    assert not Rate(0, 1).limited
