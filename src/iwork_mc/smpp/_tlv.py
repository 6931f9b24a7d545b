"""Optional parameters (TLVs, SMPP 3.4 §3.2.4 and §5.3).

Theory of operation
===================

A TLV is a 2-octet tag, a 2-octet length and that many octets of value
(§3.2.4.1).  They follow the mandatory fields of a PDU, in any order.

:class:`Tlv` keeps the raw ``(tag, value)`` pair, so a TLV we have never heard
of survives ``decode`` → ``encode`` unchanged: an SMSC's vendor TLVs are not
ours to drop.  For the few TLVs we use there are typed constructors
(``Tlv.sar_msg_ref_num(7)``) and, on the PDUs that carry them, typed
accessors (``deliver_sm.receipted_message_id``), both written from §5.3.2:

==========================  ======  ==========================================
TLV                         tag     value
==========================  ======  ==========================================
receipted_message_id        0x001E  C-Octet String, at most 65 octets
sar_msg_ref_num             0x020C  2-octet integer
sar_total_segments          0x020E  1-octet integer
sar_segment_seqnum          0x020F  1-octet integer
sc_interface_version        0x0210  1-octet integer (in bind_*_resp)
network_error_code          0x0423  1-octet network type, 2-octet error code
message_payload             0x0424  up to 64K octets of message
message_state               0x0427  1-octet integer (§5.2.28)
==========================  ======  ==========================================

The accessors are lenient on purpose: a known TLV with the wrong length reads
as absent rather than failing the whole PDU.  A delivery receipt must not be
refused over a TLV we can do without (its text says the same thing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from iwork_mc.smpp._codes import CommandStatus, MessageState
from iwork_mc.smpp._errors import LocalProtocolError

__all__ = ["NetworkError", "Tlv", "TlvTag"]


class TlvTag(IntEnum):
    """The tags of the TLVs this package reads or writes (§5.3.2)."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class NetworkError(NamedTuple):
    """The value of a ``network_error_code`` TLV (§5.3.2.31)."""

    network_type: int  #: 1 ANSI-136, 2 IS-95, 3 GSM, 4 reserved
    error_code: int  #: the network's own code


@dataclass(frozen=True, slots=True)
class Tlv:
    """
    One optional parameter: a 16-bit tag and its raw value.

    Args:
        tag: 0–0xFFFF.
        value: at most 0xFFFF octets.

    Raises:
        LocalProtocolError: on a tag or value out of range
            (ESME_RINVOPTPARSTREAM, ESME_RINVPARLEN).
    """

    tag: int
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.tag, int) or not 0 <= self.tag <= 0xFFFF:
            raise LocalProtocolError(
                f"TLV tag {self.tag!r} is not a 16-bit integer",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        if isinstance(self.value, bytearray | memoryview):
            object.__setattr__(self, "value", bytes(self.value))
        if not isinstance(self.value, bytes):
            raise LocalProtocolError(
                f"TLV 0x{self.tag:04X} value must be bytes", CommandStatus.ESME_RINVOPTPARAMVAL
            )
        if len(self.value) > 0xFFFF:
            raise LocalProtocolError(
                f"TLV 0x{self.tag:04X} is {len(self.value)} octets; at most 65535 fit",
                CommandStatus.ESME_RINVPARLEN,
            )

    @classmethod
    def sar_msg_ref_num(cls, reference: int) -> Tlv:
        """The reference shared by every segment of one message (§5.3.2.22)."""
        return cls(TlvTag.SAR_MSG_REF_NUM, _uint(reference, 2))

    @classmethod
    def sar_total_segments(cls, total: int) -> Tlv:
        """How many segments the message has, 1–255 (§5.3.2.23)."""
        return cls(TlvTag.SAR_TOTAL_SEGMENTS, _uint(total, 1))

    @classmethod
    def sar_segment_seqnum(cls, seqnum: int) -> Tlv:
        """Which segment this is, counting from 1 (§5.3.2.24)."""
        return cls(TlvTag.SAR_SEGMENT_SEQNUM, _uint(seqnum, 1))

    @classmethod
    def message_payload(cls, payload: bytes) -> Tlv:
        """The whole message, instead of ``short_message`` (§5.3.2.32)."""
        return cls(TlvTag.MESSAGE_PAYLOAD, payload)

    @classmethod
    def receipted_message_id(cls, message_id: str) -> Tlv:
        """The SMSC message ID a receipt is about (§5.3.2.12)."""
        value = message_id.encode("latin-1") + b"\0"
        if len(value) > 65 or b"\0" in value[:-1]:
            raise LocalProtocolError(
                "receipted_message_id is a C-Octet String of at most 65 octets",
                CommandStatus.ESME_RINVPARLEN,
            )
        return cls(TlvTag.RECEIPTED_MESSAGE_ID, value)

    @classmethod
    def message_state(cls, state: MessageState) -> Tlv:
        """The message's state, in a delivery receipt (§5.3.2.35)."""
        return cls(TlvTag.MESSAGE_STATE, _uint(state, 1))

    @classmethod
    def network_error_code(cls, network_type: int, error_code: int) -> Tlv:
        """The network's error for a failed delivery (§5.3.2.31)."""
        return cls(TlvTag.NETWORK_ERROR_CODE, _uint(network_type, 1) + _uint(error_code, 2))


def _uint(value: int, size: int) -> bytes:
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(
            f"{value!r} does not fit in {size} octet(s)", CommandStatus.ESME_RINVOPTPARAMVAL
        )
    return value.to_bytes(size, "big")


class TlvCarrier:
    """Mixed into every PDU with a ``tlvs`` field: look a TLV up by tag."""

    __slots__ = ()
    tlvs: tuple[Tlv, ...]

    def tlv(self, tag: int) -> bytes | None:
        """The value of the first TLV with this tag, or ``None``."""
        for tlv in self.tlvs:
            if tlv.tag == tag:
                return tlv.value
        return None


class MessageTlvs(TlvCarrier):
    """
    Typed reads of the TLVs a ``submit_sm`` or ``deliver_sm`` may carry.

    Each returns ``None`` when the TLV is absent or has the wrong length.
    """

    __slots__ = ()

    def _int_tlv(self, tag: int, size: int) -> int | None:
        value = self.tlv(tag)
        return int.from_bytes(value, "big") if value is not None and len(value) == size else None

    @property
    def sar_msg_ref_num(self) -> int | None:
        """The ``sar_msg_ref_num`` TLV (0x020C)."""
        return self._int_tlv(TlvTag.SAR_MSG_REF_NUM, 2)

    @property
    def sar_total_segments(self) -> int | None:
        """The ``sar_total_segments`` TLV (0x020E)."""
        return self._int_tlv(TlvTag.SAR_TOTAL_SEGMENTS, 1)

    @property
    def sar_segment_seqnum(self) -> int | None:
        """The ``sar_segment_seqnum`` TLV (0x020F)."""
        return self._int_tlv(TlvTag.SAR_SEGMENT_SEQNUM, 1)

    @property
    def message_payload(self) -> bytes | None:
        """The ``message_payload`` TLV (0x0424)."""
        return self.tlv(TlvTag.MESSAGE_PAYLOAD)

    @property
    def receipted_message_id(self) -> str | None:
        """The ``receipted_message_id`` TLV (0x001E), without its NUL."""
        value = self.tlv(TlvTag.RECEIPTED_MESSAGE_ID)
        if value is None or len(value) > 65:
            return None
        # Some SMSCs leave out the terminating NUL; take the text either way.
        return value.split(b"\0", 1)[0].decode("latin-1")

    @property
    def message_state(self) -> MessageState | None:
        """The ``message_state`` TLV (0x0427)."""
        value = self._int_tlv(TlvTag.MESSAGE_STATE, 1)
        return None if value is None else MessageState(value)

    @property
    def network_error_code(self) -> NetworkError | None:
        """The ``network_error_code`` TLV (0x0423)."""
        value = self.tlv(TlvTag.NETWORK_ERROR_CODE)
        if value is None or len(value) != 3:
            return None
        return NetworkError(value[0], int.from_bytes(value[1:], "big"))
