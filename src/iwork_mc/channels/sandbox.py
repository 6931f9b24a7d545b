"""The sandbox channel: delivers to a local file instead of a phone.

Each submission is appended as one JSON line to ``<data_dir>/sandbox/deliveries.jsonl``
(fsynced, so a test or a person can read exactly what was sent).  A line is written
whole or not at all: when the disk is full (or the file too large) the partial line
is cut off again and the send fails transiently, so the worker retries it and never
records as delivered a message whose line is not in the file.  The file is bounded:
past ``max_bytes`` it becomes ``deliveries.jsonl.1`` (older ones shift up to
``.<backups>``, the oldest is dropped) and a new one is started.  With ``echo`` on,
each line is also printed with the receiver masked.  The file stands in for the
handset, so it holds the full number; logs never do.

Magic receiver numbers.  Like a carrier's test numbers, a few reserved, valid
Chinese mobile numbers (``+86 138 0000 00NN``) make the sandbox take every
delivery path the worker and the store know, with no carrier at all.  Every
other number is delivered at once.  :data:`MAGIC_NUMBERS` is the one source of
this table (docs/howto/sandbox.md shows it too):

=================  ============================  =============================================
Number             Behaviour                     What the sandbox does
=================  ============================  =============================================
+8613800000000     ``delivered``                 delivered at once (as any other number)
+8613800000001     ``permanent_failure``         refuses it: the message fails, no retry
+8613800000002     ``transient_then_delivered``  fails transiently on attempts 1 and 2,
                                                 delivers on the 3rd
+8613800000003     ``always_transient``          fails transiently every time, until the
                                                 retries run out or the message expires
+8613800000004     ``slow_receipt``              submitted; a ``delivered`` receipt follows
                                                 after ``receipt_delay_s``
+8613800000005     ``duplicate_receipts``        submitted; the ``delivered`` receipt comes
                                                 twice
+8613800000006     ``out_of_order_receipts``     submitted; ``delivered`` comes first, then a
                                                 late ``enroute`` that must not downgrade it
+8613800000007     ``undeliverable_receipt``     submitted; an ``undeliverable`` receipt
                                                 fails the message
+8613800000008     ``in_doubt_then_delivered``   the answer to attempt 1 is "lost" (in doubt,
                                                 resend after ``in_doubt_retry_s``); the
                                                 resend is delivered
=================  ============================  =============================================

The behaviours are stateless: they depend only on the message's attempt count
on this channel (``step_attempts``, or ``attempts`` for a message that predates
routes), so they survive restarts and work with several workers.

The receipt numbers go through the store exactly as the SMPP channel's
receipts do (``add_segments`` → ``segment_submitted`` → ``apply_receipt``),
so the channel needs the store for them; built without one, it refuses those
numbers with a :class:`PermanentChannelError` that says so.  Receipts are sent
by background tasks; :meth:`SandboxChannel.close` sends the pending ones at once
and waits for them (bounded), and cancels what is still left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

import structlog

from iwork_mc import metrics, tracing
from iwork_mc.channels.base import (
    Delivered,
    InDoubt,
    PermanentChannelError,
    SendResult,
    Submitted,
    TransientChannelError,
)
from iwork_mc.messages import Message
from iwork_mc.privacy import mask_phone
from iwork_mc.segments import SegmentState
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError

__all__ = [
    "MAGIC_NUMBERS",
    "RECEIPT_BEHAVIOURS",
    "TRANSIENT_FAILURES",
    "Behaviour",
    "SandboxChannel",
    "append_line",
]

log = structlog.get_logger("iwork_mc.channels.sandbox")


class Behaviour(StrEnum):
    """What the sandbox does with a message, chosen by its receiver (see :data:`MAGIC_NUMBERS`)."""

    DELIVERED = "delivered"  #: Delivered at once (every number that is not magic)
    PERMANENT_FAILURE = "permanent_failure"  #: Refused for good: the message fails at once
    #: Transient failures on the first :data:`TRANSIENT_FAILURES` attempts, then delivered
    TRANSIENT_THEN_DELIVERED = "transient_then_delivered"
    #: A transient failure on every attempt: retries run out, or the message expires
    ALWAYS_TRANSIENT = "always_transient"
    SLOW_RECEIPT = "slow_receipt"  #: Submitted; a ``delivered`` receipt follows later
    DUPLICATE_RECEIPTS = "duplicate_receipts"  #: Submitted; the ``delivered`` receipt comes twice
    #: Submitted; ``delivered`` then a late ``enroute`` (which changes nothing)
    OUT_OF_ORDER_RECEIPTS = "out_of_order_receipts"
    #: Submitted; an ``undeliverable`` receipt fails the message
    UNDELIVERABLE_RECEIPT = "undeliverable_receipt"
    #: The first attempt's answer is lost (in doubt); the resend is delivered
    IN_DOUBT_THEN_DELIVERED = "in_doubt_then_delivered"


#: Reserved receivers (E.164, as the gateway normalises them) and what each simulates.
#: All are valid Chinese mobile numbers, so the gateway accepts them.
MAGIC_NUMBERS: Mapping[str, Behaviour] = MappingProxyType(
    {
        "+8613800000000": Behaviour.DELIVERED,
        "+8613800000001": Behaviour.PERMANENT_FAILURE,
        "+8613800000002": Behaviour.TRANSIENT_THEN_DELIVERED,
        "+8613800000003": Behaviour.ALWAYS_TRANSIENT,
        "+8613800000004": Behaviour.SLOW_RECEIPT,
        "+8613800000005": Behaviour.DUPLICATE_RECEIPTS,
        "+8613800000006": Behaviour.OUT_OF_ORDER_RECEIPTS,
        "+8613800000007": Behaviour.UNDELIVERABLE_RECEIPT,
        "+8613800000008": Behaviour.IN_DOUBT_THEN_DELIVERED,
    }
)

#: How many attempts of ``transient_then_delivered`` fail before one is delivered.
TRANSIENT_FAILURES = 2

#: The receipts each receipt behaviour sends, in order: (state, error).
_RECEIPTS: Mapping[Behaviour, tuple[tuple[SegmentState, str | None], ...]] = MappingProxyType(
    {
        Behaviour.SLOW_RECEIPT: ((SegmentState.DELIVERED, None),),
        Behaviour.DUPLICATE_RECEIPTS: (
            (SegmentState.DELIVERED, None),
            (SegmentState.DELIVERED, None),
        ),
        Behaviour.OUT_OF_ORDER_RECEIPTS: (
            (SegmentState.DELIVERED, None),
            (SegmentState.ENROUTE, None),
        ),
        Behaviour.UNDELIVERABLE_RECEIPT: (
            (SegmentState.UNDELIVERABLE, "sandbox: undeliverable (simulated)"),
        ),
    }
)

#: The behaviours whose outcome arrives as receipts through the store.
RECEIPT_BEHAVIOURS = frozenset(_RECEIPTS)

#: How long close() lets pending receipts finish before cancelling them.
_CLOSE_GRACE_S = 5.0


class SandboxChannel:
    """A channel that writes each message to ``<directory>/deliveries.jsonl``.

    Args:
        directory: Where ``deliveries.jsonl`` lives (created 0700, the file 0600).
        echo: Also print each delivery, the receiver masked, to ``out``.
        out: Where ``echo`` prints (default: standard output).
        store: The store receipts are recorded in; without one, the receipt
            numbers of :data:`MAGIC_NUMBERS` are refused.
        receipt_delay_s: How long after the submission a receipt arrives.
        in_doubt_retry_s: The ``retry_after_s`` of the simulated in-doubt answer.
        clock: The time of the store records, in epoch seconds.
        name: The channel's name in routes, timelines and receipts.
    """

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "sandbox",
        echo: bool = False,
        out: TextIO | None = None,
        store: Store | None = None,
        receipt_delay_s: float = 2.0,
        in_doubt_retry_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        max_bytes: int = 10_000_000,
        backups: int = 3,
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.name = name
        self.path = directory / "deliveries.jsonl"
        self.max_bytes = max_bytes
        self.backups = backups
        self.store = store
        self.receipt_delay_s = receipt_delay_s
        self.in_doubt_retry_s = in_doubt_retry_s
        self._echo = echo
        self._out = out or sys.stdout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._receipts: set[asyncio.Task[None]] = set()

    def ready(self) -> bool:
        return True

    def health(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "file": str(self.path),
            "pending_receipts": len(self._receipts),
        }

    async def open(self) -> None:
        # The file holds phone numbers and texts: its owner's eyes only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        self._closing.clear()

    async def close(self) -> None:
        """Send the pending receipts now, wait for them (bounded), cancel the rest."""
        self._closing.set()
        if not self._receipts:
            return
        pending = set(self._receipts)
        _, late = await asyncio.wait(pending, timeout=_CLOSE_GRACE_S)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
            log.warning("sandbox_receipts_cancelled", count=len(late))

    async def wait_for_receipts(self) -> None:
        """Return once every receipt scheduled so far has been recorded (for tests)."""
        while self._receipts:
            await asyncio.gather(*set(self._receipts), return_exceptions=True)

    async def send(self, message: Message, text: str) -> SendResult:
        receiver = message.event.mobile_receiver
        behaviour = MAGIC_NUMBERS.get(receiver, Behaviour.DELIVERED)
        attempt = message.step_attempts or message.attempts
        ref = f"sandbox-{message.id}-{message.attempts}"
        if behaviour is Behaviour.PERMANENT_FAILURE:
            raise PermanentChannelError(
                f"sandbox: {receiver} is the magic number for a permanent failure"
            )
        if behaviour is Behaviour.ALWAYS_TRANSIENT or (
            behaviour is Behaviour.TRANSIENT_THEN_DELIVERED and attempt <= TRANSIENT_FAILURES
        ):
            raise TransientChannelError(
                f"sandbox: simulated transient failure ({behaviour.value}, attempt {attempt})"
            )
        if behaviour is Behaviour.IN_DOUBT_THEN_DELIVERED:
            if attempt <= 1:
                # The carrier got it (the handset will show it twice); only the answer is lost.
                await self._deliver(message, text, ref, outcome="in_doubt")
                raise InDoubt(
                    "sandbox: simulated lost answer; the carrier may have it",
                    self.in_doubt_retry_s,
                )
            if self.store is not None:
                await self.store.note(
                    message.id,
                    now_ms=self._now_ms(),
                    kind="possible_duplicate",
                    detail={
                        "channel": self.name,
                        "attempt": message.attempts,
                        "reason": "an earlier submission got no answer; the carrier may have it",
                    },
                )
        if behaviour in RECEIPT_BEHAVIOURS:
            return await self._submit(message, text, ref, behaviour)
        await self._deliver(message, text, ref, outcome="delivered")
        return Delivered(ref)

    async def _submit(
        self, message: Message, text: str, ref: str, behaviour: Behaviour
    ) -> Submitted:
        store = self.store
        if store is None:
            raise PermanentChannelError(
                f"sandbox: {message.event.mobile_receiver} simulates receipts ({behaviour.value}),"
                " which needs the sandbox channel to be given the store"
            )
        await store.add_segments(
            message.id, attempt=message.attempts, channel=self.name, total=1, now_ms=self._now_ms()
        )
        await self._deliver(message, text, ref, outcome="submitted")
        await store.segment_submitted(
            message.id, attempt=message.attempts, part=1, carrier_id=ref, now_ms=self._now_ms()
        )
        task = asyncio.create_task(self._send_receipts(store, ref, _RECEIPTS[behaviour]))
        self._receipts.add(task)
        task.add_done_callback(self._receipts.discard)
        return Submitted(ref)

    async def _send_receipts(
        self,
        store: Store,
        ref: str,
        receipts: tuple[tuple[SegmentState, str | None], ...],
    ) -> None:
        # Closing cuts the wait short: pending receipts are recorded, not dropped.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=self.receipt_delay_s)
        for state, error in receipts:
            now_ms = self._now_ms()
            try:
                outcome = await store.apply_receipt(
                    channel=self.name,
                    carrier_id=ref,
                    state=state,
                    error=error,
                    now_ms=now_ms,
                    detail={"source": "sandbox", "stat": state.value},
                )
            except StoreError as exc:
                fields = {"carrier_id": ref, "state": state.value}
                outage.log_failure(log, "sandbox_receipt_not_stored", exc, **fields)
                continue
            metrics.count_receipt(self.name, outcome, now_ms)
            await tracing.receipt(store, self.name, outcome, state.value)

    async def _deliver(self, message: Message, text: str, ref: str, *, outcome: str) -> None:
        line = json.dumps(
            {
                "ref": ref,
                "message_id": message.id,
                "app_key": message.app_key,
                "msg_key": message.msg_key,
                "to": message.event.mobile_receiver,
                "text": text,
                "outcome": outcome,
            },
            ensure_ascii=False,
        )
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, line)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            message_text = f"sandbox: cannot write {self.path.name}: {reason}"
            raise TransientChannelError(message_text) from exc
        if self._echo:
            print(f"sandbox ▸ {mask_phone(message.event.mobile_receiver)} ← {text}", file=self._out)

    def _append(self, line: str) -> None:
        # Workers in other processes may share the file: the lock file serialises
        # their appends and rotations (the lock's inode never moves, unlike the file's).
        lock_fd = os.open(
            self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line.encode("utf-8")) + 1 > self.max_bytes:
                _rotate(self.path, self.backups)
            append_line(self.path, line)
        finally:
            os.close(lock_fd)  # releases the lock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` and fsync it, or leave the file as it was.

    One ``write`` of the whole line; a short write (disk full, file size limit)
    or a failed fsync cuts the file back to its previous size, so the next line
    never starts glued to the tail of a torn one.

    Raises:
        OSError: the line could not be written whole (the file is unchanged).
    """
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _rotate(path: Path, backups: int) -> None:
    """``path`` → ``path.1`` → … → ``path.<backups>`` (the oldest is dropped); 0: just cut it."""
    if backups == 0:
        path.unlink(missing_ok=True)
        return
    for number in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{number + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))
