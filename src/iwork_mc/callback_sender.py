"""The callback sender: claim due status events, POST them signed, record the answer.

The store adds a status event in the same transaction as each status change
of a message whose app has a callback URL.  This loop leases due events the
way the worker leases messages (two senders never hold one event at once),
POSTs each to the app's *current* callback URL, signed with the app's current
secret (and the previous one while it is still valid), and records the result
with :meth:`~iwork_mc.store.base.Store.status_event_done` (2xx) or
:meth:`~iwork_mc.store.base.Store.status_event_failed` (a retry time from
:data:`~iwork_mc.callbacks.CALLBACK_RETRY`, or ``None`` to give up).  Both
write a timeline entry, so every try is visible on the message.

Delivery is at least once: a sender that dies after the receiver answered but
before recording it leaves the lease to run out, and the event is sent again
with the same ``X-Iwork-Event-Id``.  Receivers drop repeats by that id.

Choices worth knowing:

- The URL is the app's *current* one, not the one at the time of the change:
  after a typo is fixed the backlog goes to the right place.  An app whose URL
  was cleared (or that was deleted) gets no more callbacks: its pending events
  are given up with a timeline entry saying why.
- 410 Gone gives the event up at once; every other non-2xx answer, a redirect
  (never followed), a timeout or a network error is retried on the schedule.
  ``Retry-After`` on 429/503 can only push the next try later.
- Events of one message claimed together are sent one after the other, oldest
  first (one that no longer fits in its lease is left for a later claim);
  across batches and retries there is no ordering (see the how-to).
- A callback goes only to a public address or one the operator allows
  (:mod:`iwork_mc.callback_targets`), checked on the addresses the name
  resolves to when the connection is made
  (:mod:`iwork_mc.callback_transport`).  A refused target is given up at
  once, with ``refused: <why>`` on the timeline.
- Logs carry ids, the app_key, the URL's host and the HTTP status: never the
  URL's path or query (it may hold a token), a secret, a number or a text.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import structlog

from iwork_mc import __version__, metrics
from iwork_mc.callback_targets import AllowList, TargetRefused
from iwork_mc.callback_transport import GuardedTransport, Resolver, resolve
from iwork_mc.callbacks import (
    CALLBACK_RETRY,
    Outcome,
    callback_headers,
    classify_status,
    event_body,
    next_retry_at_ms,
    parse_retry_after,
)
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.messages import StatusEvent
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError
from iwork_mc.worker import default_worker_id

__all__ = ["CallbackSender", "default_http_client"]

log = structlog.get_logger("iwork_mc.callbacks")

USER_AGENT = f"iwork-mc/{__version__} (status callbacks)"


def default_http_client(
    timeout_s: float,
    max_connections: int,
    allow: AllowList,
    resolver: Resolver = resolve,
) -> httpx.AsyncClient:
    """The client callbacks are POSTed with: no redirects, no proxies, bounded connections.

    Its transport (:class:`~iwork_mc.callback_transport.GuardedTransport`)
    connects only to public addresses or those in ``allow``.
    """
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        transport=GuardedTransport(allow, limits=limits, resolver=resolver),
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


class CallbackSender:
    """Deliver status events to the apps' callback URLs until stopped.

    Args:
        store: the store the gateway and workers use.
        worker_id: names this sender's leases (default: host, pid and a random tag).
        concurrency: how many events are POSTed at once, at most.
        lease_ms: how long a claimed event stays this sender's; must be at
            least twice ``timeout_s`` so a slow receiver cannot make another
            sender POST the same event while this one still waits.
        timeout_s: the whole POST (connect, send, answer) may take this long.
        poll_interval: how long to wait when nothing is due.
        retry: the schedule of tries; :data:`~iwork_mc.callbacks.CALLBACK_RETRY` by default.
        app_cache_ttl_s: how long an app's secret and URL are reused before
            being read again (a rotation or a new URL is seen within this).
        clock: epoch seconds (tests pass a fake one).
        rng: jitter source of the retry schedule.
        allow: non-public hosts and networks callbacks may reach
            (``callback_allow_hosts``); by default public addresses only.
        resolver: name resolution at connect time (tests map names at will).
        http_client: builds the :class:`httpx.AsyncClient` instead of
            :func:`default_http_client`, address checks included (tests pass
            one with a ``MockTransport``); redirects are never followed
            whatever the client says.

    Raises:
        ValueError: ``lease_ms`` is too short for ``timeout_s``, or a count is not positive.
    """

    def __init__(
        self,
        store: Store,
        *,
        worker_id: str | None = None,
        concurrency: int = 8,
        lease_ms: int = 60_000,
        timeout_s: float = 10.0,
        poll_interval: float = 0.5,
        retry: RetryPolicy | None = None,
        app_cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        allow: AllowList | None = None,
        resolver: Resolver = resolve,
        http_client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if timeout_s <= 0 or lease_ms < 2 * timeout_s * 1000:
            raise ValueError("lease_ms must be at least twice timeout_s (in milliseconds)")
        self.store = store
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.timeout_s = timeout_s
        self.poll_interval = poll_interval
        self.retry = retry or CALLBACK_RETRY
        self.app_cache_ttl_s = app_cache_ttl_s
        self._clock = clock
        self._rng = rng or random.Random()
        self.allow = allow or AllowList()
        self._http_client = http_client or (
            lambda: default_http_client(self.timeout_s, self.concurrency, self.allow, resolver)
        )
        self._apps = AppDirectory(store, app_cache_ttl_s)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _claim(self, limit: int) -> list[StatusEvent]:
        return await self.store.claim_status_events(
            worker_id=self.worker_id, now_ms=self._now_ms(), lease_ms=self.lease_ms, limit=limit
        )

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many events were claimed."""
        claimed = await self._claim(self.concurrency)
        if claimed:
            async with self._http_client() as client:
                groups = _by_message(claimed)
                await asyncio.gather(*(self._send_in_order(group, client) for group in groups))
        return len(claimed)

    async def serve(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; what is in flight is finished and recorded.

        Up to ``concurrency`` events are in flight at once; freed slots are
        refilled in batches, as the worker does.
        """
        log.info("callback_sender_started", worker_id=self.worker_id)
        in_flight: dict[asyncio.Task[None], int] = {}
        slot_freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.pop(task, None)
            slot_freed.set()
            if not task.cancelled() and task.exception() is not None:
                log.warning("callback_task_failed", error=type(task.exception()).__name__)

        failures = 0
        async with self._http_client() as client:
            while not stop.is_set():
                slot_freed.clear()  # before counting, so a finish from here on is not missed
                free = self.concurrency - sum(in_flight.values())
                claimed: list[StatusEvent] = []
                if free > 0 and (free >= max(1, self.concurrency // 4) or not in_flight):
                    try:
                        claimed = await self._claim(free)
                        failures = 0
                    except StoreError as exc:
                        failures += 1
                        outage.log_failure(log, "claim_failed", exc, worker_id=self.worker_id)
                for group in _by_message(claimed):
                    task = asyncio.create_task(self._send_in_order(group, client))
                    in_flight[task] = len(group)
                    task.add_done_callback(finished)
                if claimed and len(claimed) == free:
                    continue  # more may be due: claim again as soon as a slot frees
                pause = self.poll_interval if failures == 0 else min(30.0, 2.0**failures)
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
        log.info("callback_sender_stopped", worker_id=self.worker_id)

    async def _send_in_order(self, events: list[StatusEvent], client: httpx.AsyncClient) -> None:
        # The events were leased together: one that can no longer be POSTed
        # (timeout included) well within the lease is left for its lease to run
        # out, so no other sender can ever POST it while this one still might.
        lease_ends = time.monotonic() + self.lease_ms / 1000 * 0.9
        for event in events:
            if time.monotonic() + self.timeout_s > lease_ends:
                log.info("callback_left_to_lease", event_id=event.id, worker_id=self.worker_id)
                continue
            try:
                await self._send(event, client)
            except StoreError as exc:
                # Not recorded: the lease runs out and the event is sent again
                # (receivers drop repeats by event id).  The next one may fare better.
                outage.log_failure(
                    log, "callback_not_recorded", exc, event_id=event.id, worker_id=self.worker_id
                )

    async def _send(self, event: StatusEvent, client: httpx.AsyncClient) -> None:
        # The store counts the claim as a try, as claim_due does for messages.
        attempt = event.attempts
        app = await self._apps.get(event.app_key, time.monotonic())
        if app is None or app.callback_url is None:
            reason = "app deleted" if app is None else "callback URL removed"
            await self._failed(event, attempt, f"{reason}: given up", retry_at_ms=None)
            return
        url = app.callback_url
        body = event_body(event)
        now_ms = self._now_ms()
        headers = callback_headers(
            event,
            secrets=app.valid_secrets(now_ms),
            timestamp_ms=now_ms,
            body=body,
            attempt=attempt,
        )
        status_code: int | None = None
        retry_after: str | None = None
        host = urlsplit(url).hostname
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                client.stream(
                    "POST", url, content=body, headers=headers, follow_redirects=False
                ) as response,
            ):
                # The answer's body is never read: only its status matters.
                status_code = response.status_code
                retry_after = response.headers.get("Retry-After")
        except TargetRefused as exc:
            # Decided before any connection, so open and closed ports read the
            # same; waiting will not make the address public: given up at once.
            await self._failed(event, attempt, f"refused: {exc}; given up", None, host=host)
            return
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout after {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"network error: {type(exc).__name__}"
        except httpx.InvalidURL:
            error = "invalid callback URL"
        except Exception as exc:
            # Retried like a network error, so a bug here cannot pin an event forever.
            log.exception("callback_crashed", event_id=event.id, worker_id=self.worker_id)
            error = f"error: {type(exc).__name__}"
        if status_code is None:
            await self._retry_or_give_up(event, attempt, error, host=host)
            return
        outcome = classify_status(status_code)
        if outcome is Outcome.DELIVERED:
            metrics.CALLBACKS.labels("delivered").inc()
            await self.store.status_event_done(
                event.id, now_ms=self._now_ms(), worker_id=self.worker_id, status_code=status_code
            )
            log.info(
                "callback_delivered", event_id=event.id, message_id=event.message_id,
                app_key=event.app_key, status=str(event.status), http_status=status_code,
                attempt=attempt, host=host, worker_id=self.worker_id,
            )  # fmt: skip
        elif outcome is Outcome.GIVE_UP:
            await self._failed(
                event, attempt, f"HTTP {status_code}: receiver refused, given up", None, host=host
            )
        else:
            asked = None
            if status_code in (429, 503):
                asked = parse_retry_after(retry_after, self._now_ms())
            await self._retry_or_give_up(
                event, attempt, f"HTTP {status_code}", host=host, retry_after_s=asked
            )

    async def _retry_or_give_up(
        self,
        event: StatusEvent,
        attempt: int,
        error: str,
        *,
        host: str | None,
        retry_after_s: float | None = None,
    ) -> None:
        retry_at = next_retry_at_ms(
            self.retry, attempt, self._now_ms(), self._rng, retry_after_s=retry_after_s
        )
        if retry_at is None:
            error = f"{error}; given up after {attempt} attempts"
        await self._failed(event, attempt, error, retry_at, host=host)

    async def _failed(
        self,
        event: StatusEvent,
        attempt: int,
        error: str,
        retry_at_ms: int | None,
        *,
        host: str | None = None,
    ) -> None:
        metrics.CALLBACKS.labels("given_up" if retry_at_ms is None else "retry").inc()
        await self.store.status_event_failed(
            event.id,
            now_ms=self._now_ms(),
            worker_id=self.worker_id,
            error=error,
            retry_at_ms=retry_at_ms,
        )
        log.warning(
            "callback_failed", event_id=event.id, message_id=event.message_id,
            app_key=event.app_key, status=str(event.status), error=error, attempt=attempt,
            retry_at_ms=retry_at_ms, given_up=retry_at_ms is None, host=host,
            worker_id=self.worker_id,
        )  # fmt: skip


def _by_message(events: list[StatusEvent]) -> list[list[StatusEvent]]:
    """The events grouped by message, each group oldest first, groups in claim order."""
    groups: dict[int, list[StatusEvent]] = {}
    for event in sorted(events, key=lambda e: e.id):
        groups.setdefault(event.message_id, []).append(event)
    return list(groups.values())
