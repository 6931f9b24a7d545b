"""The PDUs: frozen dataclasses that are valid by construction.

Theory of operation
===================

Each PDU type of SMPP 3.4 we use is one class.  ``command_length`` is derived,
``command_id`` is a class constant, and the other two header fields (§3.2),
``command_status`` and ``sequence_number``, are fields of every PDU::

    SubmitSm(destination_addr="8613800000000", short_message=b"hi")

``sequence_number=None`` means "not assigned yet": :meth:`Connection.send`
assigns one to requests.  Every other field has the specification's name and
meaning, and the default a well-behaved ESME would send.

The body fields carry their wire format as dataclass metadata (``_Wire``:
kind, maximum size, and the ``command_status`` that says "this field is
wrong"), in wire order.  The one table therefore drives three things: the
validation in ``__post_init__``, ``encode``/``decode`` in ``_wire.py``, and
the Hypothesis strategies in the tests.  The kinds are those of §3.1:

* ``cstring``: a C-Octet String, NUL-terminated, ``size`` counting the NUL
  (``source_addr`` is "Var. max 21", so 20 characters).  §3.1 calls them
  ASCII; we carry them as Latin-1, so that any octet a peer sends survives a
  round trip instead of failing the PDU.
* ``time``: a C-Octet String that is empty or exactly 16 characters
  (``YYMMDDhhmmsstnnp``, §7.1.1).  Its contents are the SMSC's business.
* ``u8``: a 1-octet integer; ``state`` is one read as a :class:`MessageState`.
* ``octets``: ``sm_length`` and then ``short_message`` (0–254 octets, §4.4.1).
* ``tlvs``: the optional parameters, to the end of the PDU (§3.2.4).

Validation happens in ``__post_init__`` (so, in ``__init__``, as with h11's
events), and a bad value raises :class:`LocalProtocolError` whose
``command_status`` names the field (ESME_RINVSRCADR, ESME_RINVMSGLEN, …).
``decode`` turns that into a :class:`RemoteProtocolError`.

Don't subclass these: ``command_id`` is looked up on the exact class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

from iwork_mc.smpp._codes import CommandId, CommandStatus, MessageState
from iwork_mc.smpp._errors import LocalProtocolError
from iwork_mc.smpp._tlv import MessageTlvs, Tlv, TlvCarrier, TlvTag

__all__ = [
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "Event",
    "GenericNack",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
]

S = CommandStatus
WireKind = Literal["cstring", "time", "u8", "state", "octets", "tlvs"]
MAX_SEQUENCE_NUMBER = 0xFFFFFFFF  # any 32-bit value decodes; Connection uses 1..0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class _Wire:
    kind: WireKind
    size: int  # octets, counting the NUL of a C-Octet String
    status: CommandStatus  # what to tell a peer who got this field wrong

    def check(self, name: str, value: object) -> object:
        """Return ``value``, normalised, or raise LocalProtocolError."""
        if self.kind in ("cstring", "time"):
            if not isinstance(value, str):
                raise self._error(f"{name} must be a str, not {type(value).__name__}")
            if "\0" in value or any(ord(char) > 0xFF for char in value):
                raise self._error(f"{name} must be Latin-1 text without NUL: {value!r}")
            if len(value) + 1 > self.size:
                raise self._error(f"{name} has {len(value)} characters; at most {self.size - 1}")
            if self.kind == "time" and len(value) not in (0, 16):
                raise self._error(f"{name} must be empty or 16 characters (§7.1.1): {value!r}")
            return value
        if self.kind in ("u8", "state"):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
                raise self._error(f"{name} must be an integer 0-255: {value!r}")
            return MessageState(value) if self.kind == "state" else value
        if self.kind == "octets":
            if isinstance(value, bytearray | memoryview):
                value = bytes(value)
            if not isinstance(value, bytes):
                raise self._error(f"{name} must be bytes, not {type(value).__name__}")
            if len(value) > self.size:
                raise self._error(f"{name} has {len(value)} octets; at most {self.size}")
            return value
        if not isinstance(value, tuple | list) or not all(isinstance(t, Tlv) for t in value):
            raise self._error(f"{name} must be a tuple of Tlv")
        return tuple(value)

    def _error(self, msg: str) -> LocalProtocolError:
        return LocalProtocolError(msg, self.status)


def _wire(kind: WireKind, size: int, status: CommandStatus) -> Mapping[str, _Wire]:
    return {"smpp": _Wire(kind, size, status)}


_U8 = _wire("u8", 1, S.ESME_RSYSERR)


_LAYOUTS: dict[type[Pdu], tuple[tuple[str, _Wire], ...]] = {}


def layout(cls: type[Pdu]) -> tuple[tuple[str, _Wire], ...]:
    """The body fields of a PDU class, in wire order, with their formats."""
    try:
        return _LAYOUTS[cls]
    except KeyError:
        fmt = tuple((f.name, f.metadata["smpp"]) for f in fields(cls) if "smpp" in f.metadata)
        return _LAYOUTS.setdefault(cls, fmt)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """
    The base of every PDU; use it in annotations, not as a constructor.

    Attributes:
        command_id: the class's :class:`CommandId` (a class constant).
        sequence_number: pairs a response with its request (§3.2); ``None``
            until :meth:`Connection.send` assigns one.
        command_status: ``ESME_ROK``, or why a response is an error (§5.1.3).
    """

    command_id: ClassVar[CommandId]

    sequence_number: int | None = None
    command_status: CommandStatus = CommandStatus.ESME_ROK

    def __post_init__(self) -> None:
        if "command_id" not in type(self).__dict__:
            raise TypeError(f"{type(self).__name__} is not a concrete PDU type")
        seq = self.sequence_number
        if seq is not None and (
            not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQUENCE_NUMBER
        ):
            raise LocalProtocolError(f"sequence_number must be a 32-bit integer: {seq!r}")
        status = self.command_status
        if not isinstance(status, CommandStatus):
            try:
                object.__setattr__(self, "command_status", CommandStatus(status))
            except (TypeError, ValueError):
                raise LocalProtocolError(
                    f"command_status must be a 32-bit integer: {status!r}"
                ) from None
        for name, wire in layout(type(self)):
            value = getattr(self, name)
            normalised = wire.check(name, value)
            if normalised is not value:
                object.__setattr__(self, name, normalised)


#: h11's name for the same class: every event ``next_event`` returns is a PDU.
Event = Pdu


# Bind operations (§4.1) ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = field(metadata=_wire("cstring", 16, S.ESME_RINVSYSID))
    # Kept out of repr so that logging a PDU never logs the password.
    password: str = field(default="", repr=False, metadata=_wire("cstring", 9, S.ESME_RINVPASWD))
    system_type: str = field(default="", metadata=_wire("cstring", 13, S.ESME_RINVSYSTYP))
    interface_version: int = field(default=0x34, metadata=_wire("u8", 1, S.ESME_RBINDFAIL))
    addr_ton: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RBINDFAIL))
    addr_npi: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RBINDFAIL))
    address_range: str = field(default="", metadata=_wire("cstring", 41, S.ESME_RBINDFAIL))


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    """bind_transmitter (§4.1.1): bind to submit messages."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    """bind_receiver (§4.1.3): bind to receive messages and receipts."""

    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    """bind_transceiver (§4.1.5): bind to do both over one connection."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(TlvCarrier, Pdu):
    system_id: str = field(default="", metadata=_wire("cstring", 16, S.ESME_RINVSYSID))
    tlvs: tuple[Tlv, ...] = field(default=(), metadata=_wire("tlvs", 0, S.ESME_RINVOPTPARSTREAM))

    @property
    def sc_interface_version(self) -> int | None:
        """The SMSC's SMPP version from the ``sc_interface_version`` TLV (§5.3.2.25)."""
        value = self.tlv(TlvTag.SC_INTERFACE_VERSION)
        return value[0] if value is not None and len(value) == 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    """bind_transmitter_resp (§4.1.2): ``system_id`` names the SMSC."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    """bind_receiver_resp (§4.1.4)."""

    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    """bind_transceiver_resp (§4.1.6)."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


# Header-only PDUs (§4.2, §4.3, §4.11) ---------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    """unbind (§4.2.1): either side ends the session."""

    command_id: ClassVar[CommandId] = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    """unbind_resp (§4.2.2)."""

    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    """generic_nack (§4.3): "I could not even tell which command that was"."""

    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    """enquire_link (§4.11.1): a keep-alive either side may send."""

    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    """enquire_link_resp (§4.11.2)."""

    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


# Messages (§4.4, §4.6) ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(MessageTlvs, Pdu):
    # submit_sm (§4.4.1) and deliver_sm (§4.6.1) share this layout field for
    # field; deliver_sm leaves the scheduling fields NULL.
    service_type: str = field(default="", metadata=_wire("cstring", 6, S.ESME_RINVSERTYP))
    source_addr_ton: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVSRCTON))
    source_addr_npi: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVSRCNPI))
    source_addr: str = field(default="", metadata=_wire("cstring", 21, S.ESME_RINVSRCADR))
    dest_addr_ton: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVDSTTON))
    dest_addr_npi: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVDSTNPI))
    destination_addr: str = field(metadata=_wire("cstring", 21, S.ESME_RINVDSTADR))
    esm_class: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVESMCLASS))
    protocol_id: int = field(default=0, metadata=_U8)
    priority_flag: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVPRTFLG))
    schedule_delivery_time: str = field(default="", metadata=_wire("time", 17, S.ESME_RINVSCHED))
    validity_period: str = field(default="", metadata=_wire("time", 17, S.ESME_RINVEXPIRY))
    registered_delivery: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVREGDLVFLG))
    replace_if_present_flag: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVREPFLAG))
    data_coding: int = field(default=0, metadata=_U8)
    sm_default_msg_id: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVDFTMSGID))
    short_message: bytes = field(default=b"", metadata=_wire("octets", 254, S.ESME_RINVMSGLEN))
    tlvs: tuple[Tlv, ...] = field(default=(), metadata=_wire("tlvs", 0, S.ESME_RINVOPTPARSTREAM))


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    """
    submit_sm (§4.4.1): the ESME hands the SMSC a message to deliver.

    Every mandatory field of §4.4.1 is a field here, under its own name, with
    ``sm_length`` implied by ``short_message``.  ``tlvs`` holds the optional
    parameters in order; read the ones we use through the properties
    (``sar_msg_ref_num``, ``message_payload``, …).  :func:`split` builds the
    ``short_message``/``esm_class``/``data_coding``/``tlvs`` of each segment.
    """

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    """
    deliver_sm (§4.6.1): the SMSC hands the ESME a message or a receipt.

    Same fields as :class:`SubmitSm`.  ``esm_class & 0x3C == 0x04`` marks an
    SMSC delivery receipt (§5.2.12): see :func:`parse_receipt`.
    """

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(Pdu):
    """
    submit_sm_resp (§4.4.2): ``message_id`` is the SMSC's ID for the message.

    §4.4.2 says the body "is not returned if the command_status field
    contains a non-zero value"; an error response with no ``message_id`` is
    encoded that way, and ``decode`` accepts a response with or without it.
    """

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP

    message_id: str = field(default="", metadata=_wire("cstring", 65, S.ESME_RINVMSGID))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(Pdu):
    """deliver_sm_resp (§4.6.2): ``message_id`` is unused and normally empty."""

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP

    message_id: str = field(default="", metadata=_wire("cstring", 65, S.ESME_RINVMSGID))


# Query (§4.8) -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySm(Pdu):
    """query_sm (§4.8.1): ask the state of a message submitted earlier."""

    command_id: ClassVar[CommandId] = CommandId.QUERY_SM

    message_id: str = field(metadata=_wire("cstring", 65, S.ESME_RINVMSGID))
    source_addr_ton: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVSRCTON))
    source_addr_npi: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RINVSRCNPI))
    source_addr: str = field(default="", metadata=_wire("cstring", 21, S.ESME_RINVSRCADR))


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySmResp(Pdu):
    """query_sm_resp (§4.8.2): the state, and when it became final."""

    command_id: ClassVar[CommandId] = CommandId.QUERY_SM_RESP

    message_id: str = field(default="", metadata=_wire("cstring", 65, S.ESME_RINVMSGID))
    final_date: str = field(default="", metadata=_wire("time", 17, S.ESME_RQUERYFAIL))
    message_state: MessageState = field(
        default=MessageState.UNKNOWN, metadata=_wire("state", 1, S.ESME_RQUERYFAIL)
    )
    error_code: int = field(default=0, metadata=_wire("u8", 1, S.ESME_RQUERYFAIL))
