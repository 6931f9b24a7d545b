"""Unit tests for iwork_mc.top.envelope: answer bodies (spec/top-protocol.md §5)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from iwork_mc.top import envelope
from iwork_mc.top.errors import PlatformCode, TopError

METHOD = "alibaba.iwork.mc.msg.sendmobile"
REQUEST_ID = "3jvmp9ck65dy"
DECLARATION = b'<?xml version="1.0" encoding="utf-8" ?>'

#: The ``PojoResult`` of the seed's success example.
SUCCESS = {
    "result": {"content": True, "error_code": "200", "error_msg": "success", "success": True}
}
#: The seed's error example.
SEED_ERROR = TopError(
    PlatformCode.REMOTE_SERVICE_FIELD_ERROR, sub_code="isv.invalid-parameter", sub_msg="非法参数"
)

SUCCESS_XML = (
    DECLARATION + b"<alibaba_iwork_mc_msg_sendmobile_response><result><content>true</content>"
    b"<error_code>200</error_code><error_msg>success</error_msg><success>true</success>"
    b"</result><request_id>3jvmp9ck65dy</request_id></alibaba_iwork_mc_msg_sendmobile_response>"
)
SUCCESS_JSON = (
    b'{"alibaba_iwork_mc_msg_sendmobile_response":{"result":{"content":true,"error_code":"200",'
    b'"error_msg":"success","success":true},"request_id":"3jvmp9ck65dy"}}'
)
SUCCESS_SIMPLIFIED = (
    b'{"result":{"content":true,"error_code":"200","error_msg":"success","success":true},'
    b'"request_id":"3jvmp9ck65dy"}'
)
SEED_ERROR_XML = (
    DECLARATION
    + "<error_response><code>50</code><msg>Remote service error</msg>"
    "<sub_code>isv.invalid-parameter</sub_code><sub_msg>非法参数</sub_msg>"
    "<request_id>3jvmp9ck65dy</request_id></error_response>".encode()
)
SEED_ERROR_JSON = (
    '{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter",'
    '"sub_msg":"非法参数","request_id":"3jvmp9ck65dy"}}'.encode()
)

#: Characters XML 1.0 cannot carry, even as character references.
XML_ILLEGAL = [chr(c) for c in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]]


def test_success_xml_is_byte_exact() -> None:
    """The XML success answer is the seed's, with declaration, unindented, request_id last."""
    assert SUCCESS_XML == envelope.render_success(METHOD, SUCCESS, REQUEST_ID, "xml")


def test_success_json_is_byte_exact() -> None:
    """The JSON success answer is compact, typed as the metadata says, request_id last."""
    assert SUCCESS_JSON == envelope.render_success(METHOD, SUCCESS, REQUEST_ID, "json")


def test_success_json_simplified_is_byte_exact() -> None:
    """simplify=True drops the root wrapper of a JSON success answer."""
    actual = envelope.render_success(METHOD, SUCCESS, REQUEST_ID, "json", simplify=True)

    assert SUCCESS_SIMPLIFIED == actual


def test_simplify_does_not_change_xml() -> None:
    """simplify is JSON-only: the XML answer keeps its root element."""
    assert SUCCESS_XML == envelope.render_success(METHOD, SUCCESS, REQUEST_ID, "xml", simplify=True)


def test_business_failure_json_is_byte_exact() -> None:
    """A declined call answers result.success=false with its error_code and message."""
    payload = {
        "result": {
            "content": False,
            "error_code": "MSG_KEY_CONFLICT",
            "error_msg": "msg_key reused",
            "success": False,
        }
    }
    expected = (
        b'{"alibaba_iwork_mc_msg_sendmobile_response":{"result":{"content":false,'
        b'"error_code":"MSG_KEY_CONFLICT","error_msg":"msg_key reused","success":false},'
        b'"request_id":"3jvmp9ck65dy"}}'
    )

    assert expected == envelope.render_success(METHOD, payload, REQUEST_ID, "json")


def test_seed_error_xml_is_byte_exact() -> None:
    """The seed's error example (50, isv.invalid-parameter, 非法参数) renders as XML."""
    assert SEED_ERROR_XML == envelope.render_error(SEED_ERROR, REQUEST_ID, "xml")


def test_seed_error_json_is_byte_exact() -> None:
    """The seed's error example renders as JSON with a numeric code and raw Chinese text."""
    assert SEED_ERROR_JSON == envelope.render_error(SEED_ERROR, REQUEST_ID, "json")


def test_error_without_sub_code_xml_has_no_empty_elements() -> None:
    """An error without sub_code/sub_msg omits them, like TOP's live code-31 answer."""
    expected = (
        DECLARATION + b"<error_response><code>31</code><msg>Invalid timestamp</msg>"
        b"<request_id>13yki55kbv7ug</request_id></error_response>"
    )

    assert expected == envelope.render_error(
        TopError(PlatformCode.INVALID_TIMESTAMP), "13yki55kbv7ug", "xml"
    )


def test_error_without_sub_code_json_has_no_empty_members() -> None:
    """An error without sub_code/sub_msg omits them, like TOP's live code-25 answer."""
    expected = (
        b'{"error_response":{"code":25,"msg":"Invalid signature","request_id":"109wcmcgllsj1"}}'
    )

    assert expected == envelope.render_error(
        TopError(PlatformCode.INVALID_SIGNATURE), "109wcmcgllsj1", "json"
    )


def test_error_with_sub_msg_only() -> None:
    """A sub_msg without a sub_code comes after msg, and request_id stays last."""
    error = TopError(PlatformCode.MISSING_METHOD, sub_msg="http传入的参数加入method字段")
    expected = (
        '{"error_response":{"code":21,"msg":"Missing method",'
        '"sub_msg":"http传入的参数加入method字段","request_id":"14ibtxvb4vqjh"}}'
    ).encode()

    assert expected == envelope.render_error(error, "14ibtxvb4vqjh", "json")


def test_error_with_argument_json() -> None:
    """Code 40 names the missing parameter after a colon in msg."""
    error = TopError(PlatformCode.MISSING_REQUIRED_ARGUMENTS, arg="mobile_receiver_message_event")
    expected = (
        b'{"error_response":{"code":40,'
        b'"msg":"Missing required arguments:mobile_receiver_message_event",'
        b'"request_id":"zt9pqaglr3tk"}}'
    )

    assert expected == envelope.render_error(error, "zt9pqaglr3tk", "json")


def test_error_body_member_order() -> None:
    """error_body lists code, msg, sub_code, sub_msg, request_id in that order."""
    body = envelope.error_body(SEED_ERROR, REQUEST_ID)

    assert ["code", "msg", "sub_code", "sub_msg", "request_id"] == list(body)


def test_xml_escapes_markup() -> None:
    """``<``, ``&`` and ``>`` in a value are escaped in XML."""
    error = TopError(PlatformCode.INVALID_METHOD, sub_msg="a<b>&c")

    assert b"<sub_msg>a&lt;b&gt;&amp;c</sub_msg>" in envelope.render_error(error, REQUEST_ID, "xml")


@pytest.mark.parametrize(
    "text",
    ["<script>&amp;</script>", "]]>", "\"double\" and 'single'", "a=\"1\" b='2'", "tab\there\nnl"],
    ids=["markup", "cdata-end", "quotes", "attr-like", "tab-newline"],
)
def test_xml_text_round_trips_through_etree(text: str) -> None:
    """Markup, quotes, tabs and newlines in a value survive the XML round trip."""
    body = envelope.render_error(TopError(PlatformCode.INVALID_METHOD, sub_msg=text), "r", "xml")

    assert text == ET.fromstring(body).findtext("sub_msg")


def test_xml_keeps_carriage_return() -> None:
    """A carriage return in a value survives the XML round trip (written as ``&#13;``)."""
    text = "line1\r\nline2\r"
    body = envelope.render_error(TopError(PlatformCode.INVALID_METHOD, sub_msg=text), "r", "xml")

    assert text == ET.fromstring(body).findtext("sub_msg")


@pytest.mark.parametrize(
    "char",
    [*XML_ILLEGAL, "\ufffe", "\uffff", "\ud800", "\udfff"],
    ids=lambda c: f"U+{ord(c):04X}",
)
def test_xml_replaces_characters_xml_cannot_carry(char: str) -> None:
    """A character XML 1.0 cannot carry becomes U+FFFD and the answer still parses."""
    error = TopError(PlatformCode.INVALID_METHOD, sub_msg=f"a{char}b")
    body = envelope.render_error(error, "r", "xml")

    assert "a\ufffdb" == ET.fromstring(body).findtext("sub_msg")


@pytest.mark.parametrize("char", ["\ud800", "\udfff"], ids=["U+D800", "U+DFFF"])
def test_json_renders_lone_surrogate(char: str) -> None:
    """A lone surrogate in a value does not break the JSON answer, which still parses."""
    error = TopError(PlatformCode.INVALID_METHOD, sub_msg=f"a{char}b")
    body = envelope.render_error(error, "r", "json")

    assert "Invalid method" == json.loads(body)["error_response"]["msg"]


def test_json_escapes_control_characters() -> None:
    """Control characters are escaped in JSON, which stays one line and parses back."""
    text = 'a\x00b\x1fc\r\nd"e\\f'
    body = envelope.render_error(TopError(PlatformCode.INVALID_METHOD, sub_msg=text), "r", "json")

    assert (False, text) == (
        any(byte < 0x20 for byte in body),
        json.loads(body)["error_response"]["sub_msg"],
    )


@pytest.mark.parametrize("fmt", envelope.FORMATS)
def test_non_ascii_is_raw_utf8(fmt: envelope.Format) -> None:
    """Non-ASCII text is written raw in UTF-8, never as escapes or entities."""
    body = envelope.render_error(SEED_ERROR, REQUEST_ID, fmt)

    assert ("非法参数".encode() in body, b"\\u" in body, b"&#" in body) == (True, False, False)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("alibaba.iwork.mc.msg.sendmobile", "alibaba_iwork_mc_msg_sendmobile_response"),
        ("taobao.time.get", "time_get_response"),
        ("taobao.tbk.item.info.get", "tbk_item_info_get_response"),
        ("alibaba.aliqin.fc.sms.num.send", "alibaba_aliqin_fc_sms_num_send_response"),
    ],
    ids=["sendmobile", "taobao.time.get", "taobao.tbk", "alibaba.aliqin"],
)
def test_response_name(method: str, expected: str) -> None:
    """The root name is the method with dots as underscores, ``taobao.`` dropped."""
    assert expected == envelope.response_name(method)


def test_success_root_for_taobao_method() -> None:
    """A taobao.* method's success answer is rooted at its short response name."""
    body = envelope.render_success("taobao.time.get", {"time": "2017-09-14 16:08:16"}, "r", "xml")

    assert "time_get_response" == ET.fromstring(body).tag


PARSED_SUCCESS = {"alibaba_iwork_mc_msg_sendmobile_response": {**SUCCESS, "request_id": REQUEST_ID}}
PARSED_SEED_ERROR = {
    "error_response": {
        "code": 50,
        "msg": "Remote service error",
        "sub_code": "isv.invalid-parameter",
        "sub_msg": "非法参数",
        "request_id": REQUEST_ID,
    }
}


@pytest.mark.parametrize(
    ("body", "fmt", "expected"),
    [
        (SUCCESS_XML, "xml", PARSED_SUCCESS),
        (SUCCESS_JSON, "json", PARSED_SUCCESS),
        (SUCCESS_SIMPLIFIED, "json", PARSED_SUCCESS["alibaba_iwork_mc_msg_sendmobile_response"]),
        (SEED_ERROR_XML, "xml", PARSED_SEED_ERROR),
        (SEED_ERROR_JSON, "json", PARSED_SEED_ERROR),
    ],
    ids=["success-xml", "success-json", "success-simplified", "error-xml", "error-json"],
)
def test_parse_answer(body: bytes, fmt: envelope.Format, expected: dict[str, Any]) -> None:
    """parse_answer reads each byte-exact body back into the same typed members."""
    assert expected == envelope.parse_answer(body, fmt)


@pytest.mark.parametrize("fmt", envelope.FORMATS)
@pytest.mark.parametrize(
    "error",
    [
        SEED_ERROR,
        TopError(PlatformCode.INVALID_TIMESTAMP),
        TopError(PlatformCode.MISSING_REQUIRED_ARGUMENTS, arg="mobile_receiver_message_event"),
        TopError(PlatformCode.INVALID_METHOD, sub_msg='unknown method <a & "b">'),
        TopError(
            PlatformCode.APP_CALL_LIMITED,
            "accesscontrol.limited-by-app-access-count",
            "This ban will last for 41 more seconds",
        ),
    ],
    ids=["seed", "no-sub-code", "with-arg", "escaped", "flow-control"],
)
def test_error_round_trips(error: TopError, fmt: envelope.Format) -> None:
    """An error rendered in either format parses back to its error_body."""
    expected = {"error_response": envelope.error_body(error, REQUEST_ID)}

    assert expected == envelope.parse_answer(envelope.render_error(error, REQUEST_ID, fmt), fmt)


@pytest.mark.parametrize("fmt", envelope.FORMATS)
@pytest.mark.parametrize("simplify", [False, True], ids=["wrapped", "simplified"])
def test_success_round_trips(fmt: envelope.Format, simplify: bool) -> None:
    """A success answer with non-ASCII and markup in a value parses back unchanged."""
    payload = {
        "result": {"content": False, "error_code": "X", "error_msg": "张三 <&>", "success": False}
    }
    body = envelope.render_success(METHOD, payload, REQUEST_ID, fmt, simplify=simplify)
    inner = {**payload, "request_id": REQUEST_ID}
    expected = inner if simplify and fmt == "json" else {envelope.response_name(METHOD): inner}

    assert expected == envelope.parse_answer(body, fmt)


def test_parse_answer_ignores_trailing_node_comment() -> None:
    """A live XML answer with TOP's trailing ``<!--node-->`` comment parses."""
    body = (
        DECLARATION + b"<error_response><code>29</code><msg>Invalid app Key</msg>"
        b"<sub_code>isv.appkey-not-exists</sub_code><request_id>14sqam8deckzh</request_id>"
        b"</error_response><!--top010179080184.s.et2-->"
    )
    expected = {
        "error_response": {
            "code": 29,
            "msg": "Invalid app Key",
            "sub_code": "isv.appkey-not-exists",
            "request_id": "14sqam8deckzh",
        }
    }

    assert expected == envelope.parse_answer(body, "xml")


def test_parse_answer_rejects_json_that_is_not_an_object() -> None:
    """A JSON answer that is not an object is refused."""
    with pytest.raises(ValueError, match="JSON object"):
        envelope.parse_answer(b"[1]", "json")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("json", "application/json;charset=UTF-8"), ("xml", "text/xml;charset=UTF-8")],
)
def test_content_types(fmt: envelope.Format, expected: str) -> None:
    """Each format has a Content-Type that names UTF-8."""
    assert expected == envelope.CONTENT_TYPES[fmt]
