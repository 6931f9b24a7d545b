"""A fake SMSC: a real SMPP 3.4 server on 127.0.0.1, for tests and benchmarks.

Theory of operation
===================

:class:`FakeSMSC` listens on TCP and speaks SMPP through
:class:`iwork_mc.smpp.Connection` in the SMSC role, one connection per ESME
session.  It behaves as a well-run operator SMSC by default: it accepts every
bind, answers every ``submit_sm`` with a fresh hexadecimal ``message_id``,
and, when ``registered_delivery`` asks for one (§5.2.17), sends a delivery
receipt (a ``deliver_sm`` with ``esm_class`` 0x04, the Appendix B text and the
``receipted_message_id``/``message_state`` TLVs).  Everything an operator does
that a channel must survive is a field of :class:`SMSCPolicy`: refused binds,
throttling, rejected destinations, receipts early, twice, late or out of
order, failed segments, dropped connections, slow responses.

Everything the fake saw is kept for assertions: :attr:`FakeSMSC.submissions`
(every ``submit_sm``, in arrival order), :meth:`FakeSMSC.messages` (their
texts, multipart ones reassembled with :func:`iwork_mc.smpp.reassemble`),
:attr:`FakeSMSC.receipts` (every receipt sent and what became of it) and the
counters (``binds``, ``submits``, ``throttled``, ``rejected``,
``receipts_sent``, ``receipts_acked``, ``connections``, and a few more).
Each submission names the session it came on, and ``max_outstanding`` is the
most ``submit_sm`` one session had unanswered at once (with ``resp_delay``),
so a test can see the ESME's window and how it spreads load over its binds.
:meth:`FakeSMSC.wait_for` waits until a condition on them holds.

Two things an operator's SMSC does are methods rather than policy:
:meth:`FakeSMSC.restart` (a crash and a comeback, optionally numbering
message ids from 1 again) and :meth:`FakeSMSC.send_stray_receipt` (a receipt
for an id the ESME never learned).

Receipts go to a receiver or transceiver session bound with the
``system_id`` that submitted the message; with none bound they wait, as a
real SMSC keeps them, until one binds (a receipt due after its session ended
included).  A receipt that is refused (a ``deliver_sm_resp`` with an error
status) or whose session closes before it is acknowledged counts as
unacknowledged and is sent again after ``policy.receipt_retry_s``, up to
``policy.receipt_attempts`` times in all.

The port is bound (not listening) from construction on, so ``port=0`` gives a
port that the test can hand to the code under test before the SMSC "comes
up" (``started=False``): until :meth:`FakeSMSC.start`, connecting to it is
refused, exactly as for an SMSC that is down.  :meth:`FakeSMSC.stop` drops
every session without an unbind, as a crash would, and keeps the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from iwork_mc import smpp

__all__ = ["FakeSMSC", "ReceiptRecord", "SMSCPolicy", "Submission"]

_T = TypeVar("_T")
_HOST = "127.0.0.1"
#: registered_delivery bits 0-1 (§5.2.17): 01 any outcome, 10 failure only.
_RECEIPT_ALWAYS = 0x01
_RECEIPT_ON_FAILURE = 0x02
_BIND_RESPONSES: dict[
    type[smpp.Pdu],
    type[smpp.BindTransmitterResp | smpp.BindReceiverResp | smpp.BindTransceiverResp],
] = {
    smpp.BindTransmitter: smpp.BindTransmitterResp,
    smpp.BindReceiver: smpp.BindReceiverResp,
    smpp.BindTransceiver: smpp.BindTransceiverResp,
}


@dataclass(frozen=True, kw_only=True)
class SMSCPolicy:
    """
    How the fake SMSC behaves; the defaults accept everything and deliver.

    Attributes:
        system_id: the only ``system_id`` a bind may use (``None``: any).
        password: the only password a bind may use (``None``: any).  A bind
            that fails either check is answered ESME_RBINDFAIL.
        smsc_system_id: the ``system_id`` the SMSC names itself in bind responses.
        receipt: the final state of every message (a :class:`MessageState`), or
            per destination: a mapping from destination prefix to state, the
            longest matching prefix winning, DELIVERED where none matches.
        receipt_delay: seconds from the ``submit_sm`` to the final state and
            its receipt.  ``query_sm`` reports ENROUTE until then.
        send_receipts: whether to send receipts at all (when asked for).
        receipt_before_resp: send the receipt before the ``submit_sm_resp``
            (``receipt_delay`` is then ignored).
        duplicate_receipts: send every receipt twice.
        out_of_order: after the final receipt, send one with
            ``intermediate_state``, as SMSCs that reorder do.
        intermediate_state: the state of that late receipt.
        segment_states: the final state of segments of multipart messages by
            their sequence number (1 is the first), overriding ``receipt``:
            ``{2: MessageState.UNDELIVERABLE}`` fails the second part.
        throttle_every: answer ESME_RTHROTTLED to every Nth ``submit_sm``
            (counting all of them; 0: never).
        max_rate: answer ESME_RTHROTTLED to a ``submit_sm`` when this many
            were taken in the second before it (0: no limit).
        reject: destination prefix → the ``command_status`` to refuse it with
            (e.g. ``{"8613900": CommandStatus.ESME_RINVDSTADR}``).
        drop_after: close a connection, without answering, when a
            ``submit_sm`` arrives after this many were answered on it (``None``:
            never).  Responses still delayed by ``resp_delay`` are lost too.
        drops: how many connections ``drop_after`` drops (``None``: every one).
        resp_delay: seconds before each ``submit_sm_resp`` and ``query_sm_resp``.
        supports_query_sm: answer ``query_sm`` with the message's state;
            otherwise refuse it with ESME_RINVCMDID.
        answer_enquire_link: answer ``enquire_link`` (``False`` models an
            SMSC that hangs).
        refuse_binds: answer every bind ESME_RBINDFAIL (an SMSC that is up but
            will not take this ESME, say during maintenance).
        receipt_retry_s: seconds before an unacknowledged receipt is sent again.
        receipt_attempts: how many times a receipt is sent at most.
    """

    system_id: str | None = None
    password: str | None = None
    smsc_system_id: str = "FAKESMSC"
    receipt: smpp.MessageState | Mapping[str, smpp.MessageState] = smpp.MessageState.DELIVERED
    receipt_delay: float = 0.0
    send_receipts: bool = True
    receipt_before_resp: bool = False
    duplicate_receipts: bool = False
    out_of_order: bool = False
    intermediate_state: smpp.MessageState = smpp.MessageState.ENROUTE
    segment_states: Mapping[int, smpp.MessageState] = field(default_factory=dict)
    throttle_every: int = 0
    max_rate: float = 0.0
    reject: Mapping[str, smpp.CommandStatus] = field(default_factory=dict)
    drop_after: int | None = None
    drops: int | None = 1
    resp_delay: float = 0.0
    supports_query_sm: bool = True
    answer_enquire_link: bool = True
    refuse_binds: bool = False
    receipt_retry_s: float = 0.1
    receipt_attempts: int = 3

    def final_state(self, destination: str, segment: int | None) -> smpp.MessageState:
        """The final state of a message (or one segment of it) to ``destination``."""
        if segment is not None and segment in self.segment_states:
            return self.segment_states[segment]
        if isinstance(self.receipt, smpp.MessageState):
            return self.receipt
        state = _longest_prefix(self.receipt, destination)
        return smpp.MessageState.DELIVERED if state is None else state


@dataclass(frozen=True, kw_only=True)
class Submission:
    """
    One ``submit_sm`` the fake received, and how it answered it.

    Attributes:
        message_id: the ID given in ``submit_sm_resp``; ``""`` if refused.
        status: the ``command_status`` answered (ESME_ROK when taken).  A
            submit lost to ``drop_after`` is not recorded.
        system_id: the ``system_id`` of the session it came on.
        source_addr, destination: the addresses.
        data_coding, esm_class, registered_delivery: as sent.
        short_message: the raw octets, a UDH included.
        tlvs: the optional parameters, as sent.
        concatenation: where the segment sits in a multipart message (from its
            UDH or SAR TLVs), or ``None`` for a message sent whole.
        pdu: the ``submit_sm`` itself.
        session: which connection it came on: 1 for the first the SMSC
            accepted, 2 for the next, and so on.
    """

    message_id: str
    status: smpp.CommandStatus
    system_id: str
    source_addr: str
    destination: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    tlvs: tuple[smpp.Tlv, ...]
    concatenation: smpp.Concatenation | None
    pdu: smpp.SubmitSm
    session: int = 0

    @property
    def accepted(self) -> bool:
        """Whether the SMSC took the message (ESME_ROK)."""
        return self.status == smpp.CommandStatus.ESME_ROK


@dataclass(kw_only=True)
class ReceiptRecord:
    """
    One delivery receipt the fake sent, and its acknowledgement.

    Attributes:
        message_id: the message it is about.
        state: the state it reports.
        destination: the handset the message was for.
        attempt: 1 for the first sending, 2 for a resend, and so on.
        ack_status: the ``deliver_sm_resp`` status, or ``None`` while (or if
            ever) unanswered.
    """

    message_id: str
    state: smpp.MessageState
    destination: str
    attempt: int = 1
    ack_status: smpp.CommandStatus | None = None

    @property
    def acked(self) -> bool:
        """Whether the ESME answered ESME_ROK."""
        return self.ack_status == smpp.CommandStatus.ESME_ROK


@dataclass
class _Message:
    """What the SMSC knows of a message it took: for receipts and query_sm."""

    submission: Submission
    final_state: smpp.MessageState
    submitted_at: datetime
    state: smpp.MessageState = smpp.MessageState.ENROUTE
    done_at: datetime | None = None


@dataclass
class _Pending:
    """A receipt waiting for a receiver session to bind."""

    message: _Message
    state: smpp.MessageState
    attempt: int


class _Session:
    """One ESME connection."""

    def __init__(
        self,
        smsc: FakeSMSC,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.smsc = smsc
        self.number = number
        self.outstanding = 0  # submit_sm taken and not yet answered
        self.reader = reader
        self.writer = writer
        self.conn = smpp.Connection(our_role=smpp.Role.SMSC)
        self.system_id = ""
        self.answered = 0  # submit_sm answered, for drop_after
        self.receipts: dict[int, tuple[ReceiptRecord, _Pending]] = {}  # by sequence_number
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def can_receive(self) -> bool:
        return not self.closed and self.conn.state in (smpp.State.BOUND_RX, smpp.State.BOUND_TRX)

    def write(self, pdu: smpp.Pdu) -> bool:
        """Send a PDU; ``False`` if the session can no longer carry it."""
        if self.closed:
            return False
        try:
            data = self.conn.send(pdu)
        except smpp.LocalProtocolError:
            return False
        self.writer.write(data)
        return True

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay`` seconds unless the session closes first."""

        async def run() -> None:
            await asyncio.sleep(delay)
            if not self.closed:
                action()

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks:
            task.cancel()
        self.writer.close()
        self.smsc._session_closed(self)

    async def run(self) -> None:
        try:
            while not self.closed:
                try:
                    event = self.conn.next_event()
                except smpp.RemoteProtocolError as exc:
                    if exc.reply is not None:
                        self.write(exc.reply)
                    if self.conn.state is smpp.State.CLOSED:
                        break
                    continue
                if event is smpp.NEED_DATA:
                    try:
                        data = await self.reader.read(65536)
                    except ConnectionError:
                        data = b""
                    self.conn.receive_data(data)
                    continue
                if event is smpp.CLOSED:
                    break
                self.smsc._handle(self, event)
                if self.writer.transport.get_write_buffer_size() > 1 << 16:
                    with contextlib.suppress(ConnectionError):
                        await self.writer.drain()
        finally:
            self.close()


class FakeSMSC:
    """
    A fake SMSC on 127.0.0.1, driven by an :class:`SMSCPolicy`.

    Use it as an async context manager (started on entry unless
    ``started=False``, stopped on exit), or call :meth:`start` and
    :meth:`stop` yourself::

        async with FakeSMSC(policy=SMSCPolicy(throttle_every=3)) as smsc:
            ...  # point the code under test at smsc.host, smsc.port

    Without the context manager, :meth:`aclose` releases the port at the end.

    Args:
        policy: how to behave; see :class:`SMSCPolicy`.
        port: the TCP port; 0 picks a free one (read it from :attr:`port`).
        started: whether entering the context starts the server.
    """

    host: str = _HOST

    def __init__(
        self, policy: SMSCPolicy | None = None, *, port: int = 0, started: bool = True
    ) -> None:
        self.policy = policy if policy is not None else SMSCPolicy()
        self._autostart = started
        self._sock: socket.socket | None = self._bind(port)
        self.port: int = self._sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._sessions: dict[_Session, None] = {}  # in connection order
        self._handlers: set[asyncio.Task[None]] = set()  # the server's connection tasks
        self._messages: dict[str, _Message] = {}
        self._waiting: dict[str, list[_Pending]] = {}  # receipts by system_id, no receiver bound
        self._recent: deque[float] = deque()  # monotonic times of taken submits, for max_rate
        self._next_id = 0
        self._changed: asyncio.Event | None = None
        self._timers: set[asyncio.TimerHandle] = set()  # receipts to come, resends
        #: Every ``submit_sm`` received (except those lost to ``drop_after``).
        self.submissions: list[Submission] = []
        #: Every delivery receipt sent, resends included.
        self.receipts: list[ReceiptRecord] = []
        #: Successful binds.
        self.binds = 0
        #: Binds refused for their credentials.
        self.binds_refused = 0
        #: ``submit_sm`` received, answered or not.
        self.submits = 0
        #: ``submit_sm`` answered ESME_RTHROTTLED.
        self.throttled = 0
        #: ``submit_sm`` refused by ``policy.reject``.
        self.rejected = 0
        #: Receipts (``deliver_sm``) sent, duplicates and resends included.
        self.receipts_sent = 0
        #: Receipts answered ESME_ROK.
        self.receipts_acked = 0
        #: TCP connections accepted.
        self.connections = 0
        #: Connections closed by ``drop_after``.
        self.dropped = 0
        #: ``query_sm`` answered.
        self.queries = 0
        #: ``enquire_link`` received.
        self.enquire_links = 0
        #: The most ``submit_sm`` one session had unanswered at once (the ESME's window in use).
        self.max_outstanding = 0

    # -- lifecycle ---------------------------------------------------------------

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            sock.close()
            raise
        return sock

    @property
    def started(self) -> bool:
        """Whether the SMSC accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Start accepting connections on :attr:`port`."""
        if self._server is not None:
            return
        sock = self._sock if self._sock is not None else self._bind(self.port)
        self._sock = None
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def stop(self) -> None:
        """Stop listening and drop every session without an unbind (as a crash does)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            session.writer.transport.abort()
            session.close()
        if server is not None:
            await server.wait_closed()
        # Python 3.11's wait_closed() does not wait for the connection handlers.
        handlers = [task for task in self._handlers if task is not asyncio.current_task()]
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=1.0)
            for task in late:
                task.cancel()
        if self._sock is None:
            self._sock = self._bind(self.port)  # keep the port: connecting is refused

    async def restart(self, *, reuse_ids: bool = False) -> None:
        """
        Crash and come back on the same port.

        Args:
            reuse_ids: start ``message_id`` from 1 again and forget the messages
                taken before (``query_sm`` no longer knows them), as an SMSC
                whose id counter lives in memory does.  Receipts still waiting
                for a receiver are kept and sent once one binds.
        """
        await self.stop()
        if reuse_ids:
            self._next_id = 0
            self._messages.clear()
        await self.start()

    def send_stray_receipt(
        self,
        message_id: str,
        state: smpp.MessageState,
        *,
        destination: str,
        system_id: str,
        source_addr: str = "",
    ) -> None:
        """
        Send a receipt for a message this ESME never learned the id of.

        An SMSC does this for a ``submit_sm`` whose response was lost, or for a
        message taken before it restarted.  The receipt goes to a session bound
        with ``system_id`` (or waits for one), like any other.
        """
        pdu = smpp.SubmitSm(source_addr=source_addr, destination_addr=destination,
                            registered_delivery=_RECEIPT_ALWAYS)  # fmt: skip
        submission = Submission(
            message_id=message_id, status=smpp.CommandStatus.ESME_ROK, system_id=system_id,
            source_addr=source_addr, destination=destination, data_coding=0, esm_class=0,
            registered_delivery=_RECEIPT_ALWAYS, short_message=b"", tlvs=(), concatenation=None,
            pdu=pdu,
        )  # fmt: skip
        now = datetime.now()
        message = _Message(submission=submission, final_state=state, submitted_at=now,
                           state=state, done_at=now)  # fmt: skip
        self._send_receipt(_Pending(message, state, attempt=1))
        self._notify()

    async def __aenter__(self) -> Self:
        if self._autostart:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop, forget pending receipts and release the port."""
        await self.stop()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- what the tests read -------------------------------------------------------

    @property
    def accepted(self) -> list[Submission]:
        """The submissions the SMSC took (ESME_ROK), in arrival order."""
        return [s for s in self.submissions if s.accepted]

    @property
    def unacked_receipts(self) -> list[ReceiptRecord]:
        """Receipts sent that have no ESME_ROK answer (yet)."""
        return [r for r in self.receipts if not r.acked]

    @property
    def sessions(self) -> int:
        """How many ESME connections are open now."""
        return len(self._sessions)

    def messages(self, destination: str | None = None) -> list[str]:
        """
        The texts taken, multipart ones reassembled, in order of their first segment.

        Segments are grouped by destination and concatenation reference; a
        multipart message with segments missing gives the text of those taken.

        Args:
            destination: only messages to this address.
        """
        groups = self._grouped(destination)
        return [_reassembled(segments) for segments in groups.values()]

    @property
    def multipart(self) -> dict[tuple[str, int], str]:
        """
        The texts of multipart messages taken, by (destination, concatenation reference).

        Each is reassembled from the segments taken so far, in sequence order.
        """
        groups = self._grouped(None)
        return {key: _reassembled(segs) for key, segs in groups.items() if isinstance(key, tuple)}

    def _grouped(self, destination: str | None) -> dict[tuple[str, int] | int, list[Submission]]:
        # A multipart message's segments under (destination, reference); a
        # message sent whole alone, under its index among the accepted.
        groups: dict[tuple[str, int] | int, list[Submission]] = {}
        for index, sub in enumerate(self.accepted):
            if destination is not None and sub.destination != destination:
                continue
            info = sub.concatenation
            key: tuple[str, int] | int = (
                index if info is None else (sub.destination, info.reference)
            )
            groups.setdefault(key, []).append(sub)
        return groups

    def state_of(self, message_id: str) -> smpp.MessageState | None:
        """The state of a message as ``query_sm`` would tell it, or ``None`` if unknown."""
        message = self._messages.get(message_id)
        return None if message is None else message.state

    async def wait_for(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """
        Wait until ``condition()`` is true, checking after every event.

        Raises:
            TimeoutError: if it is still false after ``within`` seconds.
        """
        changed = self._event()
        async with asyncio.timeout(within):
            while not condition():
                changed.clear()
                await changed.wait()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- sessions ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None  # the server runs us in a task
        self._handlers.add(task)
        session = _Session(self, reader, writer, self.connections)
        self._sessions[session] = None
        self._notify()
        try:
            await session.run()
        finally:
            self._handlers.discard(task)

    def _session_closed(self, session: _Session) -> None:
        self._sessions.pop(session, None)
        # Receipts the session never answered go back to wait for a receiver.
        for record, pending in session.receipts.values():
            if record.ack_status is None:
                self._retry(pending)
        session.receipts.clear()
        self._notify()

    def _handle(self, session: _Session, pdu: smpp.Pdu) -> None:
        if isinstance(pdu, smpp.BindTransmitter | smpp.BindReceiver | smpp.BindTransceiver):
            self._on_bind(session, pdu)
        elif isinstance(pdu, smpp.SubmitSm):
            self._on_submit(session, pdu)
        elif isinstance(pdu, smpp.DeliverSmResp):
            self._on_deliver_sm_resp(session, pdu)
        elif isinstance(pdu, smpp.QuerySm):
            self._on_query(session, pdu)
        elif isinstance(pdu, smpp.EnquireLink):
            self.enquire_links += 1
            if self.policy.answer_enquire_link:
                session.write(smpp.EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, smpp.Unbind):
            session.write(smpp.UnbindResp(sequence_number=pdu.sequence_number))
        # Responses to our own requests (enquire_link_resp, unbind_resp,
        # generic_nack) need no answer.
        self._notify()

    def _on_bind(
        self,
        session: _Session,
        pdu: smpp.BindTransmitter | smpp.BindReceiver | smpp.BindTransceiver,
    ) -> None:
        policy = self.policy
        resp_class = _BIND_RESPONSES[type(pdu)]
        refused = (
            policy.refuse_binds
            or (policy.system_id is not None and pdu.system_id != policy.system_id)
            or (policy.password is not None and pdu.password != policy.password)
        )
        if refused:
            self.binds_refused += 1
            session.write(
                resp_class(
                    sequence_number=pdu.sequence_number,
                    command_status=smpp.CommandStatus.ESME_RBINDFAIL,
                )
            )
            return
        session.write(
            resp_class(
                sequence_number=pdu.sequence_number,
                system_id=policy.smsc_system_id,
                tlvs=(smpp.Tlv(smpp.TlvTag.SC_INTERFACE_VERSION, b"\x34"),),
            )
        )
        self.binds += 1
        session.system_id = pdu.system_id
        if session.can_receive:
            for pending in self._waiting.pop(session.system_id, []):
                self._send_receipt(pending)

    def _on_submit(self, session: _Session, pdu: smpp.SubmitSm) -> None:
        policy = self.policy
        self.submits += 1
        if (
            policy.drop_after is not None
            and session.answered >= policy.drop_after
            and (policy.drops is None or self.dropped < policy.drops)
        ):
            self.dropped += 1
            session.close()
            return
        status = smpp.CommandStatus.ESME_ROK
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if (policy.throttle_every and self.submits % policy.throttle_every == 0) or (
            policy.max_rate and len(self._recent) >= policy.max_rate
        ):
            status = smpp.CommandStatus.ESME_RTHROTTLED
            self.throttled += 1
        else:
            self._recent.append(now)
            refusal = _longest_prefix(policy.reject, pdu.destination_addr)
            if refusal is not None:
                status = refusal
                self.rejected += 1
        try:
            info = smpp.concatenation(pdu)
        except ValueError:
            info = None
        message_id = ""
        if status == smpp.CommandStatus.ESME_ROK:
            self._next_id += 1
            message_id = f"{self._next_id:08x}"
        submission = Submission(
            message_id=message_id,
            status=status,
            system_id=session.system_id,
            source_addr=pdu.source_addr,
            destination=pdu.destination_addr,
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            short_message=pdu.short_message,
            tlvs=pdu.tlvs,
            concatenation=info,
            pdu=pdu,
            session=session.number,
        )
        self.submissions.append(submission)
        session.answered += 1
        resp = smpp.SubmitSmResp(
            sequence_number=pdu.sequence_number, command_status=status, message_id=message_id
        )
        if status != smpp.CommandStatus.ESME_ROK:
            self._answer(session, resp)
            return
        message = _Message(
            submission=submission,
            final_state=policy.final_state(
                pdu.destination_addr, None if info is None else info.seqnum
            ),
            submitted_at=datetime.now(),
        )
        self._messages[message_id] = message
        if policy.receipt_before_resp:
            self._finish(message)
            self._answer(session, resp)
        else:
            self._answer(session, resp)
            if policy.receipt_delay > 0:
                # The SMSC's business, not the session's: it happens even if the session ends.
                self._call_later(policy.receipt_delay, lambda: self._finish(message))
            else:
                self._finish(message)

    def _answer(self, session: _Session, resp: smpp.Pdu) -> None:
        if self.policy.resp_delay > 0:
            self._held(session, +1)
            session.later(self.policy.resp_delay, lambda: self._write_and_notify(session, resp))
        else:
            session.write(resp)

    def _write_and_notify(self, session: _Session, pdu: smpp.Pdu) -> None:
        self._held(session, -1)
        session.write(pdu)
        self._notify()

    def _held(self, session: _Session, change: int) -> None:
        # Only delayed answers are ever outstanding: the others go out before the next PDU is read.
        session.outstanding += change
        self.max_outstanding = max(self.max_outstanding, session.outstanding)

    def _finish(self, message: _Message) -> None:
        """The message reaches its final state; send the receipts it was asked for."""
        message.state = message.final_state
        message.done_at = datetime.now()
        asked = message.submission.registered_delivery & 0x03
        wanted = asked == _RECEIPT_ALWAYS or (
            asked == _RECEIPT_ON_FAILURE and message.state != smpp.MessageState.DELIVERED
        )
        if self.policy.send_receipts and wanted:
            states = [message.state]
            if self.policy.duplicate_receipts:
                states.append(message.state)
            if self.policy.out_of_order:
                states.append(self.policy.intermediate_state)
            for state in states:
                self._send_receipt(_Pending(message, state, attempt=1))
        self._notify()

    def _receiver_for(self, system_id: str) -> _Session | None:
        for session in self._sessions:
            if session.can_receive and session.system_id == system_id:
                return session
        return None

    def _send_receipt(self, pending: _Pending) -> None:
        submission = pending.message.submission
        session = self._receiver_for(submission.system_id)
        if session is None:
            self._waiting.setdefault(submission.system_id, []).append(pending)
            return
        sequence_number = session.conn.next_sequence_number()
        text = ""
        with contextlib.suppress(ValueError):
            text = smpp.reassemble([submission.pdu])
        receipt = smpp.build_receipt(
            message_id=submission.message_id,
            state=pending.state,
            source_addr=submission.destination,
            destination_addr=submission.source_addr,
            submitted_at=pending.message.submitted_at,
            done_at=pending.message.done_at,
            error="000" if pending.state == smpp.MessageState.DELIVERED else "001",
            text=text,
            sequence_number=sequence_number,
        )
        if not session.write(receipt):
            self._waiting.setdefault(submission.system_id, []).append(pending)
            return
        record = ReceiptRecord(
            message_id=submission.message_id,
            state=pending.state,
            destination=submission.destination,
            attempt=pending.attempt,
        )
        self.receipts.append(record)
        self.receipts_sent += 1
        session.receipts[sequence_number] = (record, pending)

    def _on_deliver_sm_resp(self, session: _Session, pdu: smpp.DeliverSmResp) -> None:
        assert pdu.sequence_number is not None  # decoded PDUs always have one
        entry = session.receipts.pop(pdu.sequence_number, None)
        if entry is None:
            return
        record, pending = entry
        record.ack_status = pdu.command_status
        if record.acked:
            self.receipts_acked += 1
        else:
            self._retry(pending)

    def _retry(self, pending: _Pending) -> None:
        if pending.attempt >= self.policy.receipt_attempts:
            return
        again = _Pending(pending.message, pending.state, pending.attempt + 1)
        self._call_later(self.policy.receipt_retry_s, lambda: self._resend(again))

    def _resend(self, pending: _Pending) -> None:
        self._send_receipt(pending)  # held until a receiver binds if none is
        self._notify()

    def _call_later(self, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.discard(handle)
            action()

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    def _on_query(self, session: _Session, pdu: smpp.QuerySm) -> None:
        self.queries += 1
        seq = pdu.sequence_number
        if not self.policy.supports_query_sm:
            status = smpp.CommandStatus.ESME_RINVCMDID
            self._answer(session, smpp.QuerySmResp(sequence_number=seq, command_status=status))
            return
        message = self._messages.get(pdu.message_id)
        if message is None:
            status = smpp.CommandStatus.ESME_RINVMSGID
            self._answer(session, smpp.QuerySmResp(sequence_number=seq, command_status=status))
            return
        final_date = ""
        if message.done_at is not None:
            final_date = message.done_at.strftime("%y%m%d%H%M%S") + "000+"
        self._answer(
            session,
            smpp.QuerySmResp(
                sequence_number=seq,
                message_id=pdu.message_id,
                final_date=final_date,
                message_state=message.state,
                error_code=_error_code(message.state),
            ),
        )


def _reassembled(segments: list[Submission]) -> str:
    try:
        return smpp.reassemble([s.pdu for s in segments])
    except ValueError:
        return ""


def _error_code(state: smpp.MessageState) -> int:
    ok = (smpp.MessageState.ENROUTE, smpp.MessageState.DELIVERED, smpp.MessageState.ACCEPTED)
    return 0 if state in ok else 1


def _longest_prefix(table: Mapping[str, _T], destination: str) -> _T | None:
    best: str | None = None
    for prefix in table:
        if destination.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else table[best]
