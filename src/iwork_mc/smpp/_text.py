"""Text to short messages and back: alphabets, counting, splitting.

Theory of operation
===================

A short message carries 140 octets (3GPP TS 23.040).  What fits in them
depends on the alphabet, named by ``data_coding`` (SMPP 3.4 §5.2.19):

* **GSM 7-bit default alphabet** (3GPP TS 23.038 §6.2.1), ``data_coding`` 0:
  160 septets.  Ten characters live in the extension table and cost two
  septets, an escape (0x1B) and their code: ``^ { } \\ [ ~ ] | €`` and form
  feed.  Over SMPP the septets travel *unpacked*, one per octet, and the SMSC
  packs them: the common convention, and the one assumed here.
* **UCS-2**, ``data_coding`` 8: 70 UTF-16 code units, big-endian.  A character
  outside the Basic Multilingual Plane (most emoji) is a surrogate pair: two
  units.  Handsets decode UTF-16 here, whatever the name says.

:func:`sms_encoding` picks GSM-7 when every character has a septet and UCS-2
otherwise, and counts units and segments.  A longer text is sent as several
segments that the handset joins again; each then loses room to the
concatenation header (23.040 §9.2.3.24.1 and .8):

===========  ===================  ==========  =========  ==============
method       header               GSM-7       UCS-2      how
===========  ===================  ==========  =========  ==============
(one part)   none                 160         70
``udh8``     6 octets, 8-bit ref  153         67         UDH in short_message, esm_class 0x40
``udh16``    7 octets, 16-bit     152         66         UDH in short_message, esm_class 0x40
``sar``      added by the SMSC    152         66         sar_* TLVs (§5.3.2.22–24)
``payload``  added by the SMSC    153         67         one message_payload TLV (§5.3.2.32)
===========  ===================  ==========  =========  ==============

``sar`` assumes the SMSC's header has a 16-bit reference, as the TLV does,
so a segment never outgrows what the SMSC can send.  For ``payload`` the
counts are an estimate of how the SMSC will split; :func:`split` sends one PDU.

Splitting is greedy, character by character, so it never separates an
escape from its extension character nor the two halves of a surrogate pair:
a segment may therefore hold one unit less than the table says, and
:func:`sms_encoding` counts segments by the same procedure, never by division.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from iwork_mc.smpp._tlv import Tlv, TlvTag

__all__ = [
    "Concatenation",
    "Encoding",
    "Segment",
    "SplitMethod",
    "concatenation",
    "decode_gsm7",
    "encode_gsm7",
    "gsm7_encodable",
    "reassemble",
    "sms_encoding",
    "split",
]

SplitMethod = Literal["udh8", "udh16", "sar", "payload"]
Alphabet = Literal["gsm7", "ucs2"]

#: data_coding values (§5.2.19).
DATA_CODING_DEFAULT = 0x00
DATA_CODING_IA5 = 0x01
DATA_CODING_LATIN1 = 0x03
DATA_CODING_UCS2 = 0x08

#: esm_class bit 6: short_message starts with a User Data Header (§5.2.12).
ESM_CLASS_UDHI = 0x40

# 3GPP TS 23.038 §6.2.1, in code order; 0x1B is the escape, not a character.
_ESCAPE = 0x1B
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# 23.038 §6.2.1.1, the extension table reached through the escape.
_GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_GSM7_ENCODE: dict[str, bytes] = {
    **{char: bytes([code]) for code, char in enumerate(_GSM7_BASIC) if code != _ESCAPE},
    **{char: bytes([_ESCAPE, code]) for char, code in _GSM7_EXTENSION.items()},
}
_GSM7_EXTENSION_DECODE = {code: char for char, code in _GSM7_EXTENSION.items()}

_SINGLE: dict[Alphabet, int] = {"gsm7": 160, "ucs2": 70}
_MULTI: dict[tuple[Alphabet, SplitMethod], int] = {
    ("gsm7", "udh8"): 153,
    ("ucs2", "udh8"): 67,
    ("gsm7", "udh16"): 152,
    ("ucs2", "udh16"): 66,
    ("gsm7", "sar"): 152,
    ("ucs2", "sar"): 66,
    ("gsm7", "payload"): 153,
    ("ucs2", "payload"): 67,
}
_REFERENCE_LIMIT: dict[SplitMethod, int] = {
    "udh8": 0xFF,
    "udh16": 0xFFFF,
    "sar": 0xFFFF,
    "payload": 0xFFFF,
}


def gsm7_encodable(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 7-bit alphabet or its extension."""
    return all(char in _GSM7_ENCODE for char in text)


def encode_gsm7(text: str) -> bytes:
    """
    Encode text as unpacked GSM 7-bit septets, one per octet.

    Raises:
        ValueError: if a character is not in the alphabet (see :func:`gsm7_encodable`).
    """
    try:
        return b"".join(_GSM7_ENCODE[char] for char in text)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def decode_gsm7(data: bytes) -> str:
    """
    Decode unpacked GSM 7-bit septets.

    An escape followed by a code the extension table lacks reads as that
    code's basic character, as 23.038 asks of handsets.

    Raises:
        ValueError: if an octet is above 0x7F (not a septet).
    """
    chars: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            raise ValueError(f"0x{octet:02X} is not a GSM 7-bit septet")
        if escaped:
            escaped = False
            chars.append(_GSM7_EXTENSION_DECODE.get(octet) or _GSM7_BASIC[octet])
        elif octet == _ESCAPE:
            escaped = True
        else:
            chars.append(_GSM7_BASIC[octet])
    return "".join(char if char != "\x1b" else " " for char in chars)


@dataclass(frozen=True, slots=True)
class Encoding:
    """
    How a text travels as SMS.

    Attributes:
        alphabet: ``"gsm7"`` or ``"ucs2"``.
        data_coding: 0 for GSM-7, 8 for UCS-2 (§5.2.19).
        units: septets for GSM-7 (extension characters count two), UTF-16
            code units for UCS-2 (surrogate pairs count two).
        segments: how many short messages the handset receives.
    """

    alphabet: Alphabet
    data_coding: int
    units: int
    segments: int


def sms_encoding(text: str, *, method: SplitMethod = "udh8") -> Encoding:
    """
    Choose the alphabet for ``text`` and count what it costs.

    Args:
        text: the message.
        method: the concatenation method, which sets the room per segment
            once a text needs more than one (see the module's table).

    Returns:
        The :class:`Encoding`; ``segments`` agrees with :func:`split` for
        every method but ``"payload"``, where the SMSC does the splitting.
    """
    alphabet = _alphabet(text)
    return Encoding(
        alphabet=alphabet,
        data_coding=DATA_CODING_DEFAULT if alphabet == "gsm7" else DATA_CODING_UCS2,
        units=sum(_units(char, alphabet) for char in text),
        segments=len(_chunks(text, alphabet, method)),
    )


def _alphabet(text: str) -> Alphabet:
    return "gsm7" if gsm7_encodable(text) else "ucs2"


def _units(char: str, alphabet: Alphabet) -> int:
    if alphabet == "gsm7":
        return len(_GSM7_ENCODE[char])
    return 2 if ord(char) > 0xFFFF else 1


def _encode(text: str, alphabet: Alphabet) -> bytes:
    return encode_gsm7(text) if alphabet == "gsm7" else text.encode("utf-16-be")


def _chunks(text: str, alphabet: Alphabet, method: SplitMethod) -> list[str]:
    if sum(_units(char, alphabet) for char in text) <= _SINGLE[alphabet]:
        return [text]
    room = _MULTI[alphabet, method]
    chunks: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(text):
        units = _units(char, alphabet)
        # Whole characters only: an escape pair or a surrogate pair never splits.
        if used + units > room:
            chunks.append(text[start:index])
            start, used = index, 0
        used += units
    chunks.append(text[start:])
    return chunks


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """
    One short message of a split text: the fields of a ``submit_sm`` to set.

    Attributes:
        short_message: the octets, a User Data Header first for ``udh8``/``udh16``.
        esm_class: 0x40 (UDHI) when ``short_message`` has a UDH, else 0.
        data_coding: 0 (GSM-7) or 8 (UCS-2).
        tlvs: the SAR TLVs for ``sar``, the message_payload TLV for
            ``payload``, else empty.
    """

    short_message: bytes
    esm_class: int
    data_coding: int
    tlvs: tuple[Tlv, ...] = ()


def split(text: str, *, method: SplitMethod = "udh8", reference: int) -> list[Segment]:
    """
    Split a text into the short messages that carry it.

    A text that fits one message gives one plain segment (no header) with
    every method but ``"payload"``, which always uses the TLV.

    Args:
        text: the message.
        method: ``"udh8"`` / ``"udh16"``: a concatenation UDH with an 8- or
            16-bit reference in ``short_message``; ``"sar"``: the
            ``sar_*`` TLVs instead; ``"payload"``: the whole text in one
            ``message_payload`` TLV, ``short_message`` empty.
        reference: the concatenation reference shared by the segments; its
            low 8 bits are used for ``udh8``, its low 16 bits otherwise.  Pick
            a new one per message for each destination, or handsets will mix
            messages up.

    Returns:
        The segments, in order.

    Raises:
        ValueError: on a negative reference, a text needing more than 255
            segments, or (``payload``) more than 65535 octets.
    """
    if method not in _REFERENCE_LIMIT:
        raise ValueError(f"unknown split method {method!r}")
    if reference < 0:
        raise ValueError(f"reference {reference} is negative")
    # Any counter will do as a reference: keep the bits the header has room for.
    reference &= _REFERENCE_LIMIT[method]
    alphabet = _alphabet(text)
    data_coding = DATA_CODING_DEFAULT if alphabet == "gsm7" else DATA_CODING_UCS2
    if method == "payload":
        payload = _encode(text, alphabet)
        if len(payload) > 0xFFFF:
            raise ValueError(f"{len(payload)} octets do not fit one message_payload TLV")
        return [
            Segment(
                short_message=b"",
                esm_class=0,
                data_coding=data_coding,
                tlvs=(Tlv.message_payload(payload),),
            )
        ]
    chunks = _chunks(text, alphabet, method)
    total = len(chunks)
    if total == 1:
        body = _encode(text, alphabet)
        return [Segment(short_message=body, esm_class=0, data_coding=data_coding)]
    if total > 0xFF:
        raise ValueError(f"the text needs {total} segments; at most 255 can be joined")
    segments = []
    for seqnum, chunk in enumerate(chunks, start=1):
        body = _encode(chunk, alphabet)
        if method == "sar":
            tlvs = (
                Tlv.sar_msg_ref_num(reference),
                Tlv.sar_total_segments(total),
                Tlv.sar_segment_seqnum(seqnum),
            )
            segments.append(
                Segment(short_message=body, esm_class=0, data_coding=data_coding, tlvs=tlvs)
            )
            continue
        if method == "udh8":  # IEI 0x00: concatenated SMS, 8-bit reference
            udh = bytes([5, 0x00, 3, reference, total, seqnum])
        else:  # IEI 0x08: concatenated SMS, 16-bit reference
            udh = bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, seqnum])
        segments.append(
            Segment(short_message=udh + body, esm_class=ESM_CLASS_UDHI, data_coding=data_coding)
        )
    return segments


class ShortMessageLike(Protocol):
    """Anything with the message fields of a segment: a Segment, SubmitSm or DeliverSm."""

    @property
    def short_message(self) -> bytes: ...
    @property
    def esm_class(self) -> int: ...
    @property
    def data_coding(self) -> int: ...
    @property
    def tlvs(self) -> tuple[Tlv, ...]: ...


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Where one segment sits in a concatenated message."""

    reference: int  #: shared by every segment of the message
    total: int  #: how many segments there are
    seqnum: int  #: this segment's place, from 1


def concatenation(message: ShortMessageLike) -> Concatenation | None:
    """
    Read the concatenation header of a segment, from its UDH or its SAR TLVs.

    Returns:
        The :class:`Concatenation`, or ``None`` for a message sent whole.

    Raises:
        ValueError: if the UDH is malformed.
    """
    if message.esm_class & ESM_CLASS_UDHI:
        udh, _ = _split_udh(message.short_message)
        pos = 0
        while pos + 2 <= len(udh):
            iei, size = udh[pos], udh[pos + 1]
            value = udh[pos + 2 : pos + 2 + size]
            if len(value) != size:
                raise ValueError("a UDH information element runs off the end of the header")
            if iei == 0x00 and size == 3:
                return Concatenation(value[0], value[1], value[2])
            if iei == 0x08 and size == 4:
                return Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3])
            pos += 2 + size
    sar = {tlv.tag: tlv.value for tlv in message.tlvs}
    ref = sar.get(TlvTag.SAR_MSG_REF_NUM)
    total = sar.get(TlvTag.SAR_TOTAL_SEGMENTS)
    seqnum = sar.get(TlvTag.SAR_SEGMENT_SEQNUM)
    if ref is not None and total is not None and seqnum is not None:
        return Concatenation(
            int.from_bytes(ref, "big"), int.from_bytes(total, "big"), int.from_bytes(seqnum, "big")
        )
    return None


def _split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    if not short_message or short_message[0] + 1 > len(short_message):
        raise ValueError("esm_class has UDHI set but short_message holds no whole UDH")
    size = short_message[0]
    return short_message[1 : 1 + size], short_message[1 + size :]


def reassemble(segments: Iterable[ShortMessageLike]) -> str:
    """
    Join the segments of one message back into its text, in any order.

    Accepts what :func:`split` makes, and the :class:`SubmitSm` or
    :class:`DeliverSm` that carried it: a UDH is stripped, segments are ordered
    by their sequence number (UDH or SAR), and a ``message_payload`` TLV stands
    in for an empty ``short_message``.

    Raises:
        ValueError: on a ``data_coding`` other than 0, 1, 3 or 8, or bytes
            that are not valid in it.
    """
    parts: list[tuple[int, str]] = []
    for position, segment in enumerate(segments):
        body = segment.short_message
        payload = next((t.value for t in segment.tlvs if t.tag == TlvTag.MESSAGE_PAYLOAD), None)
        if payload is not None and not body:
            body = payload
        elif segment.esm_class & ESM_CLASS_UDHI:
            _, body = _split_udh(body)
        info = concatenation(segment)
        parts.append((info.seqnum if info else position, _decode(body, segment.data_coding)))
    parts.sort(key=lambda part: part[0])
    return "".join(text for _, text in parts)


def _decode(body: bytes, data_coding: int) -> str:
    # Each segment is decoded alone: split() never cuts a character in two.
    if data_coding == DATA_CODING_DEFAULT:
        return decode_gsm7(body)
    if data_coding == DATA_CODING_IA5:
        return body.decode("ascii")
    if data_coding == DATA_CODING_LATIN1:
        return body.decode("latin-1")
    if data_coding == DATA_CODING_UCS2:
        return body.decode("utf-16-be")
    raise ValueError(f"data_coding 0x{data_coding:02X} is not a text encoding we decode")
