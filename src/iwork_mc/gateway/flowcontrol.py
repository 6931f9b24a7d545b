"""Per-app flow control (TOP code 7), a token bucket per app_key (pure, time passed in).

Buckets live in the gateway process: with N gateway processes an app may make
N × the configured rate.  The answer tells the caller how long to back off, in
TOP's words: ``This ban will last for N more seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FlowControl"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


class FlowControl:
    """``rate`` calls per second per key with bursts of ``burst``; a rate of 0 disables it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str, now: float) -> int:
        """Take one token for ``key``: 0 if admitted, else whole seconds to wait (≥ 1)."""
        if self.rate <= 0:
            return 0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated_at=now)
        # Concurrent calls may read the clock before awaiting and arrive here out of
        # order: time never runs backwards for a bucket.
        elapsed = max(0.0, now - bucket.updated_at)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.updated_at = max(bucket.updated_at, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))
