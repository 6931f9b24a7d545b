"""The SMPP channel: SMS to an operator SMSC over SMPP 3.4 sessions.

Theory of operation.  The protocol (PDU framing, sequence numbers, session
states, text encoding and splitting, receipt parsing) lives in the sans-I/O core
:mod:`iwork_mc.smpp`; this module only moves bytes and keeps time:

* A :class:`_Session` owns one TCP connection and one ``smpp.Connection``.  It
  binds, answers enquire_link and deliver_sm, sends enquire_link when idle, and
  matches responses to requests by sequence number.  A window semaphore caps the
  submit_sm in flight and a token bucket caps their rate; ESME_RTHROTTLED halves
  that rate and pauses the session instead of hammering the SMSC.
* A supervisor task per session reconnects with exponential backoff, so an
  SMSC that is down at start, or drops the connection, only delays delivery.
* :meth:`SMPPChannel.send` splits the text, records the segments as pending in
  the store *before* submitting (so a crash leaves them visibly in doubt), and
  records each carrier id as its submit_sm_resp arrives.
* Receipts (deliver_sm) are written to the store before deliver_sm_resp is sent:
  if the store cannot take one, the SMSC is answered ESME_RX_T_APPN and resends
  it later.  Nothing acknowledged to the SMSC is ever only in memory.
* A submit_sm whose session drops before its response, or whose response is
  late, is *in doubt*: the carrier may or may not have it.  On a timeout the
  session is probed with enquire_link rather than dropped, so a slow SMSC's late
  response still names the part.  The message is given back to the worker (an
  attempt like any other); the next attempt sends only the parts no copy of
  which the SMSC took, marked in the timeline as a possible duplicate.  Nothing
  is resent silently.
* With no session bound, nothing is tried: :class:`Unavailable` tells the
  worker to give the message back without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import phonenumbers
import structlog

from iwork_mc import metrics, smpp, tracing
from iwork_mc.channels.base import (
    InDoubt,
    PermanentChannelError,
    Submitted,
    TransientChannelError,
    Unavailable,
)
from iwork_mc.channels.smpp_config import SMPPConfig, is_permanent
from iwork_mc.messages import Message
from iwork_mc.privacy import mask_phone
from iwork_mc.segments import SegmentState, plan_parts
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError

__all__ = ["SMPPChannel"]

log = structlog.get_logger("iwork_mc.channels.smpp")

_RECEIPT_STATES: dict[smpp.MessageState, SegmentState] = {
    smpp.MessageState.ENROUTE: SegmentState.ENROUTE,
    smpp.MessageState.ACCEPTED: SegmentState.ENROUTE,
    smpp.MessageState.DELIVERED: SegmentState.DELIVERED,
    smpp.MessageState.EXPIRED: SegmentState.EXPIRED,
    smpp.MessageState.DELETED: SegmentState.DELETED,
    smpp.MessageState.UNDELIVERABLE: SegmentState.UNDELIVERABLE,
    smpp.MessageState.REJECTED: SegmentState.REJECTED,
    smpp.MessageState.UNKNOWN: SegmentState.UNKNOWN,
}


#: How many timed-out requests a session keeps waiting for a late answer.
_LATE_KEPT = 10_000
#: What to do with a response that comes after its request timed out.
_LateAnswer = Callable[[smpp.Pdu], Coroutine[Any, Any, None]]


class _SessionLost(Exception):
    """The session ended while a request waited for its response."""


class _NotSent(_SessionLost):
    """The session ended before the request was written: nothing is in doubt."""


class _RateLimit:
    """A token bucket whose rate halves on throttling and creeps back afterwards."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.ceiling = rate
        self.rate = rate
        self._clock = clock
        self._next = 0.0
        self._paused_until = 0.0

    async def acquire(self) -> None:
        now = self._clock()
        wait = max(self._paused_until - now, 0.0)
        if self.rate > 0:
            start = max(now + wait, self._next)
            self._next = start + 1 / self.rate
            wait = start - now
            # Regain 5 % of the lost rate per message sent without throttling.
            self.rate = min(self.ceiling, self.rate + 0.05 * (self.ceiling - self.rate) + 0.01)
        if wait > 0:
            await asyncio.sleep(wait)

    def throttled(self, pause_s: float, observed_rate: float) -> None:
        self._paused_until = self._clock() + pause_s
        base = self.rate if self.rate > 0 else max(observed_rate, 2.0)
        self.rate = max(1.0, base / 2)
        if self.ceiling <= 0:
            self.ceiling = base


class _Session:
    """One SMPP session; ``role`` says whether it submits, receives or both."""

    def __init__(
        self,
        channel: SMPPChannel,
        number: int,
        bind: type[smpp.BindTransceiver | smpp.BindTransmitter | smpp.BindReceiver],
        clock: Callable[[], float],
    ) -> None:
        self.channel = channel
        self.config = channel.config
        self.number = number
        self.bind_pdu = bind
        self.submits = bind is not smpp.BindReceiver
        self.state = "connecting"
        self._clock = clock
        self._conn: smpp.Connection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[smpp.Pdu]] = {}
        #: Requests that timed out on a live session, by sequence number: what to do
        #: with their answer if it still comes (oldest first, at most _LATE_KEPT).
        self._late: dict[int, _LateAnswer] = {}
        self._probe: asyncio.Future[bool] | None = None
        self._window = asyncio.Semaphore(self.config.window)
        self._rate = _RateLimit(self.config.rate, clock)
        self._bound = asyncio.Event()
        self._receipts: set[asyncio.Task[None]] = set()
        self._last_activity = 0.0
        self._sent_recently: list[float] = []

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, bind and serve until ``stopping``; reconnect with backoff."""
        delay = self.config.reconnect_min_s
        while not stopping.is_set():
            try:
                await self._serve_once(stopping)
                delay = self.config.reconnect_min_s
            except (OSError, TimeoutError, smpp.ProtocolError, _SessionLost) as exc:
                log.warning("smpp_session_down", session=self.number, error=type(exc).__name__,
                            detail=str(exc)[:200])  # fmt: skip
            finally:
                self._lose(f"session {self.number} closed")
            if stopping.is_set():
                return
            self.state = "reconnecting"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay * random.uniform(0.8, 1.2))
            delay = min(self.config.reconnect_max_s, delay * 2)

    async def _serve_once(self, stopping: asyncio.Event) -> None:
        self.state = "connecting"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.config.host, self.config.port),
            timeout=self.config.response_timeout_s,
        )
        self._writer = writer
        self._conn = smpp.Connection(our_role=smpp.Role.ESME)
        reading = asyncio.create_task(self._read(reader))
        try:
            self.state = "binding"
            resp = await self.request(
                self.bind_pdu(
                    system_id=self.config.system_id,
                    password=self.config.password,
                    system_type=self.config.system_type,
                )
            )
            if resp.command_status != smpp.CommandStatus.ESME_ROK:
                raise _SessionLost(f"bind refused: {_phrase(resp.command_status)}")
            self.state = "bound"
            self._bound.set()
            log.info("smpp_bound", session=self.number, mode=self.bind_pdu.__name__)
            keepalive = asyncio.create_task(self._keepalive())
            try:
                stopped = asyncio.create_task(stopping.wait())
                done, _ = await asyncio.wait(
                    {reading, stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                stopped.cancel()
                if stopped in done:
                    await self._unbind()
            finally:
                keepalive.cancel()
        finally:
            self._bound.clear()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _unbind(self) -> None:
        # Graceful: let in-flight submits finish (bounded), then unbind.
        if self._pending:
            await asyncio.wait(list(self._pending.values()), timeout=self.config.response_timeout_s)
        self.state = "unbinding"
        with contextlib.suppress(_SessionLost, TimeoutError):
            await self.request(smpp.Unbind())
        log.info("smpp_unbound", session=self.number)

    def _write(self, pdu: smpp.Pdu) -> int:
        assert self._conn is not None and self._writer is not None
        if pdu.sequence_number is None:
            pdu = dataclasses.replace(pdu, sequence_number=self._conn.next_sequence_number())
        self._writer.write(self._conn.send(pdu))
        self._last_activity = self._clock()
        assert pdu.sequence_number is not None
        return pdu.sequence_number

    async def request(
        self,
        event: smpp.Pdu,
        *,
        on_late: _LateAnswer | None = None,
    ) -> smpp.Pdu:
        """Send a request and wait for its response (or lose the session trying).

        With ``on_late``, a response that does not come in time is not given up
        on if the session still answers enquire_link (the SMSC is slow, not
        gone): ``on_late`` gets it if it comes while the session lasts.
        """
        if self._conn is None or self._writer is None:
            raise _NotSent("the session is closed")
        future: asyncio.Future[smpp.Pdu] = asyncio.get_running_loop().create_future()
        try:
            sequence = self._write(event)
        except smpp.LocalProtocolError as exc:
            # The core refused to send (the session is closing): nothing left.
            raise _NotSent(str(exc)) from None
        self._pending[sequence] = future
        try:
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout=self.config.response_timeout_s)
        except TimeoutError:  # before OSError: TimeoutError is one
            reason = f"no response to {type(event).__name__} in time"
            if on_late is not None and await self._alive():
                self._expect_late(sequence, on_late)
                raise _SessionLost(reason) from None
            # No answer, and no sign of life: the session can no longer be trusted.
            self._writer.close()
            raise _SessionLost(reason) from None
        except OSError as exc:
            # The bytes may have left before the connection broke: in doubt.
            raise _SessionLost(f"connection lost: {type(exc).__name__}") from None
        finally:
            self._pending.pop(sequence, None)

    async def submit(self, pdu: smpp.SubmitSm, on_late: _LateAnswer) -> smpp.Pdu:
        """submit_sm within the window and the rate; raises _SessionLost if in doubt."""
        async with self._window:
            await self._rate.acquire()
            if not self._bound.is_set():
                raise _NotSent("the session is not bound")
            self._sent_recently.append(self._clock())
            in_use = metrics.SMPP_WINDOW_IN_USE.labels(self.channel.name)
            in_use.inc()
            try:
                return await self.request(pdu, on_late=on_late)
            finally:
                in_use.dec()

    async def _alive(self) -> bool:
        """Whether the SMSC answers an enquire_link; one probe serves every waiter."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._enquire())
        return await asyncio.shield(self._probe)

    async def _enquire(self) -> bool:
        try:
            await self.request(smpp.EnquireLink())
        except _SessionLost:
            return False
        return True

    def _expect_late(self, sequence: int, on_late: _LateAnswer) -> None:
        self._late[sequence] = on_late
        if len(self._late) > _LATE_KEPT:
            # Bounded: the oldest stays in doubt, and is resent (marked) like any other.
            del self._late[next(iter(self._late))]

    def throttled(self) -> None:
        now = self._clock()
        self._sent_recently = [t for t in self._sent_recently if now - t < 1.0]
        self._rate.throttled(self.config.throttle_pause_s, float(len(self._sent_recently)))
        log.warning("smpp_throttled", session=self.number, rate=round(self._rate.rate, 1))

    async def _keepalive(self) -> None:
        interval = self.config.enquire_link_interval_s
        while True:
            await asyncio.sleep(interval / 4)
            if self._clock() - self._last_activity >= interval:
                try:
                    await self.request(smpp.EnquireLink())
                except _SessionLost:
                    return

    async def _read(self, reader: asyncio.StreamReader) -> None:
        assert self._conn is not None
        while True:
            data = await reader.read(65536)
            self._conn.receive_data(data)
            while True:
                try:
                    event = self._conn.next_event()
                except smpp.RemoteProtocolError as exc:
                    # The core says what to answer a bad PDU, and whether the session survives.
                    log.warning("smpp_bad_pdu", session=self.number, status=exc.command_status.name)
                    if exc.reply is not None and self._writer is not None:
                        self._writer.write(self._conn.send(exc.reply))
                    if self._conn.state is smpp.State.CLOSED:
                        return
                    continue
                if event is smpp.NEED_DATA:
                    break
                if event is smpp.CLOSED:
                    return
                await self._handle(event)
            if not data:
                return

    async def _handle(self, event: Any) -> None:
        self._last_activity = self._clock()
        if isinstance(event, smpp.DeliverSm):
            # Stored concurrently: the reader must keep reading submit_sm_resp
            # while a receipt waits for its commit.  Its answer follows the commit.
            task = asyncio.create_task(self._receipt(event))
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)
        elif isinstance(event, smpp.EnquireLink):
            self._write(smpp.EnquireLinkResp(sequence_number=event.sequence_number))
        elif isinstance(event, smpp.Unbind):
            self._write(smpp.UnbindResp(sequence_number=event.sequence_number))
            self._bound.clear()
            raise _SessionLost("the SMSC unbound")
        else:
            future = self._pending.get(event.sequence_number)
            late = self._late.pop(event.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(event)
            elif late is not None:
                # Recorded concurrently, like a receipt: the reader keeps reading.
                task = asyncio.create_task(late(event))
                self._receipts.add(task)
                task.add_done_callback(self._receipts.discard)
            elif not isinstance(event, smpp.EnquireLinkResp):
                log.warning("smpp_unexpected_pdu", session=self.number, pdu=type(event).__name__)

    async def _receipt(self, deliver: smpp.DeliverSm) -> None:
        status = await self.channel.receive(deliver)
        if self._conn is not None:
            # Unanswered if the session is gone: the SMSC sends it again later.
            self._write(smpp.DeliverSmResp(sequence_number=deliver.sequence_number,
                                           command_status=status))  # fmt: skip

    def _lose(self, reason: str) -> None:
        self._bound.clear()
        self._conn = None
        self._late.clear()  # answers can no longer come: those parts stay in doubt
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_SessionLost(reason))
        self._pending.clear()


class SMPPChannel:
    """A named channel sending through one SMSC over ``config.binds`` sessions."""

    def __init__(
        self,
        config: SMPPConfig,
        store: Store,
        *,
        name: str = "smpp",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self.store = store
        self._clock = clock
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        binds: list[type[smpp.BindTransceiver | smpp.BindTransmitter | smpp.BindReceiver]] = (
            [smpp.BindTransceiver]
            if config.bind_mode == "transceiver"
            else [smpp.BindTransmitter, smpp.BindReceiver]
        )
        self.sessions = [
            _Session(self, number, bind, clock)
            for number, bind in enumerate(binds * config.binds, start=1)
        ]
        self._next_session = itertools.count()
        #: When the channel last found no session bound (None: one is bound).
        self._unbound_since: float | None = None
        #: Counters for metrics and tests.
        self.stats = {"submitted": 0, "throttled": 0, "in_doubt": 0, "receipts": 0,
                      "unmatched_receipts": 0, "duplicate_receipts": 0,
                      "possible_duplicates": 0, "late_answers": 0, "duplicates": 0}  # fmt: skip

    def _count(self, event: str) -> None:
        self.stats[event] += 1
        metrics.SMPP_EVENTS.labels(self.name, event).inc()

    def ready(self) -> bool:
        """A session that submits is bound (receipts alone cannot send anything)."""
        return any(s.bound for s in self.sessions if s.submits)

    def health(self) -> dict[str, Any]:
        """Each session's state, for /healthz and logs."""
        return {"channel": self.name, "sessions": [s.state for s in self.sessions]}

    async def open(self) -> None:
        self._stopping.clear()
        self._tasks = [asyncio.create_task(s.run(self._stopping)) for s in self.sessions]

    async def close(self) -> None:
        """Unbind every session gracefully (in-flight submits are answered first)."""
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- sending ------------------------------------------------------------

    async def send(self, message: Message, text: str) -> Submitted:
        now = self._now_ms()
        # The reference comes from the message (split keeps the bits its header holds),
        # so a part resent alone joins the parts sent before.
        segments = smpp.split(text, method=self.config.long_messages, reference=message.id)
        # A first attempt has no history to check: skip the read on the common path.
        history = await self.store.segments(message.id) if message.attempts > 1 else []
        plan = plan_parts(history, channel=self.name, total=len(segments))
        if not plan.to_send:
            # Every part was taken (before a crash, or its answer came late): never resend.
            ids = [plan.carrier_ids[part] for part in range(1, len(segments) + 1)]
            await self.store.note(message.id, now_ms=now, kind="already_submitted",
                                  detail={"attempt": message.attempts,
                                          "carrier_ids": ",".join(ids)})  # fmt: skip
            if self.config.query_sm:
                await self._query(message, ids)
            return Submitted(",".join(ids))
        # Waiting for a session first: no segment is recorded for an attempt never made.
        session = await self._session()
        if plan.in_doubt:
            self._count("possible_duplicates")
            await self.store.note(
                message.id, now_ms=now, kind="possible_duplicate",
                detail={"attempt": message.attempts, "in_doubt_parts": plan.in_doubt,
                        "reason": "an earlier submit_sm got no answer; the SMSC may have it"},
            )  # fmt: skip
        resend = len(plan.to_send) < len(segments)
        await self.store.add_segments(message.id, attempt=message.attempts, channel=self.name,
                                      total=len(segments), now_ms=now,
                                      parts=plan.to_send if resend else None)  # fmt: skip
        destination, dest_ton, dest_npi = self._destination(message.event.mobile_receiver)
        submits = [
            self._submit_segment(
                session, message, part, segments[part - 1], destination, dest_ton, dest_npi
            )
            for part in plan.to_send
        ]
        results = await asyncio.gather(*submits, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The most final error decides: permanent > in doubt > transient.
            for kind in (PermanentChannelError, InDoubt, TransientChannelError):
                for error in errors:
                    if isinstance(error, kind):
                        raise error
            raise errors[0]
        named = {**plan.carrier_ids, **dict(zip(plan.to_send, map(str, results), strict=True))}
        return Submitted(",".join(named[part] for part in range(1, len(segments) + 1)))

    async def _submit_segment(
        self,
        session: _Session,
        message: Message,
        part: int,
        segment: smpp.Segment,
        destination: str,
        dest_ton: int,
        dest_npi: int,
    ) -> str:
        pdu = smpp.SubmitSm(
            source_addr_ton=self.config.source_ton,
            source_addr_npi=self.config.source_npi,
            source_addr=self.config.source_addr,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            destination_addr=destination,
            esm_class=segment.esm_class,
            registered_delivery=1 if self.config.registered_delivery else 0,
            data_coding=segment.data_coding,
            short_message=segment.short_message,
            tlvs=segment.tlvs,
        )

        async def answered_late(resp: smpp.Pdu) -> None:
            await self._late_answer(message, part, resp)

        for _ in range(self.config.throttle_retries + 1):
            try:
                resp = await session.submit(pdu, on_late=answered_late)
            except _NotSent as exc:
                await self._refused(message, part, str(exc))
                raise TransientChannelError(f"segment {part}: {exc}") from None
            except _SessionLost as exc:
                self._count("in_doubt")
                raise InDoubt(f"segment {part}: {exc}", self.config.in_doubt_resend_s) from None
            status = resp.command_status
            if status == smpp.CommandStatus.ESME_ROK and isinstance(resp, smpp.SubmitSmResp):
                carrier_id = resp.message_id
                self._count("submitted")
                await self.store.segment_submitted(
                    message.id, attempt=message.attempts, part=part, carrier_id=carrier_id,
                    now_ms=self._now_ms(),
                )  # fmt: skip
                return carrier_id
            if status in (smpp.CommandStatus.ESME_RTHROTTLED, smpp.CommandStatus.ESME_RMSGQFUL):
                self._count("throttled")
                session.throttled()
                continue
            reason = _phrase(status)
            await self._refused(message, part, reason)
            if is_permanent(status):
                raise PermanentChannelError(f"SMSC refused: {reason}")
            raise TransientChannelError(f"SMSC answered {reason}")
        await self._refused(message, part, "ESME_RTHROTTLED, repeatedly")
        raise TransientChannelError("SMSC kept throttling")

    async def _late_answer(self, message: Message, part: int, resp: smpp.Pdu) -> None:
        """A submit_sm_resp that came after the timeout: the part is no longer in doubt."""
        self._count("late_answers")
        detail: dict[str, Any] = {"attempt": message.attempts, "part": part}
        try:
            if resp.command_status == smpp.CommandStatus.ESME_ROK and isinstance(
                resp, smpp.SubmitSmResp
            ):
                # Its receipt, kept unmatched meanwhile, is applied now.
                await self.store.segment_submitted(
                    message.id, attempt=message.attempts, part=part,
                    carrier_id=resp.message_id, now_ms=self._now_ms(),
                )  # fmt: skip
                detail["carrier_id"] = resp.message_id
                copies = [
                    s for s in await self.store.segments(message.id)
                    if s.part == part and s.channel == self.name and s.carrier_id is not None
                ]  # fmt: skip
                if len(copies) > 1:
                    # The part was resent meanwhile and both copies were taken: a duplicate.
                    self._count("duplicates")
                    detail["duplicate_of_attempts"] = [
                        s.attempt for s in copies if s.attempt != message.attempts
                    ]
            else:
                await self._refused(message, part, _phrase(resp.command_status))
                detail["error"] = _phrase(resp.command_status)
            await self.store.note(message.id, now_ms=self._now_ms(), kind="late_submit_resp",
                                  detail=detail)  # fmt: skip
        except StoreError:
            # The part stays in doubt: resent, marked, like one that was never answered.
            log.warning("smpp_late_answer_not_stored", message_id=message.id, part=part)

    async def _refused(self, message: Message, part: int, reason: str) -> None:
        await self.store.segment_refused(message.id, attempt=message.attempts, part=part,
                                         error=reason, now_ms=self._now_ms())  # fmt: skip

    async def _query(self, message: Message, carrier_ids: list[str]) -> None:
        """Ask the SMSC for parts whose receipts may have been missed (query_sm)."""
        try:
            session = await self._session()
        except Unavailable:
            return  # the receipts will still come once a session binds
        source = self.config.source_addr
        for carrier_id in carrier_ids:
            try:
                resp = await session.request(
                    smpp.QuerySm(message_id=carrier_id, source_addr_ton=self.config.source_ton,
                                 source_addr_npi=self.config.source_npi, source_addr=source),
                    on_late=_ignore,  # a slow answer is not a dead session; receipts still come
                )  # fmt: skip
            except _SessionLost:
                return  # receipts will still come; the SMSC resends them
            if resp.command_status != smpp.CommandStatus.ESME_ROK or not isinstance(
                resp, smpp.QuerySmResp
            ):
                continue
            state = _RECEIPT_STATES.get(resp.message_state)
            if state is not None and state is not SegmentState.ENROUTE:
                await self.store.apply_receipt(
                    channel=self.name, carrier_id=carrier_id, state=state,
                    error=str(resp.error_code) if resp.error_code else None,
                    now_ms=self._now_ms(), detail={"source": "query_sm"},
                )  # fmt: skip

    async def _session(self) -> _Session:
        submitters = [s for s in self.sessions if s.submits]
        deadline = self._clock() + self.config.bind_wait_s
        while True:
            bound = [s for s in submitters if s.bound]
            if bound:
                self._unbound_since = None
                return bound[next(self._next_session) % len(bound)]
            now = self._clock()
            if now >= deadline:
                if self._unbound_since is None:
                    self._unbound_since = now - self.config.bind_wait_s
                # Nothing was submitted: the message waits.  The longer the outage,
                # the longer between claims (workers do not spin), capped like reconnects.
                outage = now - self._unbound_since
                wait = min(self.config.reconnect_max_s, max(self.config.reconnect_min_s, outage))
                raise Unavailable("no SMPP session is bound", wait)
            await asyncio.sleep(0.05)

    def _destination(self, e164: str) -> tuple[str, int, int]:
        if self.config.destination_format == "national":
            number = phonenumbers.parse(e164)
            return str(number.national_number), 2, 1
        return e164.lstrip("+"), 1, 1

    # -- receiving ----------------------------------------------------------

    async def receive(self, deliver: smpp.DeliverSm) -> smpp.CommandStatus:
        """Record a deliver_sm; the answer is sent only after it is durable."""
        receipt = smpp.parse_receipt(deliver)
        if receipt is None:
            # A mobile-originated message: not handled yet, acknowledged so it is not resent.
            log.info("smpp_mo_ignored", source=mask_phone(deliver.source_addr))
            return smpp.CommandStatus.ESME_ROK
        now_ms = self._now_ms()
        try:
            outcome = await self.store.apply_receipt(
                channel=self.name,
                carrier_id=receipt.message_id,
                state=_RECEIPT_STATES.get(receipt.state, SegmentState.UNKNOWN),
                error=receipt.error or None,
                now_ms=now_ms,
                detail={"stat": receipt.state.name, "err": receipt.error},
                destination=deliver.source_addr,
            )
        except StoreError as exc:
            outage.log_failure(log, "smpp_receipt_not_stored", exc, carrier_id=receipt.message_id)
            # Temporary application error: the SMSC keeps the receipt and retries.
            return smpp.CommandStatus.ESME_RX_T_APPN
        self._count("receipts")
        metrics.count_receipt(self.name, outcome, now_ms)
        await tracing.receipt(self.store, self.name, outcome, receipt.state.name)
        if not outcome.matched:
            self._count("unmatched_receipts")
            log.info("smpp_receipt_unmatched", carrier_id=receipt.message_id)
        elif outcome.duplicate:
            self._count("duplicate_receipts")
        return smpp.CommandStatus.ESME_ROK

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


async def _ignore(_: smpp.Pdu) -> None:
    """A late answer nobody waits for any more."""


def _phrase(status: smpp.CommandStatus) -> str:
    # Every decoded status is a CommandStatus: unlisted codes are pseudo-members.
    return f"{status.name} ({status.phrase})"
