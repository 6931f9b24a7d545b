"""
A sans-I/O SMPP 3.4 protocol engine.

Theory of operation
===================

This package speaks SMPP 3.4 and does nothing else: no sockets, no event
loop, no threads, and nothing imported from the rest of ``iwork_mc``.  It is
built the way h11 is, around one object and three verbs::

    from iwork_mc import smpp

    conn = smpp.Connection(our_role=smpp.Role.ESME)
    wire = conn.send(smpp.BindTransceiver(system_id="acme", password="secret"))
    ...                                   # write `wire` to the socket
    conn.receive_data(chunk)              # what the socket read; b"" at EOF
    event = conn.next_event()             # a PDU, smpp.NEED_DATA or smpp.CLOSED

An adapter's read loop, in full::

    conn.receive_data(data)
    while True:
        try:
            event = conn.next_event()
        except smpp.RemoteProtocolError as exc:   # the peer broke SMPP
            if exc.reply is not None:
                transport.write(conn.send(exc.reply))
            if conn.state is smpp.State.CLOSED:  # the stream is beyond repair
                transport.close()
                return
            continue
        if event is smpp.NEED_DATA:
            return
        if event is smpp.CLOSED:
            transport.close()
            return
        handle(event)                            # a PDU: SubmitSmResp, DeliverSm, ...

The bytes come from and go to whoever drives the connection: the asyncio
adapter in ``iwork_mc.channels``, the fake SMSC of the tests, or a fuzzer.
The adapter owns windows, timers and reconnects; everything that is SMPP
(framing, sequence numbers, which PDU is legal when, what to answer a bad
one) is decided here.

The modules follow the data path: ``_codes`` (the numbers), ``_tlv`` and
``_pdu`` (the PDUs), ``_wire`` (PDUs ↔ bytes), ``_state`` (the session state
machine, as a table), ``_connection`` (all of it behind three verbs),
``_text`` (alphabets and splitting) and ``_receipt`` (delivery receipts).
"""

from __future__ import annotations

from iwork_mc.smpp._codes import CommandId, CommandStatus, MessageState
from iwork_mc.smpp._connection import CLOSED, ESME, NEED_DATA, SMSC, Connection
from iwork_mc.smpp._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
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
    Event,
    GenericNack,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from iwork_mc.smpp._receipt import Receipt, build_receipt, format_receipt, parse_receipt
from iwork_mc.smpp._state import Role, State
from iwork_mc.smpp._text import (
    Concatenation,
    Encoding,
    Segment,
    SplitMethod,
    concatenation,
    decode_gsm7,
    encode_gsm7,
    gsm7_encodable,
    reassemble,
    sms_encoding,
    split,
)
from iwork_mc.smpp._tlv import NetworkError, Tlv, TlvTag
from iwork_mc.smpp._wire import Header, decode, decode_header, encode

__all__ = [
    "CLOSED",
    "ESME",
    "NEED_DATA",
    "SMSC",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CommandId",
    "CommandStatus",
    "Concatenation",
    "Connection",
    "DeliverSm",
    "DeliverSmResp",
    "Encoding",
    "EnquireLink",
    "EnquireLinkResp",
    "Event",
    "GenericNack",
    "Header",
    "LocalProtocolError",
    "MessageState",
    "NetworkError",
    "Pdu",
    "ProtocolError",
    "QuerySm",
    "QuerySmResp",
    "Receipt",
    "RemoteProtocolError",
    "Role",
    "Segment",
    "SplitMethod",
    "State",
    "SubmitSm",
    "SubmitSmResp",
    "Tlv",
    "TlvTag",
    "Unbind",
    "UnbindResp",
    "build_receipt",
    "concatenation",
    "decode",
    "decode_gsm7",
    "decode_header",
    "encode",
    "encode_gsm7",
    "format_receipt",
    "gsm7_encodable",
    "parse_receipt",
    "reassemble",
    "sms_encoding",
    "split",
]

# Show the public home in reprs and tracebacks (smpp.SubmitSm, not
# smpp._pdu.SubmitSm), as httpx does.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value
