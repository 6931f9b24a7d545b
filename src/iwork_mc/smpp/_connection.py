"""The Connection: one SMPP session, no I/O.

Theory of operation
===================

Like ``h11.Connection``, this object owns everything about a session except
the socket.  Three verbs:

* :meth:`Connection.send` takes a PDU and returns its bytes: the caller
  writes them.  It assigns sequence numbers to requests, refuses what the
  session state forbids (:class:`LocalProtocolError`, nothing sent) and
  records the request as pending until its response arrives.
* :meth:`Connection.receive_data` takes whatever bytes arrived, in any
  chunking; ``b""`` means the peer closed the connection.
* :meth:`Connection.next_event` returns the next PDU, :data:`NEED_DATA` when
  more bytes are needed, or :data:`CLOSED` when the session is over.

Framing (§3.2) is the first four octets of every PDU, ``command_length``.
Bytes wait in a buffer until a whole PDU is there; a ``command_length`` under
16 or over ``max_command_length`` means the stream cannot be trusted any
further, so the session goes to CLOSED and :class:`RemoteProtocolError` is
raised (reply ``None``: close the connection).

A PDU that is framed correctly but malformed inside (an unknown
``command_id``, an over-long ``source_addr``) costs only itself:
``next_event`` raises :class:`RemoteProtocolError` with ``.reply`` set to the
answer the peer is owed (the command's own ``*_resp`` where we model it, else
a ``generic_nack``, carrying the error's ``command_status``, §4.3), and the
next call carries on with the next PDU.

A well-formed PDU that the peer may not send in the current state (§2.3: a
``submit_sm`` before the bind) is handled the same way, because it is the
peer breaking the protocol just as surely: :class:`RemoteProtocolError` with
``command_status`` ESME_RINVBNDSTS (ESME_RALYBND for a second bind), the
decoded PDU as ``.pdu``, and the refusal as ``.reply``; the state does not
move.  So the caller has one rule for every bad PDU: send ``exc.reply`` if it
is set, log, and close the connection if ``conn.state`` is now CLOSED.  An
adapter that simply drops the session on any :class:`ProtocolError` is also
correct, only less patient.  A response is never answered: ``.reply`` is
``None`` for it.

Sequence numbers (§5.1.4) run 1 … 0x7FFFFFFF and wrap to 1, skipping
any still pending.  Responses are matched by ``sequence_number``: a response
(or ``generic_nack``) removes its number from :attr:`Connection.pending`, and
one that matches nothing is still returned, for the caller to log.  Window
sizes, timers and timeouts are the caller's: ``len(conn.pending)`` is the
window, ``conn.pending`` what a timeout would fail.
"""

from __future__ import annotations

import dataclasses
import struct
from enum import Enum
from typing import Final, Literal

from iwork_mc.smpp._codes import CommandId, CommandStatus
from iwork_mc.smpp._errors import LocalProtocolError, RemoteProtocolError
from iwork_mc.smpp._pdu import GenericNack, Pdu
from iwork_mc.smpp._state import Role, Session, State, out_of_state_status
from iwork_mc.smpp._wire import HEADER_LENGTH, PDU_CLASSES, decode, encode

__all__ = ["CLOSED", "ESME", "NEED_DATA", "SMSC", "Connection"]

#: The largest sequence number we assign (§3.2: 0x00000001 to 0x7FFFFFFF).
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF

#: A default large enough for a 64K ``message_payload`` and every mandatory field.
DEFAULT_MAX_COMMAND_LENGTH = 70_000

_RESPONSE_BIT = 0x80000000


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


#: :meth:`Connection.next_event` needs more bytes before it can return a PDU.
NEED_DATA: Final = _Sentinel.NEED_DATA

#: :meth:`Connection.next_event` has no more events: the peer closed the
#: connection, or an unbind was answered.  It is also the state
#: ``State.CLOSED``, so ``conn.state is smpp.CLOSED`` reads naturally too.
CLOSED: Final = State.CLOSED

#: Shorthands for the two roles, as h11 has ``CLIENT`` and ``SERVER``.
ESME: Final = Role.ESME
SMSC: Final = Role.SMSC


class Connection:
    """
    One end of an SMPP 3.4 session, as a state machine over bytes.

    Args:
        our_role: :data:`Role.ESME` (we bind to an SMSC) or
            :data:`Role.SMSC` (we accept binds).
        max_command_length: the largest PDU we accept from the peer; a larger
            ``command_length`` is taken for a broken stream.

    Attributes:
        our_role: the role we play.
        their_role: the role the peer plays.
    """

    def __init__(
        self, our_role: Role, *, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH
    ) -> None:
        if not isinstance(our_role, Role):
            raise TypeError(f"our_role must be a Role, not {our_role!r}")
        self.our_role = our_role
        self.their_role = Role.SMSC if our_role is Role.ESME else Role.ESME
        self._max_command_length = max_command_length
        self._session = Session()
        self._pending: dict[int, CommandId] = {}
        self._next_sequence_number = 1
        # Received bytes not yet turned into events start at _buffer[_start]:
        # moving an index is cheaper than deleting from the front per PDU.
        self._buffer = bytearray()
        self._start = 0
        self._eof = False

    @property
    def state(self) -> State:
        """The session state (§2.3)."""
        return self._session.state

    @property
    def pending(self) -> frozenset[int]:
        """The sequence numbers of our requests that have no response yet."""
        return frozenset(self._pending)

    def next_sequence_number(self) -> int:
        """
        Take the next free sequence number, for a request about to be sent.

        :meth:`send` calls this for requests whose ``sequence_number`` is
        ``None``; call it yourself to know the number before sending.
        """
        for _ in range(MAX_SEQUENCE_NUMBER):
            seq = self._next_sequence_number
            self._next_sequence_number = 1 if seq == MAX_SEQUENCE_NUMBER else seq + 1
            if seq not in self._pending:
                return seq
        raise LocalProtocolError("every sequence number is pending")  # pragma: no cover

    def send(self, pdu: Pdu) -> bytes:
        """
        Turn a PDU into bytes to write, checking that we may send it.

        Args:
            pdu: a request (its ``sequence_number`` may be ``None``: one is
                assigned) or a response (carrying its request's
                ``sequence_number``).

        Returns:
            The bytes to write to the peer.

        Raises:
            LocalProtocolError: if the session state forbids this PDU, a
                response has no ``sequence_number``, or a request reuses a
                pending one.  Nothing changes then.
        """
        command_id, seq = pdu.command_id, pdu.sequence_number
        if command_id.is_response:
            if seq is None:
                raise LocalProtocolError(
                    f"{command_id.phrase} needs the sequence_number of the request it answers"
                )
        elif seq is not None:
            if not 1 <= seq <= MAX_SEQUENCE_NUMBER:
                raise LocalProtocolError(f"sequence_number {seq} is outside 1..0x7FFFFFFF")
            if seq in self._pending:
                raise LocalProtocolError(f"sequence_number {seq} is already pending")
        self._session.process(self.our_role, command_id, pdu.command_status)
        if seq is None:
            seq = self.next_sequence_number()
            pdu = dataclasses.replace(pdu, sequence_number=seq)
        data = encode(pdu)
        if not command_id.is_response:
            self._pending[seq] = command_id
        return data

    def receive_data(self, data: bytes) -> None:
        """
        Hand over bytes received from the peer.

        Args:
            data: any number of bytes, in any chunking; ``b""`` means the
                peer closed the connection (end of file).

        Raises:
            LocalProtocolError: if data comes after end of file.
        """
        if self._eof:
            raise LocalProtocolError("received data after end of file")
        if not data:
            self._eof = True
        elif self._session.state is not State.CLOSED:  # a broken stream is ignored
            if self._start:
                del self._buffer[: self._start]
                self._start = 0
            self._buffer += data

    def next_event(self) -> Pdu | Literal[_Sentinel.NEED_DATA, State.CLOSED]:
        """
        Parse the next event out of the bytes received so far.

        Returns:
            A PDU (:class:`SubmitSmResp`, :class:`DeliverSm`, …);
            :data:`NEED_DATA` when a whole PDU has not arrived yet; or
            :data:`CLOSED` once the peer closed the connection or an unbind
            was answered (the state is then CLOSED or UNBOUND).

        Raises:
            RemoteProtocolError: the peer sent a malformed PDU, or one the
                session state forbids.  Send ``.reply`` if it is set; if the
                state is now CLOSED, the stream is broken: close the connection.
                Otherwise the next call goes on with the next PDU.
        """
        if self._session.state is State.CLOSED:
            return CLOSED
        frame = self._next_frame()
        if frame is not None:
            return self._process(frame)
        if self._eof:
            leftover = len(self._buffer) - self._start
            self._session.process_eof()
            self._buffer.clear()
            self._start = 0
            if leftover:
                raise RemoteProtocolError(
                    f"the connection closed {leftover} octets into a PDU",
                    CommandStatus.ESME_RINVCMDLEN,
                )
            return CLOSED
        return CLOSED if self._session.finished else NEED_DATA

    def _next_frame(self) -> bytes | None:
        available = len(self._buffer) - self._start
        if available < 4:
            return None
        (length,) = struct.unpack_from(">I", self._buffer, self._start)
        if not HEADER_LENGTH <= length <= self._max_command_length:
            header = bytes(self._buffer[self._start : self._start + HEADER_LENGTH])
            self._session.process_eof()  # nothing after this can be trusted
            self._buffer.clear()
            self._start = 0
            command_id, seq = None, None
            if len(header) == HEADER_LENGTH:
                _, command_id, _, seq = struct.unpack(">IIII", header)
            raise RemoteProtocolError(
                f"command_length {length} is outside {HEADER_LENGTH}..{self._max_command_length}",
                CommandStatus.ESME_RINVCMDLEN,
                command_id=command_id,
                sequence_number=seq,
            )
        if available < length:
            return None
        frame = bytes(self._buffer[self._start : self._start + length])
        self._start += length
        return frame

    def _process(self, frame: bytes) -> Pdu:
        try:
            pdu = decode(frame)
        except RemoteProtocolError as exc:
            if exc.command_id is not None and exc.sequence_number is not None:
                if exc.command_id & _RESPONSE_BIT:
                    # A garbled answer is still an answer: the request is over.
                    self._pending.pop(exc.sequence_number, None)
                else:
                    exc.reply = _refusal(exc.command_id, exc.sequence_number, exc.command_status)
            raise
        command_id, seq = pdu.command_id, pdu.sequence_number
        assert seq is not None  # decode always sets it
        if command_id.is_response:
            self._pending.pop(seq, None)
        if self._session.next_state(self.their_role, command_id, pdu.command_status) is None:
            status = out_of_state_status(self.state, command_id)
            error = RemoteProtocolError(
                f"{self.their_role.value} may not send {command_id.phrase}"
                f" in state {self.state.value}",
                status,
                command_id=command_id,
                sequence_number=seq,
            )
            error.pdu = pdu
            if not command_id.is_response:
                error.reply = _refusal(command_id, seq, status)
            raise error
        self._session.process(self.their_role, command_id, pdu.command_status)
        return pdu


def _refusal(command_id: int, sequence_number: int, status: CommandStatus) -> Pdu:
    # The request's own *_resp where we model one, else generic_nack (§4.3).
    try:
        cls: type[Pdu] = PDU_CLASSES[CommandId(command_id | _RESPONSE_BIT)]
    except (ValueError, KeyError):
        cls = GenericNack
    return cls(sequence_number=sequence_number, command_status=status)
