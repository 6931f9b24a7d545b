"""Helpers: connections driven into a given state through real PDUs, h11's ConnectionPair style."""

from __future__ import annotations

from iwork_mc import smpp

BINDS: dict[smpp.State, tuple[type[smpp.Pdu], type[smpp.Pdu]]] = {
    smpp.State.BOUND_TX: (smpp.BindTransmitter, smpp.BindTransmitterResp),
    smpp.State.BOUND_RX: (smpp.BindReceiver, smpp.BindReceiverResp),
    smpp.State.BOUND_TRX: (smpp.BindTransceiver, smpp.BindTransceiverResp),
}


def transfer(sender: smpp.Connection, receiver: smpp.Connection, pdu: smpp.Pdu) -> smpp.Pdu:
    """Send ``pdu`` from one connection and return what the other makes of it."""
    receiver.receive_data(sender.send(pdu))
    event = receiver.next_event()
    assert isinstance(event, smpp.Pdu), event
    return event


def pair(state: smpp.State = smpp.State.OPEN) -> tuple[smpp.Connection, smpp.Connection]:
    """An ESME and an SMSC connection joined by an in-memory wire, both in ``state``."""
    esme = smpp.Connection(our_role=smpp.Role.ESME)
    smsc = smpp.Connection(our_role=smpp.Role.SMSC)
    if state is smpp.State.OPEN:
        return esme, smsc
    if state is smpp.State.CLOSED:
        for conn in (esme, smsc):
            conn.receive_data(b"")
            assert smpp.CLOSED is conn.next_event()
        return esme, smsc
    bind, bind_resp = BINDS.get(state, BINDS[smpp.State.BOUND_TRX])
    request = transfer(esme, smsc, bind(system_id="acme", password="secret"))  # type: ignore[call-arg]
    resp = bind_resp(sequence_number=request.sequence_number, system_id="smsc")  # type: ignore[call-arg]
    transfer(smsc, esme, resp)
    if state is smpp.State.UNBOUND:
        transfer(esme, smsc, smpp.Unbind())
    assert (state, state) == (esme.state, smsc.state)
    return esme, smsc


def connection_in(role: smpp.Role, state: smpp.State) -> tuple[smpp.Connection, smpp.Connection]:
    """A connection of ``role`` in ``state``, and its peer."""
    esme, smsc = pair(state)
    return (esme, smsc) if role is smpp.Role.ESME else (smsc, esme)


# One instance of every PDU type, sequence numbers left for the connection.
SAMPLES: list[smpp.Pdu] = [
    smpp.BindTransmitter(system_id="acme"),
    smpp.BindReceiver(system_id="acme"),
    smpp.BindTransceiver(system_id="acme"),
    smpp.BindTransmitterResp(system_id="smsc"),
    smpp.BindReceiverResp(system_id="smsc"),
    smpp.BindTransceiverResp(system_id="smsc"),
    smpp.Unbind(),
    smpp.UnbindResp(),
    smpp.GenericNack(),
    smpp.EnquireLink(),
    smpp.EnquireLinkResp(),
    smpp.SubmitSm(destination_addr="8613800000000", short_message=b"hi"),
    smpp.SubmitSmResp(message_id="abc"),
    smpp.DeliverSm(destination_addr="10690000", short_message=b"hi"),
    smpp.DeliverSmResp(),
    smpp.QuerySm(message_id="abc"),
    smpp.QuerySmResp(message_id="abc", message_state=smpp.MessageState.DELIVERED),
]
