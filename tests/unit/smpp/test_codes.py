"""Unit tests for the SMPP 3.4 registries: command_id, command_status, message_state."""

from __future__ import annotations

import pytest

from iwork_mc.smpp import CommandId, CommandStatus, MessageState

# §5.1.3, copied from the specification's table, not from the code.
SPEC_STATUSES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}  # fmt: skip


def test_every_spec_status_is_a_member() -> None:
    """CommandStatus has exactly the command_status values of §5.1.3, under their names."""
    assert SPEC_STATUSES == {member.value: member.name for member in CommandStatus}


def test_every_status_has_a_phrase() -> None:
    """Every listed status carries a non-empty human phrase."""
    assert [] == [member.name for member in CommandStatus if not member.phrase]


def test_throttled_phrase() -> None:
    """ESME_RTHROTTLED reads as "Throttling error"."""
    assert "Throttling error" == CommandStatus.ESME_RTHROTTLED.phrase


@pytest.mark.parametrize(
    ("value", "name", "phrase"),
    [
        (0x401, "VENDOR_0x00000401", "SMSC vendor specific error"),
        (0x09, "RESERVED_0x00000009", "Reserved"),
        (0xFFFFFFFF, "RESERVED_0xFFFFFFFF", "Reserved"),
    ],
)
def test_unlisted_status_is_a_pseudo_member(value: int, name: str, phrase: str) -> None:
    """A status no table lists still converts, with a name and phrase for its range."""
    status = CommandStatus(value)

    assert (value, name, phrase, True) == (
        status,
        status.name,
        status.phrase,
        isinstance(status, CommandStatus),
    )


def test_pseudo_members_stay_out_of_the_class() -> None:
    """Converting an unlisted value does not add it to the iteration of the enum."""
    CommandStatus(0x4AA)

    assert 0x4AA not in {member.value for member in CommandStatus}


@pytest.mark.parametrize("value", [-1, 0x1_0000_0000, "8"])
def test_status_outside_32_bits_is_refused(value: object) -> None:
    """Only 32-bit unsigned integers are command_status values."""
    with pytest.raises(ValueError):
        CommandStatus(value)  # type: ignore[arg-type]


def test_command_id_phrase_and_direction() -> None:
    """command_id phrases are the spec's names; bit 31 marks responses, generic_nack included."""
    assert ("submit_sm", False, True, True) == (
        CommandId.SUBMIT_SM.phrase,
        CommandId.SUBMIT_SM.is_response,
        CommandId.SUBMIT_SM_RESP.is_response,
        CommandId.GENERIC_NACK.is_response,
    )


def test_every_request_has_its_response() -> None:
    """Each request's command_id with bit 31 set is its response, except the one-way PDUs."""
    requests = {m for m in CommandId if not m.is_response}
    one_way = {CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION}

    assert set() == {m for m in requests - one_way if m | 0x80000000 not in set(CommandId)}


def test_unknown_command_id_is_refused() -> None:
    """CommandId is closed: an unknown command is an error, not a pseudo-member."""
    with pytest.raises(ValueError):
        CommandId(0x1234)


def test_message_states() -> None:
    """MessageState has the values of §5.2.28."""
    assert {
        "ENROUTE": 1, "DELIVERED": 2, "EXPIRED": 3, "DELETED": 4,
        "UNDELIVERABLE": 5, "ACCEPTED": 6, "UNKNOWN": 7, "REJECTED": 8,
    } == {m.name: m.value for m in MessageState}  # fmt: skip


def test_only_enroute_and_unlisted_states_are_not_final() -> None:
    """ENROUTE and values outside §5.2.28 are not final; every other state is."""
    assert ({MessageState.ENROUTE}, False) == (
        {m for m in MessageState if not m.is_final},
        MessageState(0).is_final,
    )
