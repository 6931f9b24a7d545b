"""Unit tests for iwork_mc.top.errors: the platform error table (spec/top-protocol.md §6)."""

from __future__ import annotations

import pytest

from iwork_mc.top import errors
from iwork_mc.top.errors import PlatformCode, TopError

#: Code and msg as spec §6 spells them (live spelling where TOP was captured).
SPEC_TABLE = {
    7: "App Call Limited",
    9: "Http Action Not Allowed",
    10: "Service Currently Unavailable",
    11: "Insufficient isv permissions",
    15: "Remote service error",
    21: "Missing method",
    22: "Invalid method",
    23: "Invalid format",
    24: "Missing signature",
    25: "Invalid signature",
    28: "Missing app key",
    29: "Invalid app Key",
    30: "Missing timestamp",
    31: "Invalid timestamp",
    32: "Missing version",
    33: "Invalid version",
    34: "Unsupported version",
    40: "Missing required arguments",
    41: "Invalid arguments",
    43: "Parameter error",
    47: "Invalid encoding",
    50: "Remote service error",
}


@pytest.mark.parametrize("code", list(PlatformCode), ids=lambda c: f"{int(c)}-{c.name}")
def test_phrase_matches_spec(code: PlatformCode) -> None:
    """Each code's phrase is TOP's spelling from the spec's table."""
    assert SPEC_TABLE[int(code)] == code.phrase


def test_msg_defaults_to_phrase() -> None:
    """Without an argument, msg is the code's phrase."""
    assert "Invalid signature" == TopError(PlatformCode.INVALID_SIGNATURE).msg


def test_msg_appends_argument() -> None:
    """An argument is appended to msg after a colon, as TOP does for 40 and 41."""
    error = TopError(PlatformCode.INVALID_ARGUMENTS, arg="mobile_receiver_message_event")

    assert "Invalid arguments:mobile_receiver_message_event" == error.msg


def test_invalid_field_is_the_seed_shape() -> None:
    """A bad event field is 50, isv.invalid-parameter, ``非法参数:<field> <reason>``."""
    error = errors.invalid_field("mobile_receiver", "is not a phone number")

    assert (
        50,
        "Remote service error",
        "isv.invalid-parameter",
        "非法参数:mobile_receiver is not a phone number",
    ) == (
        int(error.code),
        error.msg,
        error.sub_code,
        error.sub_msg,
    )


def test_missing_field_is_the_seed_shape() -> None:
    """An absent event field is 50, isv.missing-parameter, ``非法参数:<field> is required``."""
    error = errors.missing_field("msg_key")

    assert (
        50,
        "Remote service error",
        "isv.missing-parameter",
        "非法参数:msg_key is required",
    ) == (
        int(error.code),
        error.msg,
        error.sub_code,
        error.sub_msg,
    )


def test_str_names_code_and_sub_fields() -> None:
    """str() of an error shows code, msg, sub_code and sub_msg."""
    error = TopError(PlatformCode.APP_CALL_LIMITED, "accesscontrol.x", "ban 3 s")

    assert "7 App Call Limited | accesscontrol.x | ban 3 s" == str(error)
