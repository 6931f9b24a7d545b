"""PDUs to bytes and back: ``encode`` and ``decode``.

Theory of operation
===================

Every PDU is a 16-octet header and a body (§3.2)::

    command_length   4   the whole PDU, header included
    command_id       4   §5.1.2
    command_status   4   §5.1.3; 0 in requests
    sequence_number  4   pairs a response with its request
    body             command_length - 16 octets: mandatory fields, then TLVs

All integers are big-endian (§3.1).  The body's layout is not written here:
it is the ``_Wire`` metadata on the PDU's fields (see ``_pdu.py``), walked in
order by :func:`encode` and :func:`decode`.

:func:`decode` takes exactly one PDU; cutting a byte stream into PDUs is the
:class:`Connection`'s job.  It trusts nothing: a field that runs past the end
of the body is ESME_RINVCMDLEN, an unknown ``command_id`` is ESME_RINVCMDID,
a field the PDU class refuses keeps that field's status, and all of them are
raised as :class:`RemoteProtocolError` carrying the header's ``command_id``
and ``sequence_number`` when those could be read, so the caller can answer.

Two tolerances, both for responses, because SMSCs differ here and an ESME
that drops a response loses track of a message: a response whose body is
empty decodes with every body field at its default (§4.4.2 has the SMSC omit
the body of an error ``submit_sm_resp``), and a ``cstring`` is read as Latin-1.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from iwork_mc.smpp._codes import CommandId, CommandStatus
from iwork_mc.smpp._errors import LocalProtocolError, RemoteProtocolError
from iwork_mc.smpp._pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    _Wire,
    layout,
)
from iwork_mc.smpp._tlv import Tlv

__all__ = ["Header", "decode", "decode_header", "encode"]

HEADER = struct.Struct(">IIII")
HEADER_LENGTH = HEADER.size  # 16

#: The PDU class for each command_id we model; any other is ESME_RINVCMDID.
PDU_CLASSES: dict[CommandId, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Unbind,
        UnbindResp,
        GenericNack,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        QuerySm,
        QuerySmResp,
    )
}


class Header(NamedTuple):
    """The 16-octet header of a PDU (§3.2)."""

    command_length: int
    command_id: int  #: an ``int``, as it may be no :class:`CommandId` we know
    command_status: CommandStatus
    sequence_number: int


def decode_header(data: bytes) -> Header:
    """
    Read the header at the start of ``data``, without looking at the body.

    Useful to learn the ``sequence_number`` that :meth:`Connection.send` put
    on the bytes it returned, or to log a PDU that would not decode.

    Raises:
        RemoteProtocolError: if ``data`` is shorter than 16 octets (ESME_RINVCMDLEN).
    """
    if len(data) < HEADER_LENGTH:
        raise RemoteProtocolError(
            f"a PDU header is {HEADER_LENGTH} octets; got {len(data)}",
            CommandStatus.ESME_RINVCMDLEN,
        )
    length, command_id, status, seq = HEADER.unpack_from(data)
    return Header(length, command_id, CommandStatus(status), seq)


def encode(pdu: Pdu) -> bytes:
    """
    Serialise one PDU, header included.

    Args:
        pdu: any PDU with its ``sequence_number`` set.

    Returns:
        The PDU's bytes, ready for the wire.

    Raises:
        LocalProtocolError: if ``sequence_number`` is still ``None`` (let
            :meth:`Connection.send` assign one).
    """
    if pdu.sequence_number is None:
        raise LocalProtocolError(
            f"{type(pdu).__name__} has no sequence_number; Connection.send assigns one"
        )
    body = bytearray()
    if not _omits_body(pdu):
        for name, wire in layout(type(pdu)):
            _write(body, wire, getattr(pdu, name))
    header = HEADER.pack(
        HEADER_LENGTH + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number
    )
    return header + bytes(body)


def _omits_body(pdu: Pdu) -> bool:
    # §4.4.2: an error submit_sm_resp has no body.  Only when it has nothing to
    # say, so that decode(encode(pdu)) == pdu always holds.
    return (
        isinstance(pdu, SubmitSmResp)
        and pdu.command_status != CommandStatus.ESME_ROK
        and not pdu.message_id
    )


def _write(out: bytearray, wire: _Wire, value: Any) -> None:
    if wire.kind in ("cstring", "time"):
        out += value.encode("latin-1") + b"\0"
    elif wire.kind in ("u8", "state"):
        out.append(value)
    elif wire.kind == "octets":
        out.append(len(value))  # sm_length
        out += value
    else:
        for tlv in value:
            out += struct.pack(">HH", tlv.tag, len(tlv.value)) + tlv.value


def decode(data: bytes) -> Pdu:
    """
    Parse exactly one PDU.

    Args:
        data: one whole PDU, header included; ``command_length`` must equal
            ``len(data)``.

    Returns:
        The PDU, as an instance of its class (:class:`SubmitSm`, …).

    Raises:
        RemoteProtocolError: if the bytes are not a valid PDU we model.  Its
            ``command_status`` says why (ESME_RINVCMDLEN, ESME_RINVCMDID, or
            the status of the offending field).
    """
    length, raw_id, raw_status, seq = decode_header(data)
    where = {"command_id": raw_id, "sequence_number": seq}
    if length != len(data):
        raise RemoteProtocolError(
            f"command_length is {length}, but the PDU has {len(data)} octets",
            CommandStatus.ESME_RINVCMDLEN,
            **where,
        )
    try:
        cls = PDU_CLASSES[CommandId(raw_id)]
    except (ValueError, KeyError):
        raise RemoteProtocolError(
            f"command_id 0x{raw_id:08X} is not one we support",
            CommandStatus.ESME_RINVCMDID,
            **where,
        ) from None
    body = memoryview(data)[HEADER_LENGTH:]
    fields: dict[str, Any] = {}
    try:
        if body or not cls.command_id.is_response:
            pos = 0
            for name, wire in layout(cls):
                fields[name], pos = _read(body, pos, wire, name)
            if pos != len(body):
                raise LocalProtocolError(
                    f"{len(body) - pos} octets left over after the {cls.command_id.phrase} body",
                    CommandStatus.ESME_RINVCMDLEN,
                )
        return cls(sequence_number=seq, command_status=raw_status, **fields)
    except LocalProtocolError as exc:
        # The peer's bytes, not our code: re-raise as the peer's error.
        raise RemoteProtocolError(str(exc), exc.command_status, **where) from None


def _read(body: memoryview, pos: int, wire: _Wire, name: str) -> tuple[Any, int]:
    if wire.kind in ("cstring", "time"):
        # Look for the NUL a little past the limit, to tell "too long" (the
        # field's own status) from "runs off the end" (a framing error).
        window = bytes(body[pos : pos + wire.size + 1])
        end = window.find(b"\0")
        if end < 0:
            if len(window) > wire.size:
                raise LocalProtocolError(
                    f"{name} is longer than {wire.size - 1} characters", wire.status
                )
            raise _truncated(name)
        return window[:end].decode("latin-1"), pos + end + 1
    if wire.kind in ("u8", "state"):
        if pos >= len(body):
            raise _truncated(name)
        return body[pos], pos + 1
    if wire.kind == "octets":
        if pos >= len(body):
            raise _truncated("sm_length")
        size = body[pos]
        if pos + 1 + size > len(body):
            raise _truncated(name)
        return bytes(body[pos + 1 : pos + 1 + size]), pos + 1 + size
    tlvs = []
    while pos < len(body):
        if pos + 4 > len(body):
            raise LocalProtocolError(
                "a TLV header runs off the end of the PDU", CommandStatus.ESME_RINVOPTPARSTREAM
            )
        tag, size = struct.unpack_from(">HH", body, pos)
        if pos + 4 + size > len(body):
            raise LocalProtocolError(
                f"TLV 0x{tag:04X} runs off the end of the PDU", CommandStatus.ESME_RINVPARLEN
            )
        tlvs.append(Tlv(tag, bytes(body[pos + 4 : pos + 4 + size])))
        pos += 4 + size
    return tuple(tlvs), pos


def _truncated(name: str) -> LocalProtocolError:
    return LocalProtocolError(f"the PDU ends inside {name}", CommandStatus.ESME_RINVCMDLEN)
