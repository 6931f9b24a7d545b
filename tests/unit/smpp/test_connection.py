"""Unit tests for Connection: framing, sequence numbers, pending requests and session states."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc import smpp
from iwork_mc.smpp import CommandStatus as S
from iwork_mc.smpp import Role, State
from iwork_mc.smpp._state import SESSION

from ._support import SAMPLES, connection_in, pair, transfer


def drain(conn: smpp.Connection) -> list[object]:
    """Every event the connection can produce from what it has received."""
    events: list[object] = []
    while (event := conn.next_event()) is not smpp.NEED_DATA:
        events.append(event)
        if event is smpp.CLOSED:
            break
    return events


def test_readme_example() -> None:
    """The three verbs bind an ESME to an SMSC over an in-memory wire."""
    esme = smpp.Connection(our_role=smpp.Role.ESME)
    smsc = smpp.Connection(our_role=smpp.Role.SMSC)

    smsc.receive_data(esme.send(smpp.BindTransceiver(system_id="acme", password="secret")))
    bind = smsc.next_event()
    assert isinstance(bind, smpp.BindTransceiver)
    esme.receive_data(smsc.send(smpp.BindTransceiverResp(sequence_number=bind.sequence_number)))
    resp = esme.next_event()

    assert (1, "secret", 1, State.BOUND_TRX, State.BOUND_TRX, smpp.NEED_DATA) == (
        bind.sequence_number,
        bind.password,
        resp.sequence_number,  # type: ignore[union-attr]
        esme.state,
        smsc.state,
        esme.next_event(),
    )


def test_send_assigns_increasing_sequence_numbers() -> None:
    """Requests without a sequence_number get 1, 2, 3, … in order."""
    esme, _ = pair(State.BOUND_TRX)  # the bind took 1

    numbers = [smpp.decode_header(esme.send(smpp.EnquireLink())).sequence_number for _ in range(3)]

    assert [2, 3, 4] == numbers


def test_sequence_numbers_wrap_to_one() -> None:
    """After 0x7FFFFFFF the next sequence number is 1 (§5.1.4)."""
    conn = smpp.Connection(our_role=Role.ESME)
    conn._next_sequence_number = 0x7FFFFFFF

    assert [0x7FFFFFFF, 1] == [conn.next_sequence_number(), conn.next_sequence_number()]


def test_sequence_numbers_skip_pending_ones() -> None:
    """A number still pending after a wrap is skipped."""
    esme, _ = pair(State.BOUND_TRX)  # 1 was the bind, answered
    esme.send(smpp.EnquireLink())  # 2, pending
    esme._next_sequence_number = 2

    assert 3 == esme.next_sequence_number()


def test_pending_tracks_requests_until_their_response() -> None:
    """A request is pending from send until its response arrives, matched by sequence_number."""
    esme, smsc = pair(State.BOUND_TRX)
    first = transfer(esme, smsc, smpp.SubmitSm(destination_addr="1"))
    second = transfer(esme, smsc, smpp.SubmitSm(destination_addr="2"))
    before = esme.pending

    transfer(smsc, esme, smpp.SubmitSmResp(sequence_number=first.sequence_number, message_id="a"))

    assert (frozenset({2, 3}), frozenset({3})) == (before, esme.pending)
    assert (2, 3) == (first.sequence_number, second.sequence_number)


def test_generic_nack_answers_a_pending_request() -> None:
    """A generic_nack with a request's sequence number ends that request."""
    esme, smsc = pair(State.BOUND_TRX)
    request = transfer(esme, smsc, smpp.EnquireLink())

    nack = transfer(
        smsc,
        esme,
        smpp.GenericNack(sequence_number=request.sequence_number, command_status=S.ESME_RSYSERR),
    )

    assert (frozenset(), request.sequence_number) == (esme.pending, nack.sequence_number)


def test_response_to_unknown_sequence_number_is_still_returned() -> None:
    """A response that matches no pending request is returned for the caller to log."""
    esme, smsc = pair(State.BOUND_TRX)

    event = transfer(smsc, esme, smpp.SubmitSmResp(sequence_number=999, message_id="x"))

    assert (smpp.SubmitSmResp(sequence_number=999, message_id="x"), frozenset()) == (
        event,
        esme.pending,
    )


def test_response_needs_a_sequence_number() -> None:
    """Sending a response without its request's sequence_number is a local error."""
    esme, _ = pair(State.BOUND_TRX)

    with pytest.raises(smpp.LocalProtocolError):
        esme.send(smpp.EnquireLinkResp())


@pytest.mark.parametrize("seq", [0, 0x80000000, 2])
def test_request_with_bad_explicit_sequence_number(seq: int) -> None:
    """An explicit request sequence number must be in 1..0x7FFFFFFF and not pending."""
    esme, _ = pair(State.BOUND_TRX)
    esme.send(smpp.EnquireLink())  # takes 2

    with pytest.raises(smpp.LocalProtocolError):
        esme.send(smpp.EnquireLink(sequence_number=seq))


def test_failed_bind_stays_open_and_may_retry() -> None:
    """A bind_resp with an error leaves the session OPEN, and the ESME may bind again."""
    esme, smsc = pair()
    bind = transfer(esme, smsc, smpp.BindTransmitter(system_id="acme", password="wrong"))
    transfer(
        smsc,
        esme,
        smpp.BindTransmitterResp(
            sequence_number=bind.sequence_number, command_status=S.ESME_RINVPASWD
        ),
    )
    after_failure = (esme.state, smsc.state)

    retry = transfer(esme, smsc, smpp.BindTransmitter(system_id="acme", password="right"))
    transfer(smsc, esme, smpp.BindTransmitterResp(sequence_number=retry.sequence_number))

    assert ((State.OPEN, State.OPEN), (State.BOUND_TX, State.BOUND_TX)) == (
        after_failure,
        (esme.state, smsc.state),
    )


def test_unbind_handshake_ends_the_session() -> None:
    """unbind and unbind_resp move both ends to UNBOUND, after which next_event says CLOSED."""
    esme, smsc = pair(State.BOUND_TRX)
    unbind = transfer(esme, smsc, smpp.Unbind())
    middle = (esme.state, smsc.state, smsc.next_event())

    transfer(smsc, esme, smpp.UnbindResp(sequence_number=unbind.sequence_number))

    assert ((State.UNBOUND, State.UNBOUND, smpp.NEED_DATA), (State.UNBOUND, State.UNBOUND)) == (
        middle,
        (esme.state, smsc.state),
    )
    assert (smpp.CLOSED, smpp.CLOSED) == (esme.next_event(), smsc.next_event())


def test_late_response_after_unbind_is_accepted() -> None:
    """A submit_sm_resp that crosses our unbind still arrives normally."""
    esme, smsc = pair(State.BOUND_TRX)
    submit = transfer(esme, smsc, smpp.SubmitSm(destination_addr="1"))
    transfer(esme, smsc, smpp.Unbind())

    resp = transfer(
        smsc, esme, smpp.SubmitSmResp(sequence_number=submit.sequence_number, message_id="m")
    )

    assert ("m", State.UNBOUND) == (resp.message_id, esme.state)  # type: ignore[attr-defined]


def test_eof_closes_the_session() -> None:
    """b"" is end of file: next_event returns CLOSED, and keeps returning it."""
    esme, _ = pair(State.BOUND_TRX)
    esme.receive_data(b"")

    assert (smpp.CLOSED, smpp.CLOSED, State.CLOSED) == (
        esme.next_event(),
        esme.next_event(),
        esme.state,
    )


def test_pdus_before_eof_are_still_returned() -> None:
    """PDUs received before end of file come out before CLOSED."""
    esme, smsc = pair(State.BOUND_TRX)
    esme.receive_data(smsc.send(smpp.EnquireLink()) + b"")
    esme.receive_data(b"")

    assert [smpp.EnquireLink(sequence_number=1), smpp.CLOSED] == drain(esme)


def test_eof_inside_a_pdu_is_a_remote_error() -> None:
    """A connection that closes halfway through a PDU raises RemoteProtocolError, then is CLOSED."""
    esme, smsc = pair(State.BOUND_TRX)
    esme.receive_data(smsc.send(smpp.EnquireLink())[:10])
    esme.receive_data(b"")

    with pytest.raises(smpp.RemoteProtocolError):
        esme.next_event()

    assert (State.CLOSED, smpp.CLOSED) == (esme.state, esme.next_event())


def test_data_after_eof_is_a_local_error() -> None:
    """receive_data after b"" is a bug in the caller."""
    esme, _ = pair()
    esme.receive_data(b"")

    with pytest.raises(smpp.LocalProtocolError):
        esme.receive_data(b"more")


@pytest.mark.parametrize("length", [0, 15, 70_001])
def test_bad_command_length_breaks_the_stream(length: int) -> None:
    """A command_length under 16 or over the limit closes the session: framing is lost."""
    esme, _ = pair(State.BOUND_TRX)
    esme.receive_data(length.to_bytes(4, "big") + bytes(12))

    with pytest.raises(smpp.RemoteProtocolError) as info:
        esme.next_event()
    esme.receive_data(b"ignored")

    assert (S.ESME_RINVCMDLEN, None, State.CLOSED, smpp.CLOSED) == (
        info.value.command_status,
        info.value.reply,
        esme.state,
        esme.next_event(),
    )


def test_malformed_request_is_answered_and_skipped() -> None:
    """An unknown command raises with a generic_nack to send; the next PDU still comes through."""
    esme, smsc = pair(State.BOUND_TRX)
    unknown = bytes.fromhex("00000010 00001234 00000000 00000063")
    esme.receive_data(unknown + smsc.send(smpp.EnquireLink()))

    with pytest.raises(smpp.RemoteProtocolError) as info:
        esme.next_event()

    assert (
        smpp.GenericNack(sequence_number=0x63, command_status=S.ESME_RINVCMDID) == info.value.reply
    )
    assert [smpp.EnquireLink(sequence_number=1)] == drain(esme)
    assert esme.send(info.value.reply)  # sendable as it is


def test_malformed_body_is_answered_with_its_own_response() -> None:
    """A submit_sm with a bad field is refused by a submit_sm_resp carrying that field's status."""
    _, smsc = pair(State.BOUND_TRX)
    wire = smpp.encode(
        smpp.SubmitSm(sequence_number=5, destination_addr="1", validity_period="0" * 16)
    )
    wire = wire.replace(b"0" * 16 + b"\0", b"12345\0")  # §7.1.1: empty or 16 characters
    smsc.receive_data(len(wire).to_bytes(4, "big") + wire[4:])

    with pytest.raises(smpp.RemoteProtocolError) as info:
        smsc.next_event()

    assert (
        smpp.SubmitSmResp(sequence_number=5, command_status=S.ESME_RINVEXPIRY),
        State.BOUND_TRX,
    ) == (
        info.value.reply,
        smsc.state,
    )


def test_malformed_response_ends_its_request() -> None:
    """A garbled response still ends the pending request it answers, and is not answered."""
    esme, smsc = pair(State.BOUND_TRX)
    submit = transfer(esme, smsc, smpp.SubmitSm(destination_addr="1"))
    assert submit.sequence_number is not None
    garbled = (
        bytes.fromhex("00000014 80000004 00000000")
        + submit.sequence_number.to_bytes(4, "big")
        + b"abcd"
    )
    esme.receive_data(garbled)

    with pytest.raises(smpp.RemoteProtocolError) as info:
        esme.next_event()

    assert (frozenset(), None) == (esme.pending, info.value.reply)


def test_submit_before_bind_is_refused_with_rinvbndsts() -> None:
    """An SMSC receiving submit_sm while OPEN gets a RemoteProtocolError with the refusal to send."""
    _, smsc = pair()
    wire = smpp.encode(smpp.SubmitSm(sequence_number=4, destination_addr="1"))
    smsc.receive_data(wire)

    with pytest.raises(smpp.RemoteProtocolError) as info:
        smsc.next_event()
    refusal = info.value.reply
    assert refusal is not None

    assert (
        S.ESME_RINVBNDSTS,
        smpp.decode(wire),
        smpp.SubmitSmResp(sequence_number=4, command_status=S.ESME_RINVBNDSTS),
        State.OPEN,
    ) == (info.value.command_status, info.value.pdu, refusal, smsc.state)
    assert smpp.encode(refusal) == smsc.send(refusal)


def test_second_bind_is_refused_with_ralybnd() -> None:
    """A bind on a bound session is refused with ESME_RALYBND in the bind's own response."""
    _, smsc = pair(State.BOUND_TX)
    smsc.receive_data(smpp.encode(smpp.BindTransceiver(sequence_number=8, system_id="again")))

    with pytest.raises(smpp.RemoteProtocolError) as info:
        smsc.next_event()

    assert (
        smpp.BindTransceiverResp(sequence_number=8, command_status=S.ESME_RALYBND)
        == info.value.reply
    )


def test_out_of_state_response_is_not_answered() -> None:
    """A response the state does not allow raises, but with no reply: responses are never answered."""
    esme, _ = pair(State.BOUND_TRX)
    esme.receive_data(smpp.encode(smpp.BindTransceiverResp(sequence_number=1)))

    with pytest.raises(smpp.RemoteProtocolError) as info:
        esme.next_event()

    assert (None, State.BOUND_TRX) == (info.value.reply, esme.state)


# The whole (role, state, PDU) table, sending and receiving ----------------------


ROLES_AND_STATES = [(role, state) for role in Role for state in State]
OPEN_STATES = [(role, state) for role, state in ROLES_AND_STATES if state is not State.CLOSED]
REFUSED = "refused"


@pytest.mark.parametrize(("role", "state"), ROLES_AND_STATES, ids=lambda v: v.value)
def test_every_send_is_legal_or_a_local_error(role: Role, state: State) -> None:
    """Sending any PDU in any state moves to the SESSION table's state, or raises LocalProtocolError and moves nothing."""
    expected: dict[smpp.CommandId, object] = {}
    outcomes: dict[smpp.CommandId, object] = {}
    for sample in SAMPLES:
        conn, _ = connection_in(role, state)
        pdu = (
            dataclasses.replace(sample, sequence_number=77)
            if sample.command_id.is_response
            else sample
        )
        new_state = SESSION[role][state].get(pdu.command_id)
        expected[pdu.command_id] = new_state or (REFUSED, state)
        try:
            conn.send(pdu)
        except smpp.LocalProtocolError:
            outcomes[pdu.command_id] = (REFUSED, conn.state)
        else:
            outcomes[pdu.command_id] = conn.state

    assert expected == outcomes


@pytest.mark.parametrize(("role", "state"), OPEN_STATES, ids=lambda v: v.value)
def test_every_receive_is_legal_or_a_remote_error(role: Role, state: State) -> None:
    """Receiving any PDU follows the peer's SESSION row, or raises RemoteProtocolError (RINVBNDSTS/RALYBND) and moves nothing."""
    peer = Role.SMSC if role is Role.ESME else Role.ESME
    refusals = (S.ESME_RINVBNDSTS, S.ESME_RALYBND)
    expected: dict[smpp.CommandId, object] = {}
    outcomes: dict[smpp.CommandId, object] = {}
    for sample in SAMPLES:
        conn, _ = connection_in(role, state)
        pdu = dataclasses.replace(sample, sequence_number=77)
        new_state = SESSION[peer][state].get(pdu.command_id)
        expected[pdu.command_id] = (pdu, new_state) if new_state else (REFUSED, state)
        conn.receive_data(smpp.encode(pdu))
        try:
            outcomes[pdu.command_id] = (conn.next_event(), conn.state)
        except smpp.RemoteProtocolError as exc:
            outcomes[pdu.command_id] = (
                REFUSED if exc.command_status in refusals else exc,
                conn.state,
            )

    assert expected == outcomes


@pytest.mark.parametrize(("role", "state"), OPEN_STATES, ids=lambda v: v.value)
def test_error_responses_are_always_sendable(role: Role, state: State) -> None:
    """A response with a non-ESME_ROK status may be sent in any open state and changes nothing."""
    sent = []
    for sample in SAMPLES:
        if not sample.command_id.is_response:
            continue
        conn, _ = connection_in(role, state)
        conn.send(dataclasses.replace(sample, sequence_number=77, command_status=S.ESME_RINVBNDSTS))
        sent.append(conn.state)

    assert [state] * len(sent) == sent


def test_nothing_is_sendable_when_closed() -> None:
    """In CLOSED even an error response or generic_nack is refused."""
    esme, _ = pair(State.CLOSED)

    with pytest.raises(smpp.LocalProtocolError):
        esme.send(smpp.GenericNack(sequence_number=1, command_status=S.ESME_RSYSERR))


@pytest.mark.parametrize(
    ("role", "state", "pdu"),
    [
        (Role.ESME, State.OPEN, smpp.SubmitSm(destination_addr="1")),
        (Role.ESME, State.BOUND_RX, smpp.SubmitSm(destination_addr="1")),
        (Role.ESME, State.BOUND_TX, smpp.DeliverSmResp(sequence_number=1)),
        (Role.ESME, State.OPEN, smpp.EnquireLink()),
        (Role.ESME, State.UNBOUND, smpp.SubmitSm(destination_addr="1")),
        (Role.SMSC, State.BOUND_TX, smpp.DeliverSm(destination_addr="1")),
        (Role.SMSC, State.BOUND_RX, smpp.SubmitSmResp(sequence_number=1)),
        (Role.SMSC, State.OPEN, smpp.BindTransmitter(system_id="x")),
        (Role.ESME, State.BOUND_TRX, smpp.BindTransceiverResp(sequence_number=1)),
    ],
    ids=lambda v: v.value if isinstance(v, Role | State) else type(v).__name__,
)
def test_spec_forbids(role: Role, state: State, pdu: smpp.Pdu) -> None:
    """Spot checks of §2.3 written from the spec, not the table: these sends are refused."""
    conn, _ = connection_in(role, state)

    with pytest.raises(smpp.LocalProtocolError):
        conn.send(pdu)


# Framing across arbitrary chunking ---------------------------------------------

SMSC_TO_ESME = st.sampled_from(
    [
        smpp.DeliverSm(destination_addr="1069", short_message=b"hello"),
        smpp.DeliverSm(
            destination_addr="1069", esm_class=4, tlvs=(smpp.Tlv.receipted_message_id("abc"),)
        ),
        smpp.SubmitSmResp(sequence_number=5, message_id="id-5"),
        smpp.SubmitSmResp(sequence_number=6, command_status=S.ESME_RTHROTTLED),
        smpp.QuerySmResp(sequence_number=7, message_id="q"),
        smpp.EnquireLink(),
        smpp.EnquireLinkResp(sequence_number=8),
        smpp.GenericNack(sequence_number=9, command_status=S.ESME_RINVCMDID),
    ]
)


@given(pdus=st.lists(SMSC_TO_ESME, min_size=1, max_size=8), data=st.data())
def test_any_chunking_gives_the_same_events(pdus: list[smpp.Pdu], data: st.DataObject) -> None:
    """However a stream of PDUs is cut into chunks, the same events come out."""
    whole_esme, smsc = pair(State.BOUND_TRX)
    stream = b"".join(smsc.send(pdu) for pdu in pdus)
    whole_esme.receive_data(stream)
    expected = drain(whole_esme)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))

    chunked_esme, _ = pair(State.BOUND_TRX)
    events: list[object] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if end > start:
            chunked_esme.receive_data(stream[start:end])
        events += drain(chunked_esme)

    assert (len(pdus), expected) == (len(expected), events)


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_remote_errors(data: bytes) -> None:
    """Whatever bytes arrive, next_event returns events or raises RemoteProtocolError."""
    esme, _ = pair(State.BOUND_TRX)
    if data:
        esme.receive_data(data)
    esme.receive_data(b"")
    for _ in range(100):
        try:
            if esme.next_event() is smpp.CLOSED:
                break
        except smpp.RemoteProtocolError:
            continue

    assert State.CLOSED == esme.state


def test_documented_read_loop_answers_bad_pdus_and_carries_on() -> None:
    """The adapter loop of the package docstring refuses a submit_sm before bind, then binds."""
    smsc = smpp.Connection(our_role=Role.SMSC)
    written: list[bytes] = []
    handled: list[smpp.Pdu] = []
    stream = (
        smpp.encode(smpp.SubmitSm(sequence_number=1, destination_addr="1"))
        + bytes.fromhex("00000010 00001234 00000000 00000002")
        + smpp.encode(smpp.BindTransceiver(sequence_number=3, system_id="acme"))
    )

    smsc.receive_data(stream)
    while True:
        try:
            event = smsc.next_event()
        except smpp.RemoteProtocolError as exc:
            if exc.reply is not None:
                written.append(smsc.send(exc.reply))
            if smsc.state is State.CLOSED:
                break
            continue
        if event is smpp.NEED_DATA or event is smpp.CLOSED:
            break
        handled.append(event)

    assert (
        [
            smpp.SubmitSmResp(sequence_number=1, command_status=S.ESME_RINVBNDSTS),
            smpp.GenericNack(sequence_number=2, command_status=S.ESME_RINVCMDID),
        ],
        [smpp.BindTransceiver(sequence_number=3, system_id="acme")],
        State.OPEN,
    ) == ([smpp.decode(w) for w in written], handled, smsc.state)
