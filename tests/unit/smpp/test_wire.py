"""Unit tests for the PDU classes and encode/decode (§3.2, §4)."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc import smpp
from iwork_mc.smpp import CommandStatus as S
from iwork_mc.smpp._pdu import layout
from iwork_mc.smpp._wire import PDU_CLASSES

from ._support import SAMPLES


def h(text: str) -> bytes:
    """Hex with spaces, the way the spec lays fields out."""
    return bytes.fromhex(text)


# Each vector is written field by field from the tables of §4.
VECTORS = [
    pytest.param(
        smpp.EnquireLink(sequence_number=1),
        h("00000010 00000015 00000000 00000001"),
        id="enquire_link",
    ),
    pytest.param(
        smpp.GenericNack(sequence_number=7, command_status=S.ESME_RINVCMDID),
        h("00000010 80000000 00000003 00000007"),
        id="generic_nack",
    ),
    pytest.param(
        smpp.BindTransceiver(sequence_number=1, system_id="acme", password="secret"),
        h("00000021 00000009 00000000 00000001")
        + b"acme\0"  # system_id
        + b"secret\0"  # password
        + b"\0"  # system_type
        + h("34 00 00")  # interface_version 3.4, addr_ton, addr_npi
        + b"\0",  # address_range
        id="bind_transceiver",
    ),
    pytest.param(
        smpp.BindTransceiverResp(
            sequence_number=1, system_id="SMSC", tlvs=(smpp.Tlv(0x0210, b"\x34"),)
        ),
        h("0000001A 80000009 00000000 00000001") + b"SMSC\0" + h("0210 0001 34"),
        id="bind_transceiver_resp with sc_interface_version",
    ),
    pytest.param(
        smpp.SubmitSm(
            sequence_number=2,
            source_addr_ton=5,
            source_addr="IWORK",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="8613800000000",
            registered_delivery=1,
            short_message=b"Hi",
        ),
        h("00000035 00000004 00000000 00000002")
        + b"\0"  # service_type
        + h("05 00")  # source_addr_ton, source_addr_npi
        + b"IWORK\0"
        + h("01 01")  # dest_addr_ton, dest_addr_npi
        + b"8613800000000\0"
        + h("00 00 00")  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + h("01 00 00 00")  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        + h("02")  # sm_length
        + b"Hi",
        id="submit_sm",
    ),
    pytest.param(
        smpp.SubmitSmResp(sequence_number=2, message_id="1A2B"),
        h("00000015 80000004 00000000 00000002") + b"1A2B\0",
        id="submit_sm_resp",
    ),
    pytest.param(
        smpp.SubmitSmResp(sequence_number=2, command_status=S.ESME_RTHROTTLED),
        h("00000010 80000004 00000058 00000002"),
        id="submit_sm_resp error without body (§4.4.2)",
    ),
    pytest.param(
        smpp.DeliverSm(
            sequence_number=3,
            destination_addr="1069",
            esm_class=0x04,
            tlvs=(smpp.Tlv.message_state(smpp.MessageState.DELIVERED),),
        ),
        h("0000002A 00000005 00000000 00000003")
        + b"\0" + h("00 00") + b"\0" + h("00 00") + b"1069\0"
        + h("04 00 00") + b"\0\0" + h("00 00 00 00")
        + h("00")  # sm_length 0
        + h("0427 0001 02"),  # message_state TLV: DELIVERED
        id="deliver_sm with a TLV",
    ),
    pytest.param(
        smpp.QuerySmResp(
            sequence_number=4, message_id="abc", message_state=smpp.MessageState.DELIVERED
        ),
        h("00000017 80000003 00000000 00000004") + b"abc\0" + b"\0" + h("02 00"),
        id="query_sm_resp",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("pdu", "wire"), VECTORS)
def test_encode_known_vector(pdu: smpp.Pdu, wire: bytes) -> None:
    """encode produces the bytes the spec's field layout gives."""
    assert wire == smpp.encode(pdu)


@pytest.mark.parametrize(("pdu", "wire"), VECTORS)
def test_decode_known_vector(pdu: smpp.Pdu, wire: bytes) -> None:
    """decode reads the spec's bytes back into the same PDU."""
    assert pdu == smpp.decode(wire)


def test_every_modelled_command_has_a_sample() -> None:
    """The shared samples cover every PDU class the codec knows."""
    assert set(PDU_CLASSES.values()) == {type(pdu) for pdu in SAMPLES}


# Hypothesis strategies, one per wire kind of the body fields.
def _field(kind: str, size: int) -> st.SearchStrategy[object]:
    if kind == "cstring":
        return st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=size - 1)
    if kind == "time":
        return st.one_of(st.just(""), st.text("0123456789+-R", min_size=16, max_size=16))
    if kind == "u8":
        return st.integers(0, 0xFF)
    if kind == "state":
        return st.integers(0, 0xFF).map(smpp.MessageState)
    if kind == "octets":
        return st.binary(max_size=size)
    tlv = st.builds(smpp.Tlv, st.integers(0, 0xFFFF), st.binary(max_size=300))
    return st.lists(tlv, max_size=3).map(tuple)


def pdus(cls: type[smpp.Pdu]) -> st.SearchStrategy[smpp.Pdu]:
    fields = {name: _field(wire.kind, wire.size) for name, wire in layout(cls)}
    return st.builds(
        cls,
        sequence_number=st.integers(0, 0xFFFFFFFF),
        command_status=st.integers(0, 0xFFFFFFFF).map(S),
        **fields,
    )


ANY_PDU = st.one_of([pdus(cls) for cls in PDU_CLASSES.values()])


@given(ANY_PDU)
def test_decode_inverts_encode(pdu: smpp.Pdu) -> None:
    """decode(encode(pdu)) == pdu for every PDU type with random field values."""
    assert pdu == smpp.decode(smpp.encode(pdu))


@given(ANY_PDU)
def test_header_describes_the_pdu(pdu: smpp.Pdu) -> None:
    """decode_header reads command_length, command_id, command_status and sequence_number."""
    wire = smpp.encode(pdu)

    assert (len(wire), pdu.command_id, pdu.command_status, pdu.sequence_number) == tuple(
        smpp.decode_header(wire)
    )


@given(st.binary(max_size=120))
def test_decode_of_random_bytes_fails_only_as_remote_error(data: bytes) -> None:
    """decode either returns a PDU or raises RemoteProtocolError, whatever the bytes."""
    framed = len(data).to_bytes(4, "big") + data[4:] if len(data) >= 4 else data
    with contextlib.suppress(smpp.RemoteProtocolError):
        smpp.decode(framed)


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        pytest.param(h("00000010 00000015 00000000"), S.ESME_RINVCMDLEN, id="short header"),
        pytest.param(h("00000011 00000015 00000000 00000001"), S.ESME_RINVCMDLEN, id="length mismatch"),
        pytest.param(h("00000010 00001234 00000000 00000001"), S.ESME_RINVCMDID, id="unknown command"),
        pytest.param(h("00000010 00000103 00000000 00000001"), S.ESME_RINVCMDID, id="data_sm, not modelled"),
        pytest.param(h("00000011 00000015 00000000 00000001 00"), S.ESME_RINVCMDLEN, id="body on enquire_link"),
        pytest.param(h("00000014 00000009 00000000 00000001") + b"acme", S.ESME_RINVCMDLEN, id="body ends in a C-string"),
        pytest.param(h("00000027 00000009 00000000 00000001") + b"a" * 16 + b"\0\0\0" + h("34 00 00 00"), S.ESME_RINVSYSID, id="system_id too long"),
        pytest.param(h("0000001A 80000004 00000000 00000001") + b"abc\0" + h("0001 0005"), S.ESME_RINVCMDLEN, id="bytes after the body"),
        pytest.param(h("00000030 00000009 00000000 00000001") + b"a" * 32, S.ESME_RINVSYSID, id="system_id without NUL"),
        pytest.param(h("00000016 00000005 00000000 00000001") + b"\0\0\0\0\0\0", S.ESME_RINVCMDLEN, id="deliver_sm cut short"),
        pytest.param(h("00000012 80000009 00000000 00000001") + b"\0" + h("02"), S.ESME_RINVOPTPARSTREAM, id="TLV header cut short"),
    ],
)  # fmt: skip
def test_malformed_pdu_is_a_remote_error_with_a_hint(wire: bytes, status: S) -> None:
    """A malformed PDU raises RemoteProtocolError whose command_status says what is wrong."""
    with pytest.raises(smpp.RemoteProtocolError) as info:
        smpp.decode(wire)

    assert status == info.value.command_status


def test_field_errors_carry_the_field_status() -> None:
    """An over-long source_addr from the peer is ESME_RINVSRCADR, with the header's numbers."""
    pdu = smpp.SubmitSm(sequence_number=9, destination_addr="1", source_addr="x")
    wire = smpp.encode(pdu).replace(b"x\0", b"x" * 21 + b"\0")
    wire = len(wire).to_bytes(4, "big") + wire[4:]

    with pytest.raises(smpp.RemoteProtocolError) as info:
        smpp.decode(wire)

    assert (S.ESME_RINVSRCADR, smpp.CommandId.SUBMIT_SM, 9) == (
        info.value.command_status,
        info.value.command_id,
        info.value.sequence_number,
    )


def test_tlv_running_off_the_end() -> None:
    """A TLV whose length passes the end of the PDU is ESME_RINVPARLEN."""
    wire = smpp.encode(smpp.DeliverSm(sequence_number=1, destination_addr="1")) + h("0427 0002 02")
    wire = len(wire).to_bytes(4, "big") + wire[4:]

    with pytest.raises(smpp.RemoteProtocolError) as info:
        smpp.decode(wire)

    assert S.ESME_RINVPARLEN == info.value.command_status


@pytest.mark.parametrize("cls", [cls for cls in PDU_CLASSES.values() if cls.command_id.is_response])
def test_response_with_empty_body_decodes_to_defaults(cls: type[smpp.Pdu]) -> None:
    """A response without a body (as some SMSCs send errors) decodes with default fields."""
    wire = h("00000010") + cls.command_id.to_bytes(4, "big") + h("00000008 00000005")

    assert cls(sequence_number=5, command_status=S.ESME_RSYSERR) == smpp.decode(wire)


def test_unknown_tlvs_survive_a_round_trip() -> None:
    """TLVs nobody here knows are kept, in order, through decode and encode."""
    tlvs = (smpp.Tlv(0x1401, b"vendor"), smpp.Tlv.sar_msg_ref_num(7), smpp.Tlv(0x1402, b""))
    pdu = smpp.DeliverSm(sequence_number=1, destination_addr="1", tlvs=tlvs)

    assert tlvs == smpp.decode(smpp.encode(pdu)).tlvs  # type: ignore[attr-defined]


def test_typed_tlv_accessors() -> None:
    """The typed TLV constructors and accessors agree with §5.3.2."""
    pdu = smpp.DeliverSm(
        destination_addr="1",
        tlvs=(
            smpp.Tlv.sar_msg_ref_num(0x1234),
            smpp.Tlv.sar_total_segments(3),
            smpp.Tlv.sar_segment_seqnum(2),
            smpp.Tlv.message_payload(b"payload"),
            smpp.Tlv.receipted_message_id("1A2B"),
            smpp.Tlv.message_state(smpp.MessageState.UNDELIVERABLE),
            smpp.Tlv.network_error_code(3, 0x0101),
        ),
    )

    assert (0x1234, 3, 2, b"payload", "1A2B", smpp.MessageState.UNDELIVERABLE, (3, 0x0101)) == (
        pdu.sar_msg_ref_num,
        pdu.sar_total_segments,
        pdu.sar_segment_seqnum,
        pdu.message_payload,
        pdu.receipted_message_id,
        pdu.message_state,
        pdu.network_error_code,
    )


def test_tlv_bytes_on_the_wire() -> None:
    """Typed TLVs have the tags and value layouts of §5.3.2."""
    assert [
        (0x020C, h("1234")),
        (0x020E, h("03")),
        (0x020F, h("02")),
        (0x001E, b"1A2B\0"),
        (0x0427, h("05")),
        (0x0423, h("03 0101")),
    ] == [
        (tlv.tag, tlv.value)
        for tlv in (
            smpp.Tlv.sar_msg_ref_num(0x1234),
            smpp.Tlv.sar_total_segments(3),
            smpp.Tlv.sar_segment_seqnum(2),
            smpp.Tlv.receipted_message_id("1A2B"),
            smpp.Tlv.message_state(smpp.MessageState.UNDELIVERABLE),
            smpp.Tlv.network_error_code(3, 0x0101),
        )
    ]


def test_sc_interface_version() -> None:
    """A bind response reads the SMSC's SMPP version from sc_interface_version."""
    resp = smpp.BindTransceiverResp(tlvs=(smpp.Tlv(smpp.TlvTag.SC_INTERFACE_VERSION, b"\x34"),))

    assert (0x34, None) == (
        resp.sc_interface_version,
        smpp.BindTransceiverResp().sc_interface_version,
    )


def test_malformed_known_tlv_reads_as_absent() -> None:
    """A known TLV with the wrong length reads as None instead of failing the PDU."""
    pdu = smpp.DeliverSm(destination_addr="1", tlvs=(smpp.Tlv(0x0427, b"\x02\x00"),))

    assert (None, None) == (pdu.message_state, pdu.sar_msg_ref_num)


def test_receipted_message_id_without_nul() -> None:
    """receipted_message_id reads the same with or without its terminating NUL."""
    pdu = smpp.DeliverSm(destination_addr="1", tlvs=(smpp.Tlv(0x001E, b"abc"),))

    assert "abc" == pdu.receipted_message_id


@pytest.mark.parametrize(
    ("build", "status"),
    [
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1" * 21), S.ESME_RINVDSTADR, id="destination_addr"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", source_addr="x" * 21), S.ESME_RINVSRCADR, id="source_addr"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", short_message=b"x" * 255), S.ESME_RINVMSGLEN, id="short_message"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", short_message="text"), S.ESME_RINVMSGLEN, id="short_message str"),  # type: ignore[arg-type]
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", esm_class=256), S.ESME_RINVESMCLASS, id="esm_class"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", validity_period="2401"), S.ESME_RINVEXPIRY, id="validity_period"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", service_type="CMT\0"), S.ESME_RINVSERTYP, id="NUL in service_type"),
        pytest.param(lambda: smpp.BindTransmitter(system_id="a" * 16), S.ESME_RINVSYSID, id="system_id"),
        pytest.param(lambda: smpp.BindTransmitter(system_id="a", password="123456789"), S.ESME_RINVPASWD, id="password"),
        pytest.param(lambda: smpp.SubmitSmResp(message_id="中"), S.ESME_RINVMSGID, id="non-Latin-1 message_id"),
        pytest.param(lambda: smpp.EnquireLink(sequence_number=-1), S.ESME_RSYSERR, id="sequence_number"),
        pytest.param(lambda: smpp.Tlv(0x10000, b""), S.ESME_RINVOPTPARSTREAM, id="tlv tag"),
        pytest.param(lambda: smpp.Tlv(1, b"x" * 0x10000), S.ESME_RINVPARLEN, id="tlv value length"),
        pytest.param(lambda: smpp.Tlv(1, "x"), S.ESME_RINVOPTPARAMVAL, id="tlv value str"),  # type: ignore[arg-type]
        pytest.param(lambda: smpp.Tlv.receipted_message_id("x" * 65), S.ESME_RINVPARLEN, id="receipted_message_id"),
        pytest.param(lambda: smpp.SubmitSm(destination_addr=1), S.ESME_RINVDSTADR, id="destination_addr int"),  # type: ignore[arg-type]
        pytest.param(lambda: smpp.SubmitSm(destination_addr="1", tlvs=(b"",)), S.ESME_RINVOPTPARSTREAM, id="tlvs not Tlv"),  # type: ignore[arg-type]
        pytest.param(lambda: smpp.EnquireLink(command_status=-5), S.ESME_RSYSERR, id="command_status"),  # type: ignore[arg-type]
        pytest.param(lambda: smpp.Tlv.sar_total_segments(256), S.ESME_RINVOPTPARAMVAL, id="tlv value"),
    ],
)  # fmt: skip
def test_invalid_field_is_a_local_error(build: object, status: S) -> None:
    """Building a PDU with an invalid field raises LocalProtocolError naming the field's status."""
    with pytest.raises(smpp.LocalProtocolError) as info:
        build()  # type: ignore[operator]

    assert status == info.value.command_status


def test_fields_are_normalised() -> None:
    """A bytearray short_message, a list of TLVs and an int status become bytes, tuple and enum."""
    pdu = smpp.SubmitSm(
        destination_addr="1",
        short_message=bytearray(b"x"),  # type: ignore[arg-type]
        tlvs=[smpp.Tlv(1, b"")],  # type: ignore[arg-type]
        command_status=0x58,  # type: ignore[arg-type]
    )

    assert (b"x", (smpp.Tlv(1, b""),), S.ESME_RTHROTTLED) == (
        pdu.short_message,
        pdu.tlvs,
        pdu.command_status,
    )


def test_pdus_are_frozen() -> None:
    """PDUs cannot be changed after construction."""
    pdu = smpp.EnquireLink()

    with pytest.raises(dataclasses.FrozenInstanceError):
        pdu.sequence_number = 1  # type: ignore[misc]


def test_password_stays_out_of_repr() -> None:
    """Logging a bind PDU never logs its password."""
    assert "secret" not in repr(smpp.BindTransceiver(system_id="acme", password="secret"))


def test_base_pdu_is_abstract() -> None:
    """The Pdu base class cannot be instantiated: it has no command_id."""
    with pytest.raises(TypeError):
        smpp.Pdu()


def test_encode_needs_a_sequence_number() -> None:
    """encode refuses a PDU whose sequence_number is still None."""
    with pytest.raises(smpp.LocalProtocolError):
        smpp.encode(smpp.EnquireLink())


def test_protocol_error_is_abstract() -> None:
    """ProtocolError refuses direct instantiation; its two subclasses are ProtocolErrors."""
    with pytest.raises(TypeError):
        smpp.ProtocolError("boom")

    assert (True, True) == (
        isinstance(smpp.LocalProtocolError("x"), smpp.ProtocolError),
        isinstance(smpp.RemoteProtocolError("x"), smpp.ProtocolError),
    )


def test_event_is_the_pdu_base() -> None:
    """smpp.Event is h11's name for the PDU base class."""
    assert smpp.Pdu is smpp.Event
