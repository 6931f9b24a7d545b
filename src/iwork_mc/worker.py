"""The dispatcher: claim due messages, check, route, send through a channel, record.

Each round leases up to ``concurrency`` due messages (``queued`` and due, or
``sending`` under an expired lease, i.e. a crashed worker's), sends them
concurrently, and records each outcome with a guarded transition: a worker
that lost its lease (it stalled past the lease) cannot overwrite the result of
the worker that took over, and the late result is noted in the timeline so a
possible duplicate is visible, never silent.

Retries are scheduled in the store (``queued`` with a later ``due_at``), never
held in memory, so a restart loses none.

Before each attempt: a message past its validity expires; a receiver who
opted out since the message was accepted gets nothing (``rejected``).  The
message's route (routing.py) names its channels in order; retries are counted
per channel, and a permanent failure or retries run out on one channel fall
back to the next, each step written to the timeline.

Two channel answers are not plain failures.  ``Unavailable`` (nothing could be
tried: no SMPP session bound) gives the message back without counting the
attempt, so an outage only delays it (up to its validity).  ``InDoubt`` (sent,
never answered) counts as an attempt; with none left the message is
``submitted`` and the copies already out decide it by their receipts.

Each channel has a circuit breaker (breaker.py) fed with the outcome and
latency of every send.  A message whose channel's breaker is open moves at once
to the next channel of its route (``channel_skipped`` on its timeline, no
attempt counted) when a later channel is not open; with nowhere better to go it
is tried anyway, as without a breaker.  A half-open breaker lets one message at
a time through as a probe (``probe: true`` on that attempt's entries).  Each
worker counts its own sends; an opening is shared through the store
(:meth:`Worker.sync_breakers`, about once a second), so one worker's finding
moves every worker's traffic, and each probes the channel on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from iwork_mc import metrics, tracing
from iwork_mc.breaker import (
    Admission,
    BreakerPolicy,
    BreakerState,
    ChannelOpening,
    CircuitBreaker,
)
from iwork_mc.channels.base import (
    Channel,
    Delivered,
    InDoubt,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
    Unavailable,
)
from iwork_mc.messages import Message, MessageStatus
from iwork_mc.policies import QuietHours
from iwork_mc.privacy import mask_digits, mask_phone
from iwork_mc.retention import EndedSelection, RetentionPolicy
from iwork_mc.retry import RetryPolicy
from iwork_mc.routing import DEFAULT_ROUTE, Route, choose_route
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError, StoreUnavailable
from iwork_mc.templates import default_text

__all__ = ["STORE_RETRY_S", "Worker", "default_worker_id"]

log = structlog.get_logger("iwork_mc.worker")

#: The log level of each outcome a worker records (``delivery_<kind>`` events); a
#: submit or a delivery is the ``message_sent`` line.
_STEP_LOG_LEVELS = {
    "failed": logging.WARNING,
    "expired": logging.WARNING,
    "fallback": logging.WARNING,
    "in_doubt": logging.WARNING,
    "retry_scheduled": logging.INFO,
    "rejected": logging.INFO,
}

#: How long the worker pauses after the store failed before it claims again.
STORE_RETRY_S = 0.5
#: Part of the lease during which a result is still recorded through a store outage.
LEASE_MARGIN = 0.8


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**4):04x}"


class Worker:
    def __init__(
        self,
        store: Store,
        channel: Channel | Mapping[str, Channel],
        *,
        routes: Sequence[Route] = (),
        worker_id: str | None = None,
        concurrency: int = 16,
        lease_ms: int = 60_000,
        poll_interval: float = 0.2,
        retry: RetryPolicy | None = None,
        receipt_wait_ms: int = 3_600_000,
        sweep_interval: float = 30.0,
        quiet: QuietHours | None = None,
        retention: RetentionPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        breaker: BreakerPolicy | None = None,
        breaker_sync_s: float = 1.0,
    ) -> None:
        self.store = store
        #: The named channels; a single channel is the one route ``default``.
        self.channels: dict[str, Channel] = (
            dict(channel) if isinstance(channel, Mapping) else {channel.name: channel}
        )
        self.routes = tuple(routes) or (Route(name=DEFAULT_ROUTE, channels=tuple(self.channels)),)
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.poll_interval = poll_interval
        self.retry = retry or RetryPolicy()
        #: How long past its validity a submitted message waits for its receipt.
        self.receipt_wait_ms = receipt_wait_ms
        self.sweep_interval = sweep_interval
        #: Retries of non-urgent messages that fall in quiet hours wait for their end.
        self.quiet = quiet
        #: What the periodic sweep redacts and deletes; ``None``: nothing.
        self.retention = retention
        self._clock = clock
        self._rng = rng or random.Random()
        #: When each message in hand must have its result recorded by (monotonic seconds).
        self._lease_ends: dict[int, float] = {}
        #: Each channel's circuit breaker, fed by this process's sends.
        self.breakers = {name: CircuitBreaker(breaker) for name in self.channels}
        #: How often breaker openings are shared with the other workers of the store.
        self.breaker_sync_s = breaker_sync_s
        # Per channel, the opening (``times_opened``) already in the store.
        self._shared: dict[str, int] = {}
        # A breaker changed state here: share it at the next turn of the loop.
        self._breaker_changed = False

    async def open_channels(self) -> None:
        for channel in self.channels.values():
            await channel.open()

    async def close_channels(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    def health(self) -> dict[str, Any]:
        """What /healthz shows: one channel's health, or each named channel's."""
        if len(self.channels) == 1:
            return next(iter(self.channels.values())).health()
        return {name: channel.health() for name, channel in self.channels.items()}

    def breaker_states(self) -> dict[str, dict[str, Any]]:
        """Each channel's breaker, as /healthz and ``GET /v1/channels`` show it."""
        now = self._clock()
        return {name: breaker.snapshot(now) for name, breaker in self.breakers.items()}

    async def sync_breakers(self) -> None:
        """Share this worker's breaker openings through the store, and adopt the others'.

        A new opening here is written (the later opening of a channel wins); a
        breaker closed here by its probes ends the shared opening; an opening
        another worker wrote, still running, opens the breaker here too, until
        its end (then this worker probes on its own).
        """
        now = self._clock()
        now_ms = int(now * 1000)
        for name, breaker in self.breakers.items():
            state = breaker.state(now)
            if state is BreakerState.OPEN and self._shared.get(name) != breaker.times_opened:
                until_ms = now_ms + int(breaker.reopens_in(now) * 1000)
                await self.store.open_channel(
                    ChannelOpening(
                        channel=name, opened_at_ms=now_ms, open_until_ms=until_ms,
                        opened_by=self.worker_id,
                    )
                )  # fmt: skip
                self._shared[name] = breaker.times_opened
            elif state is BreakerState.CLOSED and name in self._shared:
                await self.store.close_channel(name, closed_at_ms=now_ms)
                del self._shared[name]
        for opening in await self.store.open_channels(now_ms=now_ms):
            adopter = self.breakers.get(opening.channel)
            if opening.opened_by == self.worker_id or adopter is None:
                continue
            if adopter.open_until(now, opening.open_until_ms / 1000):
                # Theirs: marked as shared so that it is not written back.
                self._shared[opening.channel] = adopter.times_opened
                log.warning(
                    "channel_breaker", channel=opening.channel, state="open",
                    opened_by=opening.opened_by,
                )  # fmt: skip

    def channels_ready(self) -> dict[str, bool]:
        """What /readyz checks: whether each named channel could send now."""
        return {name: channel.ready() for name, channel in self.channels.items()}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many messages were claimed."""
        claimed = await self.store.claim_due(
            worker_id=self.worker_id,
            now_ms=self._now_ms(),
            lease_ms=self.lease_ms,
            limit=self.concurrency,
        )
        if claimed:
            await asyncio.gather(*(self._deliver(message) for message in claimed))
        return len(claimed)

    async def serve(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; what is in flight is finished, never abandoned.

        Up to ``concurrency`` messages are in flight at once, and a free slot is
        refilled as soon as one finishes (no batch waits for its slowest member).
        """
        log.info("worker_started", worker_id=self.worker_id, channels=sorted(self.channels))
        in_flight: set[asyncio.Task[None]] = set()
        slot_freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slot_freed.set()
            error = None if task.cancelled() else task.exception()
            if isinstance(error, StoreError):
                # The store failed while recording: the lease will expire and the
                # message will be claimed again; nothing is lost.
                outage.log_failure(log, "delivery_not_recorded", error)
            elif error is not None:
                log.error("delivery_crashed", error=type(error).__name__)

        store_failed = False
        next_sweep = next_sync = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sync or self._breaker_changed:
                next_sync = time.monotonic() + self.breaker_sync_s
                self._breaker_changed = False
                try:
                    await self.sync_breakers()
                except StoreError as exc:
                    outage.log_failure(log, "breaker_sync_failed", exc, worker_id=self.worker_id)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_interval
                try:
                    await self.expire_overdue()
                    await self.apply_retention()
                except StoreError as exc:
                    outage.log_failure(log, "sweep_failed", exc, worker_id=self.worker_id)
            slot_freed.clear()  # before counting, so a finish from here on is not missed
            free = self.concurrency - len(in_flight)
            claimed: list[Message] = []
            # Claim in batches (a quarter of the slots at least): one store round
            # trip per freed slot would cost more than the wait.
            if free > 0 and (free >= max(1, self.concurrency // 4) or not in_flight):
                try:
                    claimed = await self.store.claim_due(
                        worker_id=self.worker_id, now_ms=self._now_ms(),
                        lease_ms=self.lease_ms, limit=free,
                    )  # fmt: skip
                    store_failed = False
                except StoreError as exc:
                    store_failed = True
                    outage.log_failure(log, "claim_failed", exc, worker_id=self.worker_id)
            for message in claimed:
                task = asyncio.create_task(self._deliver(message))
                in_flight.add(task)
                task.add_done_callback(finished)
            if claimed and len(claimed) == free:
                continue  # more may be due: claim again as soon as a slot frees
            # No growing backoff after a store failure: each failed claim already
            # waited up to the store's timeout, and delivery must resume within a
            # second of the database's return.
            pause = max(self.poll_interval, STORE_RETRY_S) if store_failed else self.poll_interval
            waiters = [asyncio.ensure_future(stop.wait())]
            if in_flight:
                waiters.append(asyncio.ensure_future(slot_freed.wait()))
            _, pending = await asyncio.wait(
                waiters, timeout=pause, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        log.info("worker_stopped", worker_id=self.worker_id)

    async def expire_overdue(self, limit: int = 500) -> int:
        """Expire submitted messages whose receipt never came; returns how many.

        A message is overdue ``receipt_wait_ms`` after its validity ended.  The
        transition is guarded, so a receipt recorded meanwhile wins.
        """
        now_ms = self._now_ms()
        overdue = await self.store.overdue_submissions(
            before_ms=now_ms - self.receipt_wait_ms, limit=limit
        )
        expired = 0
        for message_id in overdue:
            moved = await self.store.transition(
                message_id,
                to=MessageStatus.EXPIRED,
                now_ms=now_ms,
                kind="expired",
                detail={"reason": "no delivery receipt"},
                error="no delivery receipt within the validity period",
            )
            if moved:
                expired += 1
        if expired:
            metrics.DELIVERY_STEPS.labels("", "expired").inc(expired)
            log.warning("receipts_overdue", worker_id=self.worker_id, expired=expired)
        return expired

    async def apply_retention(self, max_batches: int = 20) -> tuple[int, int]:
        """Redact, then delete, what the retention policy says is due; ``(redacted, deleted)``.

        Each batch is one bounded transaction; at most ``max_batches`` of each
        per sweep, so a large backlog is worked off over several sweeps
        without starving delivery.  Several workers may sweep at once: a
        message is redacted or deleted once.
        """
        policy = self.retention
        if policy is None or not policy.active:
            return 0, 0
        now_ms = self._now_ms()
        redacted = deleted = 0
        redact_before = policy.redact_before_ms(now_ms)
        if redact_before is not None:
            for _ in range(max_batches):
                done = await self.store.redact_ended(
                    ended_before_ms=redact_before, now_ms=now_ms, limit=policy.batch,
                    by="retention",
                )  # fmt: skip
                redacted += done
                if done < policy.batch:
                    break
        delete_before = policy.delete_before_ms(now_ms)
        if delete_before is not None:
            selection = EndedSelection(ended_before_ms=delete_before)
            for _ in range(max_batches):
                done = await self.store.delete_ended(selection, limit=policy.batch)
                deleted += done
                if done < policy.batch:
                    break
            # Receipts that never matched a message name a handset too: they go as old.
            for _ in range(max_batches):
                dropped = await self.store.drop_unmatched_receipts(
                    received_before_ms=delete_before, limit=policy.batch
                )
                if dropped < policy.batch:
                    break
        if redacted or deleted:
            log.info("retention_applied", worker_id=self.worker_id, redacted=redacted,
                     deleted=deleted)  # fmt: skip
        return redacted, deleted

    async def _deliver(self, message: Message) -> None:
        # Results are recorded through a store outage until shortly before the lease
        # ends (see _record); past that, another worker may own the message.
        self._lease_ends[message.id] = time.monotonic() + self.lease_ms / 1000 * LEASE_MARGIN
        try:
            await self._deliver_leased(message)
        finally:
            self._lease_ends.pop(message.id, None)

    async def _deliver_leased(self, message: Message) -> None:
        if not tracing.enabled():
            await self._attempt(message)
            return
        attributes = {"iwork_mc.message_id": message.id, "iwork_mc.attempt": message.attempts}
        with tracing.span("deliver", parent=message.trace_parent, attributes=attributes):
            await self._attempt(message)

    async def _attempt(self, message: Message) -> None:
        now_ms = self._now_ms()
        if message.expires_at_ms is not None and now_ms >= message.expires_at_ms:
            await self._record(
                message, MessageStatus.EXPIRED, "expired", {},
                error="the validity period ended before delivery",
            )  # fmt: skip
            return
        if message.receiver_opted_out:
            await self._record(
                message, MessageStatus.REJECTED, "rejected", {},
                error="the receiver opted out after the message was accepted",
            )  # fmt: skip
            return
        route = choose_route(self.routes, message.event.mobile_receiver, message.template)
        order = route.order_for(message.id) if route else ()
        step = message.route_step
        channel = self.channels.get(order[step]) if 0 <= step < len(order) else None
        if route is None or channel is None:
            await self._record(
                message, MessageStatus.FAILED, "failed", {"route": route and route.name},
                error="no route or channel for this message (the configuration changed?)",
            )  # fmt: skip
            return
        where: dict[str, Any] = {"channel": channel.name, "route": route.name, "step": step}
        if route.weights:
            where["split"] = {
                "bucket": route.split_bucket(message.id),
                "weights": dict(zip(route.channels, route.weights, strict=True)),
            }
        now = self._clock()
        admission = self.breakers[channel.name].admit(now)
        if admission is Admission.SKIP:
            healthier = next(
                (i for i in range(step + 1, len(order)) if self._not_open(order[i], now)), None
            )
            if healthier is not None:
                await self._skip(message, order, where, now)
                return
            # Every later channel is open too: skipping would only make the message
            # wait, so it is tried here, with its retries, as without a breaker.
            where["breaker"] = str(self.breakers[channel.name].state(now))
        elif admission is Admission.PROBE:
            where["probe"] = True
        text = message.text or default_text(message.event)
        try:
            result = await self._send(channel, message, text, probe=admission is Admission.PROBE)
        except PermanentChannelError as exc:
            await self._fall_back_or_fail(message, order, where, exc.reason)
        except InDoubt as exc:
            await self._in_doubt(message, where, exc)
        except Unavailable as exc:
            await self._wait_for_channel(message, where, exc)
        except TransientChannelError as exc:
            await self._retry_or_fall_back(
                message, order, where, exc.reason, retry_after_s=exc.retry_after_s
            )
        except Exception as exc:
            log.exception("channel_crashed", message_id=message.id, channel=channel.name)
            reason = f"channel error: {type(exc).__name__}"
            await self._retry_or_fall_back(message, order, where, reason)
        else:
            await self._record_result(message, where, result)

    def _not_open(self, channel: str, now: float) -> bool:
        breaker = self.breakers.get(channel)
        return breaker is not None and breaker.state(now) is not BreakerState.OPEN

    async def _send(
        self, channel: Channel, message: Message, text: str, *, probe: bool
    ) -> SendResult:
        """``channel.send``, its outcome and latency told to the channel's breaker."""
        breaker = self.breakers[channel.name]
        started = time.perf_counter()
        answered = False
        try:
            result = await channel.send(message, text)
            answered = True
            return result
        except PermanentChannelError:
            answered = True  # the carrier answered: the channel works, this message does not
            raise
        finally:
            now = self._clock()
            before = breaker.state(now)  # just before: only the send that changes it logs
            breaker.record(now, ok=answered, latency_s=time.perf_counter() - started, probe=probe)
            after = breaker.state(now)
            if after is not before:
                self._breaker_changed = True
                log.warning(
                    "channel_breaker", channel=channel.name, state=str(after), was=str(before)
                )

    async def _skip(
        self, message: Message, order: tuple[str, ...], where: dict[str, Any], now: float
    ) -> None:
        """The channel's breaker is open: on to the next step at once, no attempt counted."""
        breaker = self.breakers[where["channel"]]
        await self._record(
            message, MessageStatus.QUEUED, "channel_skipped",
            {
                **where, "to_channel": order[message.route_step + 1],
                "breaker": str(breaker.state(now)),
                "reopens_in_s": round(breaker.reopens_in(now), 3),
            },
            due_at_ms=self._now_ms(), route_step=message.route_step + 1, attempt_not_made=True,
        )  # fmt: skip

    async def _in_doubt(self, message: Message, where: dict[str, Any], exc: InDoubt) -> None:
        """The carrier may have the message: an attempt like any other, but no failure.

        With attempts left it waits long enough for a late answer or receipt,
        then the channel resends only what is still in doubt, marked as such.
        With none left nothing more is sent: the copies already out may arrive,
        so the message is ``submitted`` and their receipts (or their absence,
        past the validity) decide it.
        """
        now_ms = self._now_ms()
        if self.retry.next_attempt_at_ms(message.step_attempts, now_ms, self._rng) is None:
            await self._record(
                message, MessageStatus.SUBMITTED, "submitted_in_doubt", where,
                error=f"retries exhausted while in doubt: {exc.reason}",
            )  # fmt: skip
            return
        due_at = now_ms + int(exc.retry_after_s * 1000)
        await self._record(
            message, MessageStatus.QUEUED, "in_doubt", where, error=exc.reason, due_at_ms=due_at
        )

    async def _wait_for_channel(
        self, message: Message, where: dict[str, Any], exc: Unavailable
    ) -> None:
        """Nothing was tried: queue the message again without counting this claim.

        It waits as long as the outage lasts, bounded only by its validity
        (claimed at its end, it expires then).
        """
        due_at = self._now_ms() + int(exc.retry_after_s * 1000)
        if message.expires_at_ms is not None:
            due_at = min(due_at, message.expires_at_ms)
        await self._record(
            message, MessageStatus.QUEUED, "channel_unavailable", where,
            error=exc.reason, due_at_ms=due_at, attempt_not_made=True,
        )  # fmt: skip

    async def _record_result(
        self, message: Message, where: dict[str, Any], result: SendResult
    ) -> None:
        delivered = isinstance(result, Delivered)
        await self._record(
            message,
            MessageStatus.DELIVERED if delivered else MessageStatus.SUBMITTED,
            "delivered" if delivered else "submitted",
            where,
            channel_ref=result.ref,
        )
        log.info(
            "message_sent",
            message_id=message.id,
            to=mask_phone(message.event.mobile_receiver),
            channel=where["channel"],
            attempt=message.attempts,
            delivered=delivered,
        )

    async def _retry_or_fall_back(
        self,
        message: Message,
        order: tuple[str, ...],
        where: dict[str, Any],
        reason: str,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        now_ms = self._now_ms()
        due_at = self.retry.next_attempt_at_ms(
            message.step_attempts, now_ms, self._rng, retry_after_s=retry_after_s
        )
        if retry_after_s is not None:
            where = {**where, "retry_after_s": retry_after_s}
        if due_at is not None and self.quiet is not None and not message.urgent:
            # A retry that would wake someone at night waits for the morning too.
            quiet_end = self.quiet.deferral(due_at)
            if quiet_end is not None:
                where = {**where, "deferred": "quiet_hours"}
                due_at = quiet_end
        if due_at is None:
            await self._fall_back_or_fail(message, order, where, f"retries exhausted: {reason}")
        elif message.expires_at_ms is not None and due_at >= message.expires_at_ms:
            await self._record(
                message, MessageStatus.EXPIRED, "expired", where,
                error=f"the validity period ends before the next attempt: {reason}",
            )  # fmt: skip
        else:
            await self._record(
                message, MessageStatus.QUEUED, "retry_scheduled", where,
                error=reason, due_at_ms=due_at,
            )  # fmt: skip

    async def _fall_back_or_fail(
        self, message: Message, order: tuple[str, ...], where: dict[str, Any], reason: str
    ) -> None:
        next_step = message.route_step + 1
        if next_step >= len(order):
            await self._record(message, MessageStatus.FAILED, "failed", where, error=reason)
            return
        await self._record(
            message, MessageStatus.QUEUED, "fallback", {**where, "to_channel": order[next_step]},
            error=reason, due_at_ms=self._now_ms(), route_step=next_step,
        )  # fmt: skip

    async def _through_outage(
        self, message: Message, record: Callable[[], Awaitable[bool]]
    ) -> bool:
        """``record()``, tried again through a store outage while our lease lasts.

        What the channel answered is known only to this worker: dropped, the
        message would be claimed again when its lease ends and sent twice. Kept
        and recorded once the database is back (a failover takes seconds), it is
        sent once. The transition stays guarded by the lease in the store.
        """
        lease_ends = self._lease_ends.get(message.id, 0.0)
        while True:
            try:
                return await record()
            except StoreUnavailable:
                if time.monotonic() + STORE_RETRY_S >= lease_ends:
                    raise
                await asyncio.sleep(STORE_RETRY_S)

    async def _record(
        self,
        message: Message,
        to: MessageStatus,
        kind: str,
        where: Mapping[str, Any],
        *,
        channel_ref: str | None = None,
        error: str | None = None,
        due_at_ms: int | None = None,
        route_step: int | None = None,
        attempt_not_made: bool = False,
    ) -> bool:
        detail: dict[str, object] = {**where, "attempt": message.attempts}
        if attempt_not_made:
            detail["attempt_not_made"] = True
        if channel_ref is not None:
            detail["ref"] = channel_ref
        if error is not None:
            detail["error"] = error
        if due_at_ms is not None:
            detail["due_at_ms"] = due_at_ms
        changed = await self._through_outage(
            message,
            lambda: self.store.transition(
                message.id,
                to=to,
                now_ms=self._now_ms(),
                kind=kind,
                detail=detail,
                worker_id=self.worker_id,
                due_at_ms=due_at_ms,
                channel=where.get("channel"),
                channel_ref=channel_ref,
                error=error,
                route_step=route_step,
                attempt_not_made=attempt_not_made,
            ),
        )
        if changed:
            metrics.DELIVERY_STEPS.labels(where.get("channel") or "", kind).inc()
            tracing.annotate(
                {"iwork_mc.outcome": kind, "iwork_mc.channel": where.get("channel") or ""}
            )
            level = _STEP_LOG_LEVELS.get(kind)
            if level is not None:
                log.log(
                    level, f"delivery_{kind}", message_id=message.id,
                    to=mask_phone(message.event.mobile_receiver),
                    **{k: mask_digits(v) if isinstance(v, str) else v for k, v in detail.items()},
                )  # fmt: skip
        else:
            # Our lease expired and another worker owns the message now: the
            # channel may have it twice.  Say so where the message's owner looks.
            log.warning("lease_lost", message_id=message.id, worker_id=self.worker_id)
            await self.store.note(
                message.id,
                now_ms=self._now_ms(),
                kind="late_result_after_lease_lost",
                detail={**detail, "worker_id": self.worker_id, "intended_status": str(to)},
            )
        return changed
