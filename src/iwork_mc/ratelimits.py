"""Flow control's arithmetic: token buckets and the slices leased from them (pure).

Each app has one token bucket, kept in the store so that every gateway process
draws from the same one: it holds up to ``burst`` tokens and refills at
``per_second``.  A process does not take one token per call from the store
(a write per call); it leases a *slice* of :meth:`Rate.lease_size` tokens in
one write and spends it locally.  Tokens leave the shared bucket only through
leases, so in any window of ``T`` seconds the calls admitted by ``N``
processes are at most ``burst + per_second × T`` plus the tokens the
processes held when the window began: at most ``N × lease_size`` more
(docs/howto/flow-control.md).  Time is passed in, in epoch milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LEASE_WINDOW_S", "Bucket", "Grant", "Rate", "take"]

#: A slice is this many seconds of an app's rate (at least 1 token, at most its burst).
LEASE_WINDOW_S = 0.1


@dataclass(frozen=True, slots=True)
class Rate:
    """An app's allowance: ``per_second`` calls, bursts of ``burst``; 0 per second: no limit."""

    per_second: float
    burst: int

    @property
    def limited(self) -> bool:
        return self.per_second > 0

    @property
    def lease_size(self) -> int:
        """Tokens a process takes from the shared bucket at once."""
        return max(1, min(self.burst, math.ceil(self.per_second * LEASE_WINDOW_S)))


@dataclass(frozen=True, slots=True)
class Bucket:
    """The shared bucket of one app: tokens left at ``updated_at_ms``."""

    tokens: float
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class Grant:
    """The outcome of :func:`take`: tokens granted, the bucket after, and the wait if none."""

    granted: int
    bucket: Bucket
    #: Seconds until the bucket holds a whole token again (0 when tokens were granted).
    wait_s: float


def take(bucket: Bucket, want: int, rate: Rate, now_ms: int) -> Grant:
    """Refill ``bucket`` up to ``now_ms`` and take up to ``want`` whole tokens from it."""
    # Processes read their clocks before waiting for the store and may arrive out
    # of order: time never runs backwards for a bucket.
    elapsed_ms = max(0, now_ms - bucket.updated_at_ms)
    tokens = min(float(rate.burst), bucket.tokens + elapsed_ms * rate.per_second / 1000)
    granted = max(0, min(want, math.floor(tokens)))
    tokens -= granted
    wait_s = 0.0 if granted else (1 - tokens) / rate.per_second
    return Grant(granted, Bucket(tokens, max(bucket.updated_at_ms, now_ms)), wait_s)
