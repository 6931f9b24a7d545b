"""Unit tests for delivery receipts: parse_receipt, format_receipt, build_receipt (§5.2.12, Appendix B)."""

from __future__ import annotations

from datetime import datetime

import pytest

from iwork_mc import smpp
from iwork_mc.smpp import MessageState as M


def receipt_pdu(
    text: str, *, esm_class: int = 0x04, tlvs: tuple[smpp.Tlv, ...] = ()
) -> smpp.DeliverSm:
    return smpp.DeliverSm(
        source_addr="8613800000000",
        destination_addr="10690000",
        esm_class=esm_class,
        short_message=text.encode("latin-1"),
        tlvs=tlvs,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "id:0123456789 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:Hello world",
            smpp.Receipt(message_id="0123456789", state=M.DELIVERED, error="000",
                         submitted_at=datetime(2024, 1, 15, 12, 30), done_at=datetime(2024, 1, 15, 12, 31)),
            id="Appendix B",
        ),
        pytest.param(
            "ID:1A2B3C SUB:001 DLVRD:000 SUBMIT DATE:240115123045 DONE DATE:240115123112 STAT:UNDELIV ERR:034 TEXT:",
            smpp.Receipt(message_id="1A2B3C", state=M.UNDELIVERABLE, error="034",
                         submitted_at=datetime(2024, 1, 15, 12, 30, 45), done_at=datetime(2024, 1, 15, 12, 31, 12)),
            id="upper-case keys, hex id, 12-digit dates",
        ),
        pytest.param(
            "id:77 sub:1 dlvrd:1 submit_date:2312312359 done_date:2401010000 stat:DELIVRD err:0",
            smpp.Receipt(message_id="77", state=M.DELIVERED, error="0",
                         submitted_at=datetime(2023, 12, 31, 23, 59), done_at=datetime(2024, 1, 1, 0, 0)),
            id="underscored dates, no text",
        ),
        pytest.param(
            "id:abc stat:EXPIRED",
            smpp.Receipt(message_id="abc", state=M.EXPIRED),
            id="missing fields",
        ),
        pytest.param(
            "id:5 sub:001 dlvrd:000 submit date:2401151230 done date:9999999999 stat:REJECTD err:000 text:id:9 stat:DELIVRD",
            smpp.Receipt(message_id="5", state=M.REJECTED, error="000", submitted_at=datetime(2024, 1, 15, 12, 30)),
            id="keys inside text: ignored; impossible date: None",
        ),
        pytest.param(
            "id:  42  stat:  acceptd  err:000",
            smpp.Receipt(message_id="42", state=M.ACCEPTED, error="000"),
            id="extra spaces, lower-case stat",
        ),
        pytest.param(
            "id:8 stat:DELIVERED err:000",
            smpp.Receipt(message_id="8", state=M.DELIVERED, error="000"),
            id="stat spelled out",
        ),
        pytest.param(
            "id:8 stat:WHATEVER",
            smpp.Receipt(message_id="8", state=M.UNKNOWN),
            id="unknown stat",
        ),
        pytest.param("garbage", smpp.Receipt(message_id="", state=M.UNKNOWN), id="no fields"),
    ],
)  # fmt: skip
def test_parse_receipt_text(text: str, expected: smpp.Receipt) -> None:
    """Receipt texts in the variants SMSCs send are read tolerantly."""
    assert expected == smpp.parse_receipt(receipt_pdu(text))


@pytest.mark.parametrize(
    ("esm_class", "is_receipt"),
    [(0x00, False), (0x08, False), (0x20, False), (0x04, True), (0x44, True)],
)
def test_only_esm_class_type_0001_is_a_receipt(esm_class: int, is_receipt: bool) -> None:
    """A deliver_sm is a receipt exactly when esm_class bits 2-5 are 0b0001 (§5.2.12)."""
    receipt = smpp.parse_receipt(receipt_pdu("id:1 stat:DELIVRD", esm_class=esm_class))

    assert is_receipt == (receipt is not None)


def test_tlvs_win_over_text() -> None:
    """receipted_message_id and message_state TLVs take precedence over the text."""
    pdu = receipt_pdu(
        "id:111 stat:UNDELIV err:000",
        tlvs=(smpp.Tlv.receipted_message_id("6F"), smpp.Tlv.message_state(M.DELIVERED)),
    )

    assert smpp.Receipt(message_id="6F", state=M.DELIVERED, error="000") == smpp.parse_receipt(pdu)


def test_tlvs_alone_make_a_receipt() -> None:
    """A receipt with an empty text is read from its TLVs, network_error_code giving the error."""
    pdu = receipt_pdu(
        "",
        tlvs=(
            smpp.Tlv.receipted_message_id("abc"),
            smpp.Tlv.message_state(M.UNDELIVERABLE),
            smpp.Tlv.network_error_code(3, 11),
        ),
    )

    assert smpp.Receipt(message_id="abc", state=M.UNDELIVERABLE, error="011") == smpp.parse_receipt(
        pdu
    )


def test_text_in_message_payload() -> None:
    """A receipt whose text is in message_payload is read from there."""
    text = b"id:99 stat:DELIVRD err:000"
    pdu = smpp.DeliverSm(destination_addr="1", esm_class=4, tlvs=(smpp.Tlv.message_payload(text),))

    assert smpp.Receipt(message_id="99", state=M.DELIVERED, error="000") == smpp.parse_receipt(pdu)


def test_is_final() -> None:
    """Only an ENROUTE receipt is not final."""
    assert (False, True, True) == (
        smpp.Receipt(message_id="1", state=M.ENROUTE).is_final,
        smpp.Receipt(message_id="1", state=M.DELIVERED).is_final,
        smpp.Receipt(message_id="1", state=M.REJECTED).is_final,
    )


def test_format_receipt() -> None:
    """format_receipt writes the Appendix B text."""
    text = smpp.format_receipt(
        message_id="1A2B",
        state=M.DELIVERED,
        submitted_at=datetime(2024, 1, 15, 12, 30),
        done_at=datetime(2024, 1, 15, 12, 31),
        text="Your visitor has arrived at the front desk",
    )

    assert (
        "id:1A2B sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:Your visitor has arr"
        == text
    )


@pytest.mark.parametrize("state", list(M))
def test_build_receipt_round_trips(state: M) -> None:
    """build_receipt makes a deliver_sm that survives the wire and parses back to the same facts."""
    done = datetime(2024, 1, 15, 12, 31)
    pdu = smpp.build_receipt(
        message_id="id-1", state=state, source_addr="8613800000000", destination_addr="1069",
        submitted_at=datetime(2024, 1, 15, 12, 30), done_at=done, error="000", sequence_number=4,
    )  # fmt: skip
    decoded = smpp.decode(smpp.encode(pdu))
    assert isinstance(decoded, smpp.DeliverSm)
    text_only = smpp.DeliverSm(
        destination_addr="1069", esm_class=4, short_message=decoded.short_message
    )

    assert (0x04, smpp.parse_receipt(decoded), smpp.parse_receipt(text_only)) == (
        decoded.esm_class,
        smpp.Receipt(
            message_id="id-1",
            state=state,
            error="000",
            submitted_at=datetime(2024, 1, 15, 12, 30),
            done_at=done,
        ),
        smpp.Receipt(
            message_id="id-1",
            state=state,
            error="000",
            submitted_at=datetime(2024, 1, 15, 12, 30),
            done_at=done,
        ),
    )
