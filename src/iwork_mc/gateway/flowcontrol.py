"""Per-app flow control shared by every gateway process on one store.

Each app's token bucket lives in the store (:mod:`iwork_mc.ratelimits` has
the arithmetic and the overshoot bound).  This process leases a slice of an
app's tokens in one store write and admits calls from the slice without a
store round trip; only when the slice is spent does it lease again.  When the
shared bucket is empty the store says how long until the next token, and
until then this process refuses the app's calls locally, so a flooding app
costs the store one write per refusal period, not one per call.

Only authenticated apps reach flow control, so this holds at most one small
entry per app.  The answer says how long to back off, in whole seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from iwork_mc.apps import App
from iwork_mc.ratelimits import Rate
from iwork_mc.store.base import Store, StoreUnavailable

__all__ = ["FlowControl"]


@dataclass(slots=True)
class _Slice:
    """Tokens this process leased for one app, or when it may ask again."""

    tokens: int = 0
    refused_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Why the last lease failed (None: it did not), and when (monotonic seconds).
    failure: StoreUnavailable | None = None
    failed_at: float = 0.0


class FlowControl:
    """Admits calls per app against the app's rate, or the defaults ``rate``/``burst``."""

    def __init__(self, store: Store, rate: float, burst: int) -> None:
        self._store = store
        self.default = Rate(rate, max(1, burst))
        self._slices: dict[str, _Slice] = {}

    def rate_of(self, app: App) -> Rate:
        """The app's own rate where the operator set one, else the defaults."""
        return Rate(
            self.default.per_second if app.rate_limit is None else app.rate_limit,
            self.default.burst if app.rate_burst is None else max(1, app.rate_burst),
        )

    async def admit(self, app: App, now: float) -> int:
        """Take one token for ``app``: 0 if admitted, else whole seconds to wait (≥ 1)."""
        rate = self.rate_of(app)
        if not rate.limited:
            return 0
        held = self._slices.get(app.app_key)
        if held is None:
            held = self._slices[app.app_key] = _Slice()
        if held.tokens == 0 and now >= held.refused_until:
            waiting_since = time.monotonic()
            async with held.lock:
                # Concurrent calls wait for one lease instead of each asking the store;
                # when the lease they waited for failed, they are answered at once, so
                # an outage costs each call one store timeout, not one per caller ahead.
                if held.failure is not None and held.failed_at >= waiting_since:
                    raise held.failure
                if held.tokens == 0 and now >= held.refused_until:
                    try:
                        grant = await self._store.take_tokens(
                            app.app_key, rate.lease_size, rate, int(now * 1000)
                        )
                    except StoreUnavailable as exc:
                        held.failure, held.failed_at = exc, time.monotonic()
                        raise
                    held.failure = None
                    held.tokens = grant.granted
                    held.refused_until = now + grant.wait_s
        if held.tokens > 0:
            held.tokens -= 1
            return 0
        return max(1, math.ceil(held.refused_until - now))
