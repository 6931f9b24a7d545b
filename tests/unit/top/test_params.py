"""Unit tests for iwork_mc.top.params: the system-parameter steps (spec/top-protocol.md §2, §6)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iwork_mc.top import params, signing
from iwork_mc.top.errors import TopError

SENDMOBILE = "alibaba.iwork.mc.msg.sendmobile"
KNOWN = frozenset({SENDMOBILE})
SECRET = "helloworld"
#: 2017-09-14 16:08:16 GMT+8, the timestamp of the spec's §3.4 vectors.
NOW = 1_505_376_496_000
TEN_MINUTES = 600_000


def _code_and_msg(error: pytest.ExceptionInfo[TopError]) -> tuple[int, str]:
    return int(error.value.code), error.value.msg


def _signed(extra: dict[str, str], method: Any = "md5") -> dict[str, str]:
    """The §3.4 system parameters plus ``extra``, signed with ``method``."""
    call = {
        "method": SENDMOBILE,
        "app_key": "12345678",
        "timestamp": "2017-09-14 16:08:16",
        "format": "json",
        "v": "2.0",
        **extra,
    }
    if method is not None:
        call["sign_method"] = method
    return {**call, "sign": signing.sign(call, SECRET, method)}


# -- method (21/22) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call", [{}, {"method": ""}, {"method": "  "}], ids=["absent", "", "blank"]
)
def test_missing_method(call: dict[str, str]) -> None:
    """An absent or blank method is 21 Missing method."""
    with pytest.raises(TopError) as error:
        params.check_method(call, KNOWN)

    assert (21, "Missing method") == _code_and_msg(error)


@pytest.mark.parametrize(
    "method",
    ["taobao.time.get", "alibaba.iwork.mc.msg.senddefault", "ALIBABA.IWORK.MC.MSG.SENDMOBILE"],
    ids=["other-api", "sibling", "upper-case"],
)
def test_unknown_method(method: str) -> None:
    """A method this gateway does not serve is 22 Invalid method."""
    with pytest.raises(TopError) as error:
        params.check_method({"method": method}, KNOWN)

    assert (22, "Invalid method") == _code_and_msg(error)


def test_unknown_method_echo_is_bounded() -> None:
    """The sub_msg of 22 quotes at most 100 characters of the method sent."""
    with pytest.raises(TopError) as error:
        params.check_method({"method": "x" * 10_000}, KNOWN)

    assert f"unknown method {'x' * 100}" == error.value.sub_msg


def test_known_method() -> None:
    """A served method is returned, stripped."""
    assert SENDMOBILE == params.check_method({"method": f" {SENDMOBILE} "}, KNOWN)


# -- app_key (28) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call", [{}, {"app_key": ""}, {"app_key": " "}], ids=["absent", "", "blank"]
)
def test_missing_app_key(call: dict[str, str]) -> None:
    """An absent or blank app_key is 28 Missing app key."""
    with pytest.raises(TopError) as error:
        params.check_app_key(call)

    assert (28, "Missing app key") == _code_and_msg(error)


def test_app_key() -> None:
    """A present app_key is returned."""
    assert "12345678" == params.check_app_key({"app_key": "12345678"})


# -- timestamp (30/31) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call", [{}, {"timestamp": ""}, {"timestamp": "   "}], ids=["absent", "", "blank"]
)
def test_missing_timestamp(call: dict[str, str]) -> None:
    """An absent or blank timestamp is 30 Missing timestamp."""
    with pytest.raises(TopError) as error:
        params.check_timestamp(call, NOW, TEN_MINUTES)

    assert (30, "Missing timestamp") == _code_and_msg(error)


@pytest.mark.parametrize(
    "timestamp",
    [
        "1505376496",
        "2017-09-14T16:08:16",
        "2017-09-14T16:08:16+08:00",
        "2017-09-14 16:08:16.000",
        "2017-9-14 16:08:16",
        "2017/09/14 16:08:16",
        "2017-02-30 16:08:16",
        "2017-09-14 25:08:16",
        "15053764960000",
        "150537649600",
        "-505376496000",
        "1505376496000.0",
        "now",
        "１５０５３７６４９６０００",
        "٢٠١٧-٠٩-١٤ ١٦:٠٨:١٦",
    ],
    ids=[
        "epoch-seconds",
        "iso-T",
        "iso-offset",
        "fraction",
        "unpadded",
        "slashes",
        "feb-30",
        "hour-25",
        "14-digits",
        "12-digits",
        "negative",
        "float",
        "garbage",
        "fullwidth-digits",
        "arabic-indic-digits",
    ],
)
def test_malformed_timestamp(timestamp: str) -> None:
    """Anything but ``yyyy-MM-dd HH:mm:ss`` or 13 ASCII digits of epoch ms is 31."""
    with pytest.raises(TopError) as error:
        params.check_timestamp({"timestamp": timestamp}, NOW, TEN_MINUTES)

    assert (31, "Invalid timestamp") == _code_and_msg(error)


@pytest.mark.parametrize(
    "timestamp",
    ["2017-09-14 16:18:17", "2017-09-14 15:58:15", "1505377096001", "1505375895999"],
    ids=["datetime-ahead", "datetime-behind", "millis-ahead", "millis-behind"],
)
def test_timestamp_out_of_window(timestamp: str) -> None:
    """A timestamp more than the tolerance from now, on either side, is 31."""
    with pytest.raises(TopError) as error:
        params.check_timestamp({"timestamp": timestamp}, NOW, TEN_MINUTES)

    assert (31, "Invalid timestamp") == _code_and_msg(error)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2017-09-14 16:08:16", NOW),
        ("1505376496485", 1_505_376_496_485),
        ("2017-09-14 16:18:16", NOW + TEN_MINUTES),
        ("2017-09-14 15:58:16", NOW - TEN_MINUTES),
        ("1505377096000", NOW + TEN_MINUTES),
        (" 2017-09-14 16:08:16 ", NOW),
    ],
    ids=["datetime", "epoch-millis", "edge-ahead", "edge-behind", "millis-edge", "padded"],
)
def test_timestamp_in_window(timestamp: str, expected: int) -> None:
    """Both accepted forms inside the window (edges included) give epoch milliseconds."""
    assert expected == params.check_timestamp({"timestamp": timestamp}, NOW, TEN_MINUTES)


def test_timestamp_window_is_configurable() -> None:
    """The window is the tolerance passed in: one second off fails a 0 s tolerance."""
    with pytest.raises(TopError) as error:
        params.check_timestamp({"timestamp": "2017-09-14 16:08:17"}, NOW, 0)

    assert (31, "Invalid timestamp") == _code_and_msg(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-09-14 16:08:16", 1_505_376_496_000),
        ("1970-01-01 08:00:00", 0),
        ("2016-01-01 12:00:00", 1_451_620_800_000),
        ("1505376496485", 1_505_376_496_485),
        ("0000000000000", 0),
    ],
    ids=["seed", "epoch", "doc-vector", "millis", "zero-millis"],
)
def test_parse_timestamp_reads_gmt8(text: str, expected: int) -> None:
    """``yyyy-MM-dd HH:mm:ss`` is read as GMT+8 whatever the host's zone."""
    assert expected == params.parse_timestamp(text)


def test_format_timestamp_writes_gmt8() -> None:
    """format_timestamp writes GMT+8 like the Java SDK, dropping milliseconds."""
    assert "2017-09-14 16:08:16" == params.format_timestamp(1_505_376_496_485)


# 1970-01-01 08:00:00 to 9999-12-31 23:59:59 in GMT+8.
_MAX_MILLIS = 253_402_271_999_999


@settings(max_examples=100)
@given(millis=st.integers(min_value=0, max_value=_MAX_MILLIS))
def test_parse_timestamp_inverts_format_timestamp(millis: int) -> None:
    """Parsing a formatted instant gives it back, truncated to the second."""
    assert millis - millis % 1000 == params.parse_timestamp(params.format_timestamp(millis))


@settings(max_examples=100)
@given(seconds=st.integers(min_value=0, max_value=_MAX_MILLIS // 1000))
def test_format_timestamp_inverts_parse_timestamp(seconds: int) -> None:
    """Formatting a parsed timestamp gives the same text back."""
    text = params.format_timestamp(seconds * 1000)
    millis = params.parse_timestamp(text)

    assert (text, seconds * 1000) == (params.format_timestamp(millis or 0), millis)


# -- v (32/33/34) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "code", "msg"),
    [
        ({}, 32, "Missing version"),
        ({"v": ""}, 32, "Missing version"),
        ({"v": "two"}, 33, "Invalid version"),
        ({"v": "2."}, 33, "Invalid version"),
        ({"v": "v2.0"}, 33, "Invalid version"),
        ({"v": "1.0"}, 34, "Unsupported version"),
        ({"v": "2"}, 34, "Unsupported version"),
        ({"v": "3.0"}, 34, "Unsupported version"),
    ],
    ids=["absent", "empty", "two", "trailing-dot", "prefixed", "1.0", "2", "3.0"],
)
def test_bad_version(call: dict[str, str], code: int, msg: str) -> None:
    """v is required (32), must be a version number (33), and must be 2.0 (34)."""
    with pytest.raises(TopError) as error:
        params.check_version(call)

    assert (code, msg) == _code_and_msg(error)


def test_version_2_0() -> None:
    """v=2.0 passes."""
    params.check_version({"v": "2.0"})


# -- format (23) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ({}, "xml"),
        ({"format": ""}, "xml"),
        ({"format": "xml"}, "xml"),
        ({"format": "json"}, "json"),
        ({"format": "JSON"}, "json"),
        ({"format": " Xml "}, "xml"),
    ],
    ids=["absent", "empty", "xml", "json", "JSON", "padded-Xml"],
)
def test_format(call: dict[str, str], expected: str) -> None:
    """format defaults to xml; xml and json are accepted in any case."""
    assert expected == params.check_format(call)


@pytest.mark.parametrize("fmt", ["yaml", "json2", "xml2", "jsonp"])
def test_bad_format(fmt: str) -> None:
    """Any other format, the Java SDK's json2/xml2 included, is 23 Invalid format."""
    with pytest.raises(TopError) as error:
        params.check_format({"format": fmt})

    assert (23, "Invalid format") == _code_and_msg(error)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ({}, "xml"),
        ({"format": "json"}, "json"),
        ({"format": "JSON "}, "json"),
        ({"format": "xml"}, "xml"),
        ({"format": "yaml"}, "xml"),
    ],
    ids=["absent", "json", "JSON", "xml", "invalid"],
)
def test_answer_format(call: dict[str, str], expected: str) -> None:
    """The answer is JSON only when json was asked for, even before format is validated."""
    assert expected == params.answer_format(call)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ({}, False),
        ({"simplify": "true"}, True),
        ({"simplify": "True "}, True),
        ({"simplify": "false"}, False),
        ({"simplify": "1"}, False),
    ],
    ids=["absent", "true", "True", "false", "1"],
)
def test_is_simplified(call: dict[str, str], expected: bool) -> None:
    """Only simplify=true (any case) simplifies."""
    assert expected == params.is_simplified(call)


# -- sign (24/25) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [None, "", "  "], ids=["absent", "empty", "blank"])
def test_missing_signature(sign: str | None) -> None:
    """An absent or blank sign is 24 Missing signature."""
    call = {k: v for k, v in _signed({}).items() if k != "sign"}
    if sign is not None:
        call["sign"] = sign

    with pytest.raises(TopError) as error:
        params.check_signature(call, [SECRET])

    assert (24, "Missing signature") == _code_and_msg(error)


@pytest.mark.parametrize(
    "change",
    [{"sign": "B2BBC9E5301C337625565F2CF67D3984"}, {"timestamp": "2017-09-14 16:08:17"}],
    ids=["wrong-sign", "tampered"],
)
def test_wrong_signature(change: dict[str, str]) -> None:
    """A signature that does not sign the parameters is 25 Invalid signature."""
    with pytest.raises(TopError) as error:
        params.check_signature({**_signed({}), **change}, [SECRET])

    assert (25, "Invalid signature") == _code_and_msg(error)


def test_signature_with_other_secret() -> None:
    """A signature made with a secret not in the list is 25."""
    with pytest.raises(TopError) as error:
        params.check_signature(_signed({}), ["not-the-secret"])

    assert (25, "Invalid signature") == _code_and_msg(error)


@pytest.mark.parametrize("sign_method", ["sha1", "hmac-sha1", "rsa"])
def test_bad_sign_method(sign_method: str) -> None:
    """An unknown sign_method is 25 Invalid signature."""
    call = _signed({"sign_method": sign_method}, method=None)

    with pytest.raises(TopError) as error:
        params.check_signature(call, [SECRET])

    assert (25, "Invalid signature") == _code_and_msg(error)


@pytest.mark.parametrize("method", [*signing.SIGN_METHODS, None])
def test_good_signature(method: Any) -> None:
    """A correct signature with each method, and without sign_method, passes."""
    params.check_signature(_signed({}, method=method), [SECRET])


def test_sign_method_is_case_insensitive() -> None:
    """sign_method=HMAC is read as hmac (its value still signed as sent)."""
    call = {"method": SENDMOBILE, "sign_method": "HMAC"}
    call["sign"] = signing.sign(call, SECRET, "hmac")

    params.check_signature(call, [SECRET])


def test_signature_with_rotated_secret() -> None:
    """A signature made with the previous secret passes while it is in the list."""
    params.check_signature(_signed({}), ["new-secret", SECRET])


def test_signature_with_empty_parameter_dropped() -> None:
    """A Java-SDK signature that left an empty parameter out passes."""
    call = {**_signed({}), "session": ""}

    params.check_signature(call, [SECRET])


def test_system_params() -> None:
    """SYSTEM_PARAMS is exactly the SDKs' system parameter names (spec §2)."""
    expected = {
        "method",
        "app_key",
        "session",
        "timestamp",
        "format",
        "v",
        "sign_method",
        "sign",
        "partner_id",
        "target_app_key",
        "simplify",
    }

    assert expected == params.SYSTEM_PARAMS
