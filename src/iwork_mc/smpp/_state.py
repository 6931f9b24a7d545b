################################################################
# The session state machine (SMPP 3.4 §2.2–§2.4)
################################################################
#
# Rule 1: everything that affects the session state and its transitions lives
# in this file.  As much as possible goes into the SESSION table; the few
# rules that do not fit a table are the methods of Session, below, and
# nowhere else.
#
# Rule 2: this file does not know which role *we* play.  It knows what an
# ESME may send and what an SMSC may send; the Connection asks about its own
# role when it sends and about the peer's role when it receives, so that we
# cannot apply one rule to ourselves and another to the peer.
"""
The SMPP session state machine, as data.

Theory of operation
===================

An SMPP session is one state shared by both ends (§2.3): it opens when the
TCP connection does, binds when the SMSC says ``ESME_ROK`` to a bind, unbinds
when either end says ``unbind``, and closes with the connection::

    OPEN ──bind_*_resp(ESME_ROK)──▶ BOUND_TX / BOUND_RX / BOUND_TRX
                                                    │
                                                 unbind
                                                    ▼
                                                 UNBOUND

    any state ──EOF──▶ CLOSED

What each end may *send* in each state is the table ``SESSION[role][state]``
(§2.3, Table 2-1, and the PDU descriptions in §4), a dict whose keys are the
legal ``command_id`` values and whose values are the state that sending one
leads to.  Receiving is the same question asked of the peer's role.  Three
rules complete the table:

1. A response with a ``command_status`` other than ESME_ROK may be sent in
   any state but CLOSED, and changes nothing.  It answers a request we could
   not accept, as ESME_RINVBNDSTS or ESME_RALYBND say (§5.1.3), and a failed
   bind leaves the session OPEN, so the ESME may try again.
2. ``generic_nack`` is in every open state of both roles: it is the answer to
   a PDU that could not be read at all (§4.3).
3. The session is over once an ``unbind`` has been answered
   (:attr:`Session.finished`): the end that sent it may close the
   connection (§4.2).  End of file closes the session in any state.

UNBOUND still allows the responses to requests that were in flight when the
unbind crossed them, and ``unbind`` itself, because both ends may unbind at
once.  It does not allow new requests.
"""

from __future__ import annotations

from enum import Enum

from iwork_mc.smpp._codes import CommandId, CommandStatus
from iwork_mc.smpp._errors import LocalProtocolError

__all__ = ["Role", "State"]


class Role(Enum):
    """Which end of the session a :class:`Connection` is."""

    ESME = "ESME"  #: The client: binds, submits, receives deliveries
    SMSC = "SMSC"  #: The server: accepts binds, delivers, sends receipts


class State(Enum):
    """The session states of §2.3."""

    OPEN = "OPEN"  #: Connected, not bound
    BOUND_TX = "BOUND_TX"  #: Bound as transmitter: ESME → SMSC messages
    BOUND_RX = "BOUND_RX"  #: Bound as receiver: SMSC → ESME messages
    BOUND_TRX = "BOUND_TRX"  #: Bound as transceiver: both ways
    UNBOUND = "UNBOUND"  #: An unbind was sent; responses only
    CLOSED = "CLOSED"  #: The connection is gone


C = CommandId
ESME, SMSC = Role.ESME, Role.SMSC
OPEN, BOUND_TX, BOUND_RX, BOUND_TRX, UNBOUND, CLOSED = State

SESSION: dict[Role, dict[State, dict[CommandId, State]]] = {
    ESME: {
        OPEN: {
            C.BIND_TRANSMITTER: OPEN,
            C.BIND_RECEIVER: OPEN,
            C.BIND_TRANSCEIVER: OPEN,
            C.GENERIC_NACK: OPEN,
        },
        BOUND_TX: {
            C.SUBMIT_SM: BOUND_TX,
            C.QUERY_SM: BOUND_TX,
            C.ENQUIRE_LINK: BOUND_TX,
            C.ENQUIRE_LINK_RESP: BOUND_TX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_TX,
        },
        BOUND_RX: {
            C.DELIVER_SM_RESP: BOUND_RX,
            C.ENQUIRE_LINK: BOUND_RX,
            C.ENQUIRE_LINK_RESP: BOUND_RX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_RX,
        },
        BOUND_TRX: {
            C.SUBMIT_SM: BOUND_TRX,
            C.QUERY_SM: BOUND_TRX,
            C.DELIVER_SM_RESP: BOUND_TRX,
            C.ENQUIRE_LINK: BOUND_TRX,
            C.ENQUIRE_LINK_RESP: BOUND_TRX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_TRX,
        },
        UNBOUND: {
            C.DELIVER_SM_RESP: UNBOUND,
            C.ENQUIRE_LINK_RESP: UNBOUND,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: UNBOUND,
        },
        CLOSED: {},
    },
    SMSC: {
        OPEN: {
            C.BIND_TRANSMITTER_RESP: BOUND_TX,
            C.BIND_RECEIVER_RESP: BOUND_RX,
            C.BIND_TRANSCEIVER_RESP: BOUND_TRX,
            C.GENERIC_NACK: OPEN,
        },
        BOUND_TX: {
            C.SUBMIT_SM_RESP: BOUND_TX,
            C.QUERY_SM_RESP: BOUND_TX,
            C.ENQUIRE_LINK: BOUND_TX,
            C.ENQUIRE_LINK_RESP: BOUND_TX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_TX,
        },
        BOUND_RX: {
            C.DELIVER_SM: BOUND_RX,
            C.ENQUIRE_LINK: BOUND_RX,
            C.ENQUIRE_LINK_RESP: BOUND_RX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_RX,
        },
        BOUND_TRX: {
            C.SUBMIT_SM_RESP: BOUND_TRX,
            C.QUERY_SM_RESP: BOUND_TRX,
            C.DELIVER_SM: BOUND_TRX,
            C.ENQUIRE_LINK: BOUND_TRX,
            C.ENQUIRE_LINK_RESP: BOUND_TRX,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: BOUND_TRX,
        },
        UNBOUND: {
            C.SUBMIT_SM_RESP: UNBOUND,
            C.QUERY_SM_RESP: UNBOUND,
            C.ENQUIRE_LINK_RESP: UNBOUND,
            C.UNBIND: UNBOUND,
            C.UNBIND_RESP: UNBOUND,
            C.GENERIC_NACK: UNBOUND,
        },
        CLOSED: {},
    },
}

_BINDS = frozenset({C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER})
_BOUND = frozenset({BOUND_TX, BOUND_RX, BOUND_TRX})


def out_of_state_status(state: State, command_id: CommandId) -> CommandStatus:
    """What to answer a request the peer may not send in ``state`` (§5.1.3)."""
    if command_id in _BINDS and state in _BOUND:
        return CommandStatus.ESME_RALYBND
    return CommandStatus.ESME_RINVBNDSTS


class Session:
    """The one state of a session, and the rules that move it."""

    def __init__(self) -> None:
        self.state = OPEN
        # Rule 3: set once an unbind_resp has gone either way.
        self.finished = False

    def next_state(
        self, sender: Role, command_id: CommandId, command_status: CommandStatus
    ) -> State | None:
        """The state that ``sender`` sending this leads to, or ``None`` if it may not."""
        if command_id.is_response and command_status != CommandStatus.ESME_ROK:
            return None if self.state is CLOSED else self.state  # Rule 1
        return SESSION[sender][self.state].get(command_id)

    def process(self, sender: Role, command_id: CommandId, command_status: CommandStatus) -> None:
        """
        Apply ``sender`` sending a PDU.

        Raises:
            LocalProtocolError: if ``sender`` may not send it in this state
                (ESME_RINVBNDSTS); nothing changes then.
        """
        new_state = self.next_state(sender, command_id, command_status)
        if new_state is None:
            raise LocalProtocolError(
                f"{sender.value} may not send {command_id.phrase} in state {self.state.value}",
                out_of_state_status(self.state, command_id),
            )
        self.state = new_state
        if command_id == C.UNBIND_RESP and new_state is UNBOUND:
            self.finished = True

    def process_eof(self) -> None:
        """The connection is gone, whatever the state (Rule 3)."""
        self.state = CLOSED
        self.finished = True
