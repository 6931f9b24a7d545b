"""Unit tests for alphabets, segment counting, split and reassemble (3GPP 23.038/23.040)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc import smpp
from iwork_mc.smpp._text import _GSM7_BASIC

GSM_BASIC = _GSM7_BASIC.replace("\x1b", "")
GSM_EXTENSION = "\f^{}\\[~]|€"
CJK = "张三您的访客已到达前台。中文汉字测试，"
EMOJI = "😀🎉👍"
METHODS = ["udh8", "udh16", "sar", "payload"]


def test_gsm7_basic_table() -> None:
    """The basic table has 127 characters (128 codes less the escape), at the codes of 23.038."""
    assert (127, b"\x00\x01\x02\x10\x1f\x24\x40\x60\x7f") == (
        len(GSM_BASIC),
        smpp.encode_gsm7("@£$ΔÉ¤¡¿à"),
    )


def test_gsm7_extension_takes_two_septets() -> None:
    """Every extension character is an escape (0x1B) and its code."""
    assert [
        b"\x1b\x0a", b"\x1b\x14", b"\x1b\x28", b"\x1b\x29", b"\x1b\x2f",
        b"\x1b\x3c", b"\x1b\x3d", b"\x1b\x3e", b"\x1b\x40", b"\x1b\x65",
    ] == [smpp.encode_gsm7(char) for char in GSM_EXTENSION]  # fmt: skip


@given(st.text(GSM_BASIC + GSM_EXTENSION))
def test_gsm7_round_trip(text: str) -> None:
    """decode_gsm7 inverts encode_gsm7 for any text in the alphabet."""
    assert text == smpp.decode_gsm7(smpp.encode_gsm7(text))


@pytest.mark.parametrize(
    ("text", "encodable"),
    [("Hello @ £5 {ok}", True), ("€100 ~ ^", True), ("ça", False), ("张三", False), ("😀", False), ("\x1b", False), ("", True)],
)  # fmt: skip
def test_gsm7_encodable(text: str, encodable: bool) -> None:
    """gsm7_encodable is true exactly when every character has a septet."""
    assert encodable == smpp.gsm7_encodable(text)


def test_encode_gsm7_refuses_other_characters() -> None:
    """encode_gsm7 raises ValueError on a character outside the alphabet."""
    with pytest.raises(ValueError, match="张"):
        smpp.encode_gsm7("a张")


def test_decode_gsm7_refuses_octets_above_0x7f() -> None:
    """decode_gsm7 raises ValueError on an octet that is not a septet."""
    with pytest.raises(ValueError):
        smpp.decode_gsm7(b"\x80")


def test_decode_gsm7_unknown_escape_reads_as_basic() -> None:
    """An escape before a code the extension table lacks reads as the basic character (23.038)."""
    assert "A" == smpp.decode_gsm7(b"\x1bA")


@pytest.mark.parametrize(
    ("text", "method", "expected"),
    [
        pytest.param("a" * 160, "udh8", (0, 160, 1), id="gsm7 160: one"),
        pytest.param("a" * 161, "udh8", (0, 161, 2), id="gsm7 161: two"),
        pytest.param("a" * 306, "udh8", (0, 306, 2), id="gsm7 153x2: two"),
        pytest.param("a" * 307, "udh8", (0, 307, 3), id="gsm7 153x2+1: three"),
        pytest.param("a" * 304, "udh16", (0, 304, 2), id="gsm7 152x2 udh16: two"),
        pytest.param("a" * 305, "udh16", (0, 305, 3), id="gsm7 152x2+1 udh16: three"),
        pytest.param("a" * 305, "sar", (0, 305, 3), id="gsm7 152x2+1 sar: three"),
        pytest.param("€" * 80, "udh8", (0, 160, 1), id="gsm7 80 euros: one"),
        pytest.param("a" * 159 + "€", "udh8", (0, 161, 2), id="gsm7 euro past 160: two"),
        pytest.param("a" * 152 + "€" + "a" * 152, "udh8", (0, 306, 3), id="gsm7 euro at 153: not split"),
        pytest.param("中" * 70, "udh8", (8, 70, 1), id="ucs2 70: one"),
        pytest.param("中" * 71, "udh8", (8, 71, 2), id="ucs2 71: two"),
        pytest.param("中" * 134, "udh8", (8, 134, 2), id="ucs2 67x2: two"),
        pytest.param("中" * 135, "udh8", (8, 135, 3), id="ucs2 67x2+1: three"),
        pytest.param("中" * 132, "udh16", (8, 132, 2), id="ucs2 66x2 udh16: two"),
        pytest.param("中" * 133, "udh16", (8, 133, 3), id="ucs2 66x2+1 udh16: three"),
        pytest.param("中" * 68 + "😀", "udh8", (8, 70, 1), id="emoji counts two: one"),
        pytest.param("中" * 69 + "😀", "udh8", (8, 71, 2), id="emoji past 70: two"),
        pytest.param("中" * 66 + "😀" + "中" * 66, "udh8", (8, 134, 3), id="emoji at 67: not split"),
        pytest.param("a" * 159 + "é", "udh8", (0, 160, 1), id="é is GSM"),
        pytest.param("a" * 159 + "á", "udh8", (8, 160, 3), id="á is not GSM"),
        pytest.param("", "udh8", (0, 0, 1), id="empty"),
    ],
)  # fmt: skip
def test_encoding_and_segment_count(
    text: str, method: smpp.SplitMethod, expected: tuple[int, int, int]
) -> None:
    """sms_encoding picks the alphabet and counts units and segments exactly at the boundaries."""
    encoding = smpp.sms_encoding(text, method=method)

    assert expected == (encoding.data_coding, encoding.units, encoding.segments)


def test_chinese_notice_is_ucs2_in_one_segment() -> None:
    """The visitor notice is UCS-2 (data_coding 8) and fits one message."""
    text = "张三，您的访客已到达前台。"

    assert smpp.Encoding(alphabet="ucs2", data_coding=8, units=13, segments=1) == smpp.sms_encoding(
        text
    )
    assert [
        smpp.Segment(short_message=text.encode("utf-16-be"), esm_class=0, data_coding=8)
    ] == smpp.split(text, reference=1)


def test_200_chinese_characters_make_three_udh_segments() -> None:
    """200 Chinese characters split into 3 UDH segments of at most 67 units, sharing one reference."""
    text = ("张三您的访客已到达前台" * 20)[:200]

    segments = smpp.split(text, method="udh8", reference=0x2A)

    assert [
        (bytes.fromhex("050003 2A 03 01"), 67, 0x40, 8),
        (bytes.fromhex("050003 2A 03 02"), 67, 0x40, 8),
        (bytes.fromhex("050003 2A 03 03"), 66, 0x40, 8),
    ] == [
        (s.short_message[:6], len(s.short_message[6:]) // 2, s.esm_class, s.data_coding)
        for s in segments
    ]
    assert text == smpp.reassemble(segments)


def test_udh16_header() -> None:
    """udh16 puts the 16-bit reference IE (0x08) in a 7-octet header."""
    segments = smpp.split("a" * 200, method="udh16", reference=0x1234)

    assert [bytes.fromhex("060804 1234 02 01"), bytes.fromhex("060804 1234 02 02")] == [
        s.short_message[:7] for s in segments
    ]


def test_sar_uses_tlvs_not_a_udh() -> None:
    """sar leaves short_message plain (esm_class 0) and numbers the segments with SAR TLVs."""
    segments = smpp.split("a" * 200, method="sar", reference=0x1234)

    assert [
        (b"a" * 152, 0, (smpp.Tlv.sar_msg_ref_num(0x1234), smpp.Tlv.sar_total_segments(2), smpp.Tlv.sar_segment_seqnum(1))),
        (b"a" * 48, 0, (smpp.Tlv.sar_msg_ref_num(0x1234), smpp.Tlv.sar_total_segments(2), smpp.Tlv.sar_segment_seqnum(2))),
    ] == [(s.short_message, s.esm_class, s.tlvs) for s in segments]  # fmt: skip


def test_payload_sends_one_pdu() -> None:
    """payload puts the whole text in one message_payload TLV with an empty short_message."""
    text = "中" * 300

    assert [
        smpp.Segment(short_message=b"", esm_class=0, data_coding=8, tlvs=(smpp.Tlv.message_payload(text.encode("utf-16-be")),))
    ] == smpp.split(text, method="payload", reference=0)  # fmt: skip


def test_extension_pair_is_never_split() -> None:
    """An extension character at a segment boundary moves whole to the next segment."""
    segments = smpp.split("a" * 152 + "€" + "a" * 10, reference=1)

    assert [b"a" * 152, b"\x1b\x65" + b"a" * 10] == [s.short_message[6:] for s in segments]


def test_surrogate_pair_is_never_split() -> None:
    """An emoji at a UCS-2 segment boundary moves whole to the next segment."""
    segments = smpp.split("中" * 66 + "😀" + "中" * 3, reference=1)

    assert [66, 5] == [len(s.short_message[6:]) // 2 for s in segments]


def test_reference_keeps_the_low_bits() -> None:
    """A reference wider than the header keeps its low bits, so any counter will do."""
    assert (0x34, bytes.fromhex("1234")) == (
        smpp.split("a" * 200, method="udh8", reference=0x1234)[0].short_message[3],
        smpp.split("a" * 200, method="udh16", reference=0x51234)[0].short_message[3:5],
    )


@pytest.mark.parametrize(
    ("text", "method", "reference"),
    [("a", "udh8", -1), ("a" * 153 * 256, "udh8", 1), ("中" * 40_000, "payload", 0), ("a", "udh32", 1)],
)  # fmt: skip
def test_split_refuses(text: str, method: smpp.SplitMethod, reference: int) -> None:
    """split raises ValueError on a negative reference, over 255 segments, a huge payload or a bad method."""
    with pytest.raises(ValueError):
        smpp.split(text, method=method, reference=reference)


TEXTS = st.text(GSM_BASIC + GSM_EXTENSION, max_size=700) | st.text(
    GSM_BASIC + GSM_EXTENSION + CJK + EMOJI, max_size=400
)


@pytest.mark.parametrize("method", METHODS)
@given(text=TEXTS, reference=st.integers(0, 0xFFFF))
def test_reassemble_inverts_split(method: smpp.SplitMethod, text: str, reference: int) -> None:
    """reassemble(split(text)) == text for every method, GSM and CJK alike."""
    assert text == smpp.reassemble(smpp.split(text, method=method, reference=reference))


@pytest.mark.parametrize("method", ["udh8", "udh16", "sar"])
@given(text=TEXTS)
def test_split_agrees_with_sms_encoding(method: smpp.SplitMethod, text: str) -> None:
    """split makes as many segments as sms_encoding counts, each within the room of one message."""
    segments = smpp.split(text, method=method, reference=1)
    encoding = smpp.sms_encoding(text, method=method)
    udh = {"udh8": 6, "udh16": 7, "sar": 0}[method] if len(segments) > 1 else 0

    assert (encoding.segments, True) == (
        len(segments),
        all(
            len(s.short_message) - udh <= (160 if encoding.data_coding == 0 else 140)
            for s in segments
        ),
    )


def test_reassemble_orders_segments() -> None:
    """Segments given out of order come back in order, by their sequence number."""
    text = "x" * 100 + "y" * 100 + "z" * 100
    segments = smpp.split(text, method="udh8", reference=9)

    assert text == smpp.reassemble(reversed(segments))


def test_reassemble_submit_sm_pdus() -> None:
    """reassemble accepts the SubmitSm PDUs that carried the segments, as a fake SMSC sees them."""
    text = "您好，" * 60
    pdus = [
        smpp.decode(smpp.encode(smpp.SubmitSm(sequence_number=n, destination_addr="1", short_message=s.short_message, esm_class=s.esm_class, data_coding=s.data_coding, tlvs=s.tlvs)))
        for n, s in enumerate(smpp.split(text, method="sar", reference=3), start=1)
    ]  # fmt: skip

    assert text == smpp.reassemble(pdus)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "expected"),
    [("udh8", smpp.Concatenation(7, 2, 1)), ("udh16", smpp.Concatenation(0x107, 2, 1)), ("sar", smpp.Concatenation(0x107, 2, 1))],
)  # fmt: skip
def test_concatenation_reads_each_method(
    method: smpp.SplitMethod, expected: smpp.Concatenation
) -> None:
    """concatenation reads the reference, total and sequence number from a UDH or SAR TLVs."""
    assert expected == smpp.concatenation(smpp.split("a" * 200, method=method, reference=0x107)[0])


def test_concatenation_skips_other_information_elements() -> None:
    """Other UDH information elements before the concatenation one are skipped."""
    udh = bytes.fromhex("08 24 01 01 00 03 2A 03 02")  # IE 0x24 (language shift), then IE 0x00
    segment = smpp.Segment(short_message=udh + b"x", esm_class=0x40, data_coding=0)

    assert smpp.Concatenation(0x2A, 3, 2) == smpp.concatenation(segment)


def test_concatenation_of_a_single_message_is_none() -> None:
    """A message sent whole has no concatenation header."""
    assert None is smpp.concatenation(smpp.split("hi", reference=1)[0])


def test_reassemble_decodes_latin1_and_ascii() -> None:
    """data_coding 1 (IA5) and 3 (Latin-1) decode too; other codings are refused."""
    latin = smpp.Segment(short_message="café".encode("latin-1"), esm_class=0, data_coding=3)
    ascii_ = smpp.Segment(short_message=b"ok", esm_class=0, data_coding=1)

    assert "caféok" == smpp.reassemble([latin, ascii_])
    with pytest.raises(ValueError):
        smpp.reassemble([smpp.Segment(short_message=b"\x00", esm_class=0, data_coding=4)])


@pytest.mark.parametrize(
    "short_message", [b"\x05\x00", b"\x02\x00\x03"], ids=["header too long", "IE too long"]
)
def test_malformed_udh_is_refused(short_message: bytes) -> None:
    """A UDH longer than short_message, or an IE longer than the UDH, raises ValueError."""
    with pytest.raises(ValueError):
        smpp.reassemble([smpp.Segment(short_message=short_message, esm_class=0x40, data_coding=0)])
