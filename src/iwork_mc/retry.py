"""When to try a failed delivery again (pure, time passed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to ``base_s * 2**(n-1)``."""

    base_s: float = 2.0
    max_delay_s: float = 300.0
    max_attempts: int = 10

    def next_attempt_at_ms(
        self,
        attempts: int,
        now_ms: int,
        rng: random.Random,
        *,
        retry_after_s: float | None = None,
    ) -> int | None:
        """When to try again after ``attempts`` failed attempts; ``None``: give up.

        A peer's ``Retry-After`` (``retry_after_s``) can push the next try
        later, never earlier, and never past ``max_delay_s`` from now: a peer
        cannot park a message (or a callback) for longer than the policy allows.
        """
        if attempts >= self.max_attempts:
            return None
        # The exponent is capped: 2**1024 overflows a float, and 2**64 times any base
        # is past every sensible cap already.
        ceiling = min(self.max_delay_s, self.base_s * 2 ** min(64, max(0, attempts - 1)))
        # Half fixed, half random: spreads a burst of failures without retrying at once.
        delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
        at_ms = now_ms + int(delay * 1000)
        if retry_after_s is None:
            return at_ms
        asked_ms = now_ms + int(min(max(0.0, retry_after_s), self.max_delay_s) * 1000)
        return max(at_ms, asked_ms)
