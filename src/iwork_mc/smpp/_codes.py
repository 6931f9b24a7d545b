"""The numbers SMPP 3.4 puts on the wire, each with a human phrase.

Theory of operation
===================

Three registries, modelled on ``httpx.codes``: each is an ``IntEnum`` whose
members carry a ``.phrase``, so a log line can say both
``command_status=88`` and ``"Throttling error"``.

* :class:`CommandId` (§5.1.2): every command of SMPP 3.4, including the ones
  this package does not model as PDUs (``data_sm``, ``submit_multi``, …).
  Bit 31 marks a response (§3.2: "the most significant bit … is set for a
  response").
* :class:`CommandStatus` (§5.1.3): every ``command_status`` of SMPP 3.4.
* :class:`MessageState` (§5.2.28): the states a short message can be in,
  carried by ``query_sm_resp`` and by delivery receipts.

Peers send values no table lists: vendor error codes (0x400–0x4FF are
"reserved for SMSC vendor specific errors"), or the message states of SMPP
5.0.  ``CommandStatus`` and ``MessageState`` therefore accept any value of
their field's width and return a *pseudo-member* for the unlisted ones
(``CommandStatus(0x401).name == "VENDOR_0x00000401"``), the way
``enum.IntFlag`` does for unnamed bit combinations.  They compare and hash as
their integer, are not cached (a hostile peer could otherwise grow the table
without bound) and never appear when iterating the class.  ``CommandId``
stays closed: an unknown command is a protocol error (ESME_RINVCMDID), not a
value to carry along.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CommandId", "CommandStatus", "MessageState"]

_RESPONSE_BIT = 0x80000000


class CommandId(IntEnum):
    """
    The ``command_id`` of a PDU (SMPP 3.4 §5.1.2).

    ``.phrase`` is the command's name as the specification spells it
    (``CommandId.SUBMIT_SM.phrase == "submit_sm"``).
    """

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def phrase(self) -> str:
        """The command's name in the specification, e.g. ``"submit_sm"``."""
        return self.name.lower()

    @property
    def is_response(self) -> bool:
        """True for ``*_resp`` and ``generic_nack`` (bit 31 set, §3.2)."""
        return bool(self & _RESPONSE_BIT)


class CommandStatus(IntEnum):
    """
    The ``command_status`` of a PDU (SMPP 3.4 §5.1.3).

    ``.phrase`` is the specification's description, shortened where it has a
    parenthesis (``CommandStatus.ESME_RTHROTTLED.phrase == "Throttling error"``).
    Any other 32-bit value gives a pseudo-member whose phrase says which
    reserved range it falls in.
    """

    phrase: str

    def __new__(cls, value: int, phrase: str = "") -> CommandStatus:
        member = int.__new__(cls, value)
        member._value_ = value
        member.phrase = phrase
        return member

    ESME_ROK = 0x00000000, "No error"
    ESME_RINVMSGLEN = 0x00000001, "Message length is invalid"
    ESME_RINVCMDLEN = 0x00000002, "Command length is invalid"
    ESME_RINVCMDID = 0x00000003, "Invalid command ID"
    ESME_RINVBNDSTS = 0x00000004, "Incorrect BIND status for given command"
    ESME_RALYBND = 0x00000005, "ESME already in bound state"
    ESME_RINVPRTFLG = 0x00000006, "Invalid priority flag"
    ESME_RINVREGDLVFLG = 0x00000007, "Invalid registered delivery flag"
    ESME_RSYSERR = 0x00000008, "System error"
    ESME_RINVSRCADR = 0x0000000A, "Invalid source address"
    ESME_RINVDSTADR = 0x0000000B, "Invalid destination address"
    ESME_RINVMSGID = 0x0000000C, "Message ID is invalid"
    ESME_RBINDFAIL = 0x0000000D, "Bind failed"
    ESME_RINVPASWD = 0x0000000E, "Invalid password"
    ESME_RINVSYSID = 0x0000000F, "Invalid system ID"
    ESME_RCANCELFAIL = 0x00000011, "Cancel SM failed"
    ESME_RREPLACEFAIL = 0x00000013, "Replace SM failed"
    ESME_RMSGQFUL = 0x00000014, "Message queue full"
    ESME_RINVSERTYP = 0x00000015, "Invalid service type"
    ESME_RINVNUMDESTS = 0x00000033, "Invalid number of destinations"
    ESME_RINVDLNAME = 0x00000034, "Invalid distribution list name"
    ESME_RINVDESTFLAG = 0x00000040, "Destination flag is invalid"
    ESME_RINVSUBREP = 0x00000042, "Invalid 'submit with replace' request"
    ESME_RINVESMCLASS = 0x00000043, "Invalid esm_class field data"
    ESME_RCNTSUBDL = 0x00000044, "Cannot submit to distribution list"
    ESME_RSUBMITFAIL = 0x00000045, "submit_sm or submit_multi failed"
    ESME_RINVSRCTON = 0x00000048, "Invalid source address TON"
    ESME_RINVSRCNPI = 0x00000049, "Invalid source address NPI"
    ESME_RINVDSTTON = 0x00000050, "Invalid destination address TON"
    ESME_RINVDSTNPI = 0x00000051, "Invalid destination address NPI"
    ESME_RINVSYSTYP = 0x00000053, "Invalid system_type field"
    ESME_RINVREPFLAG = 0x00000054, "Invalid replace_if_present flag"
    ESME_RINVNUMMSGS = 0x00000055, "Invalid number of messages"
    ESME_RTHROTTLED = 0x00000058, "Throttling error"
    ESME_RINVSCHED = 0x00000061, "Invalid scheduled delivery time"
    ESME_RINVEXPIRY = 0x00000062, "Invalid message validity period"
    ESME_RINVDFTMSGID = 0x00000063, "Predefined message invalid or not found"
    ESME_RX_T_APPN = 0x00000064, "ESME receiver temporary app error code"
    ESME_RX_P_APPN = 0x00000065, "ESME receiver permanent app error code"
    ESME_RX_R_APPN = 0x00000066, "ESME receiver reject message error code"
    ESME_RQUERYFAIL = 0x00000067, "query_sm request failed"
    ESME_RINVOPTPARSTREAM = 0x000000C0, "Error in the optional part of the PDU body"
    ESME_ROPTPARNOTALLWD = 0x000000C1, "Optional parameter not allowed"
    ESME_RINVPARLEN = 0x000000C2, "Invalid parameter length"
    ESME_RMISSINGOPTPARAM = 0x000000C3, "Expected optional parameter missing"
    ESME_RINVOPTPARAMVAL = 0x000000C4, "Invalid optional parameter value"
    ESME_RDELIVERYFAILURE = 0x000000FE, "Delivery failure"
    ESME_RUNKNOWNERR = 0x000000FF, "Unknown error"

    @classmethod
    def _missing_(cls, value: object) -> CommandStatus | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            return None
        # §5.1.3: 0x400–0x4FF are the SMSC vendor's own codes; the rest of the
        # gaps are reserved (0x100–0x3FF for SMPP extensions).
        vendor = 0x400 <= value <= 0x4FF
        member = int.__new__(cls, value)
        member._name_ = f"{'VENDOR' if vendor else 'RESERVED'}_0x{value:08X}"
        member._value_ = value
        member.phrase = "SMSC vendor specific error" if vendor else "Reserved"
        return member


class MessageState(IntEnum):
    """
    The state of a short message (SMPP 3.4 §5.2.28).

    Carried by ``query_sm_resp``, by the ``message_state`` TLV and, as text
    (``stat:DELIVRD``), by delivery receipts.  Any other octet gives a
    pseudo-member (SMPP 5.0 added SCHEDULED 0 and SKIPPED 9).
    """

    ENROUTE = 1  #: The message is on its way (the only intermediate state)
    DELIVERED = 2  #: Delivered to its destination
    EXPIRED = 3  #: The validity period ran out
    DELETED = 4  #: Deleted (cancel_sm, or by the operator)
    UNDELIVERABLE = 5  #: The network or handset refused it
    ACCEPTED = 6  #: Read on the subscriber's behalf, e.g. by customer service
    UNKNOWN = 7  #: The SMSC holds it in an invalid state
    REJECTED = 8  #: The SMSC rejected it

    @classmethod
    def _missing_(cls, value: object) -> MessageState | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"STATE_{value}"
        member._value_ = value
        return member

    @property
    def is_final(self) -> bool:
        """
        Whether no later receipt will change this state.

        Only ENROUTE is intermediate in §5.2.28; unlisted values (SMPP 5.0's
        SCHEDULED 0, for one) are treated as not final, so a message is never
        closed on a state we cannot name.
        """
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.ACCEPTED,
        MessageState.UNKNOWN,
        MessageState.REJECTED,
    }
)
