"""The protocol errors: who broke SMPP, and what to answer.

Theory of operation
===================

As in h11 (``h11/_util.py``), there are two ways to break the protocol, and
one abstract base that cannot be raised by itself::

    ProtocolError                 abstract: catch this to catch both
    ├── LocalProtocolError        *we* broke it: our code is wrong
    └── RemoteProtocolError       the *peer* broke it: log, answer, carry on

Every error carries ``command_status``: the status a peer should be told
(ESME_RINVCMDLEN for a bad ``command_length``, ESME_RINVSRCADR for an
over-long ``source_addr``, …), like h11's ``error_status_hint``.

Internally the PDU classes validate their fields and raise
``LocalProtocolError``: building a bad PDU is our mistake.  ``decode`` builds
PDUs from the peer's bytes, so it converts those errors to
``RemoteProtocolError`` at that one boundary, where peer input comes in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iwork_mc.smpp._codes import CommandStatus

if TYPE_CHECKING:
    from iwork_mc.smpp._pdu import Pdu

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """
    Somebody broke SMPP.  Abstract: raise a subclass.

    Attributes:
        command_status: the status to report to the peer for this error.
    """

    def __init__(
        self, msg: str, command_status: CommandStatus = CommandStatus.ESME_RSYSERR
    ) -> None:
        if type(self) is ProtocolError:
            raise TypeError("tried to directly instantiate ProtocolError")
        super().__init__(msg)
        self.command_status = command_status


class LocalProtocolError(ProtocolError):
    """
    We broke SMPP: a PDU with an invalid field, or one our state forbids.

    Nothing was sent: :meth:`Connection.send` raises before it returns bytes.
    """


class RemoteProtocolError(ProtocolError):
    """
    The peer broke SMPP: a malformed PDU, or a broken byte stream.

    Attributes:
        command_status: the status to report (ESME_RINVCMDLEN, ESME_RINVCMDID, …).
        command_id: the offending PDU's ``command_id``, when its header could
            be read (an ``int``: it may be no command we know).
        sequence_number: the offending PDU's ``sequence_number``, likewise.
        pdu: the decoded PDU when it was well-formed but not allowed in the
            session state (ESME_RINVBNDSTS), else ``None``.
        reply: what to send back, ready for :meth:`Connection.send`, or
            ``None`` when nothing should be (a broken response, or a broken
            stream).  :meth:`Connection.next_event` fills it in; :func:`decode`
            alone leaves it ``None``.
    """

    def __init__(
        self,
        msg: str,
        command_status: CommandStatus = CommandStatus.ESME_RSYSERR,
        *,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(msg, command_status)
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.pdu: Pdu | None = None
        self.reply: Pdu | None = None
