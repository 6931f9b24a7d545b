"""Channel health: a sliding window of outcomes drives a circuit breaker (pure, time passed in).

Theory of operation.  Every send through a channel ends in an *outcome*: the
carrier answered (accepted or refused the message: the channel works) or it
did not (a transient error, a timeout, no session, a crash).  An answer slower
than ``slow_call_s`` counts as a failure too: a channel that takes half a
minute per message is not one to send through.

::

              failure share >= failure_ratio
              over >= min_calls in window_s
    CLOSED ─────────────────────────────────▶ OPEN
      ▲                                       │  ▲
      │ ``probes`` probes in a row succeed    │  │ a probe fails
      │                                       ▼  │
      └──────────────────────────────────── HALF_OPEN
                                  (after open_s: one probe at a time)

*Closed*: every message may use the channel; outcomes fill a window of
``window_s`` seconds kept as one-second buckets (memory is bounded by the
window's length, not by the traffic).  *Open*: the channel is skipped (the
worker sends its messages to the next channel of their route) for ``open_s``
seconds, and outcomes of sends made anyway (a message with nowhere else to go)
are not counted.  *Half-open*: one message at a time is let through as a
*probe*; ``probes`` successes in a row close the breaker, one failure opens it
again for another ``open_s``.

Hysteresis: the breaker opens on a failure *share* over a minimum number of
calls, but closes only after consecutive probe successes, and closes with an
empty window, so it needs ``min_calls`` fresh outcomes before it can open
again.  A flapping channel therefore cannot toggle on every message.

This module decides; it does not send, sleep or read a clock.  The worker
(``worker.py``) asks :meth:`CircuitBreaker.admit` before each send and tells
:meth:`CircuitBreaker.record` what happened.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Admission", "BreakerPolicy", "BreakerState", "ChannelOpening", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"  #: Healthy: every message may use the channel
    OPEN = "open"  #: Failing: messages go to the next channel of their route
    HALF_OPEN = "half_open"  #: Open long enough: one probe at a time tests the channel


class Admission(StrEnum):
    SEND = "send"  #: Send as usual (the breaker is closed)
    PROBE = "probe"  #: Send as the half-open breaker's probe; record it with ``probe=True``
    SKIP = "skip"  #: Do not send through this channel now


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """When a channel's breaker opens and how it comes back.

    Args:
        window_s: Length of the sliding window of outcomes, in seconds.
        min_calls: Outcomes the window must hold before the breaker may open.
        failure_ratio: Share of failed (or slow) outcomes at which it opens (0 < r <= 1).
        slow_call_s: A send that took this long counts as a failure.
        open_s: How long an open breaker skips the channel before probing it.
        probes: Successful probes in a row that close a half-open breaker.
    """

    window_s: int = 60
    min_calls: int = 10
    failure_ratio: float = 0.5
    slow_call_s: float = 30.0
    open_s: float = 30.0
    probes: int = 3

    def __post_init__(self) -> None:
        if self.window_s < 1 or self.min_calls < 1 or self.probes < 1:
            raise ValueError("window_s, min_calls and probes must be at least 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.slow_call_s <= 0 or self.open_s <= 0:
            raise ValueError("slow_call_s and open_s must be positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelOpening:
    """A breaker that opened in one worker, shared through the store with every worker."""

    channel: str
    opened_at_ms: int
    open_until_ms: int
    opened_by: str  #: The worker id


@dataclass(slots=True)
class _Bucket:
    second: int
    calls: int = 0
    failures: int = 0
    slow: int = 0
    latency_s: float = 0.0


class CircuitBreaker:
    """One channel's breaker.  Every method takes ``now`` (seconds, any monotonic origin)."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._state = BreakerState.CLOSED
        self._buckets: deque[_Bucket] = deque()
        # Running sums over the buckets, so recording an outcome costs O(1).
        self._calls = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probe_since: float | None = None  # a probe is out since then
        self._probe_successes = 0
        #: How many times the breaker opened since it was made.
        self.times_opened = 0

    def state(self, now: float) -> BreakerState:
        """The state at ``now``: an open breaker turns half-open once ``open_s`` has passed."""
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.policy.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_since = None
            self._probe_successes = 0
        return self._state

    def admit(self, now: float) -> Admission:
        """May a message be sent through the channel now, and as what?

        A half-open breaker lets one probe out at a time; a probe whose outcome
        was never recorded stops blocking the next one after ``open_s``.
        """
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return Admission.SEND
        if state is BreakerState.OPEN:
            return Admission.SKIP
        if self._probe_since is not None and now - self._probe_since < self.policy.open_s:
            return Admission.SKIP
        self._probe_since = now
        return Admission.PROBE

    def open_until(self, now: float, until: float) -> bool:
        """Another worker opened this channel until ``until``: skip it here too.

        A breaker open here already keeps its own timing; a closed or half-open
        one opens so that it turns half-open at ``until`` and probes on its own.
        Returns whether the state changed.
        """
        if until <= now or self.state(now) is BreakerState.OPEN:
            return False
        self._open(now)
        self._opened_at = until - self.policy.open_s
        return True

    def reopens_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe out (0 when not open)."""
        if self.state(now) is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.policy.open_s - (now - self._opened_at))

    def record(self, now: float, *, ok: bool, latency_s: float, probe: bool = False) -> None:
        """Count one outcome: ``ok`` when the carrier answered, ``latency_s`` the send's time."""
        failed = not ok or latency_s >= self.policy.slow_call_s
        state = self.state(now)
        if state is BreakerState.HALF_OPEN:
            if not probe:
                return  # only probes speak for a half-open channel
            self._probe_since = None
            if failed:
                self._open(now)
                return
            self._probe_successes += 1
            if self._probe_successes >= self.policy.probes:
                self._state = BreakerState.CLOSED
                self._buckets.clear()
                self._calls = self._failures = 0
            return
        if state is BreakerState.OPEN:
            return  # sends made anyway while open say nothing new
        bucket = self._bucket(now)
        bucket.calls += 1
        bucket.failures += failed
        bucket.slow += latency_s >= self.policy.slow_call_s
        bucket.latency_s += max(0.0, latency_s)
        self._calls += 1
        self._failures += failed
        if (
            self._calls >= self.policy.min_calls
            and self._failures >= self.policy.failure_ratio * self._calls
        ):
            self._open(now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """What /healthz and ``GET /v1/channels`` show of the breaker (JSON-ready)."""
        self._prune(now)
        calls, failures = self._calls, self._failures
        latency = sum(b.latency_s for b in self._buckets)
        state = self.state(now)
        return {
            "state": str(state),
            "window_s": self.policy.window_s,
            "calls": calls,
            "failures": failures,
            "slow": sum(b.slow for b in self._buckets),
            "failure_ratio": round(failures / calls, 3) if calls else 0.0,
            "mean_latency_ms": round(latency / calls * 1000, 1) if calls else None,
            "reopens_in_s": round(self.reopens_in(now), 3),
            "probe_successes": self._probe_successes if state is BreakerState.HALF_OPEN else 0,
            "times_opened": self.times_opened,
        }

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probe_since = None
        self._probe_successes = 0
        self.times_opened += 1

    def _bucket(self, now: float) -> _Bucket:
        self._prune(now)
        second = math.floor(now)
        if not self._buckets or self._buckets[-1].second < second:
            self._buckets.append(_Bucket(second))
        # A clock that stepped back adds to the newest bucket rather than reorder the window.
        return self._buckets[-1]

    def _prune(self, now: float) -> None:
        oldest = math.floor(now) - self.policy.window_s
        while self._buckets and self._buckets[0].second <= oldest:
            gone = self._buckets.popleft()
            self._calls -= gone.calls
            self._failures -= gone.failures
