"""FakeSMSC over real TCP, driven by a minimal ESME written on iwork_mc.smpp.Connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from iwork_mc import smpp
from iwork_mc.smpp import CommandStatus as S
from iwork_mc.smpp import MessageState as M
from iwork_mc.testing import FakeSMSC, SMSCPolicy

SYSTEM_ID = "park01"
PASSWORD = "secret"
TIMEOUT = 2.0
BindKind = type[smpp.BindTransmitter] | type[smpp.BindReceiver] | type[smpp.BindTransceiver]


class Esme:
    """The smallest useful ESME: requests wait for their response, deliver_sm queue up."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = smpp.Connection(our_role=smpp.Role.ESME)
        self.responses: dict[int, asyncio.Future[smpp.Pdu]] = {}
        self.inbox: asyncio.Queue[smpp.DeliverSm] = asyncio.Queue()
        self.wire: list[str] = []  # the PDUs received, by name, in order
        self.ack_status = S.ESME_ROK
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, smsc: FakeSMSC) -> Esme:
        reader, writer = await asyncio.open_connection(smsc.host, smsc.port)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                event = self.conn.next_event()
                if event is smpp.NEED_DATA:
                    self.conn.receive_data(await self.reader.read(65536))
                    continue
                if event is smpp.CLOSED:
                    return
                self.wire.append(event.command_id.phrase)
                if isinstance(event, smpp.DeliverSm):
                    ack = smpp.DeliverSmResp(
                        sequence_number=event.sequence_number, command_status=self.ack_status
                    )
                    self.writer.write(self.conn.send(ack))
                    self.inbox.put_nowait(event)
                elif event.command_id.is_response and event.sequence_number in self.responses:
                    future = self.responses.pop(event.sequence_number)
                    if not future.done():  # a caller may have given up on it
                        future.set_result(event)
        finally:
            self.closed.set()
            for future in self.responses.values():
                future.cancel()

    def send(self, pdu: smpp.Pdu) -> asyncio.Future[smpp.Pdu]:
        """Send a request; the future gets its response."""
        seq = self.conn.next_sequence_number()
        future: asyncio.Future[smpp.Pdu] = asyncio.get_running_loop().create_future()
        self.responses[seq] = future
        self.writer.write(self.conn.send(dataclasses.replace(pdu, sequence_number=seq)))
        return future

    async def request(self, pdu: smpp.Pdu) -> smpp.Pdu:
        return await asyncio.wait_for(self.send(pdu), TIMEOUT)

    async def bind(
        self, kind: BindKind = smpp.BindTransceiver, password: str = PASSWORD
    ) -> smpp.Pdu:
        return await self.request(kind(system_id=SYSTEM_ID, password=password))

    async def submit(self, destination: str = "8613800138000", **kw: Any) -> smpp.SubmitSmResp:
        fields: dict[str, Any] = {"short_message": b"hello", "registered_delivery": 1, **kw}
        submit = smpp.SubmitSm(destination_addr=destination, source_addr="10690000", **fields)
        resp = await self.request(submit)
        assert isinstance(resp, smpp.SubmitSmResp)
        return resp

    async def receipt(self) -> smpp.Receipt:
        deliver = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
        receipt = smpp.parse_receipt(deliver)
        assert receipt is not None
        return receipt

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def running(**policy: Any) -> AsyncIterator[tuple[FakeSMSC, Esme]]:
    """A FakeSMSC with this policy and an ESME bound to it as a transceiver."""
    async with FakeSMSC(SMSCPolicy(system_id=SYSTEM_ID, password=PASSWORD, **policy)) as smsc:
        esme = await Esme.connect(smsc)
        try:
            resp = await esme.bind()
            assert S.ESME_ROK == resp.command_status
            yield smsc, esme
        finally:
            await esme.close()


async def test_bind_with_the_policy_credentials_succeeds() -> None:
    """A bind_transceiver with the right system_id and password is answered ESME_ROK."""
    async with running() as (smsc, esme):
        assert (smpp.State.BOUND_TRX, 1, 0, 1) == (
            esme.conn.state,
            smsc.binds,
            smsc.binds_refused,
            smsc.connections,
        )


async def test_bind_with_a_wrong_password_is_refused() -> None:
    """A bind with the wrong password gets ESME_RBINDFAIL and leaves the session open."""
    async with FakeSMSC(SMSCPolicy(system_id=SYSTEM_ID, password=PASSWORD)) as smsc:
        esme = await Esme.connect(smsc)
        resp = await esme.bind(password="wrong")
        await esme.close()

    assert (S.ESME_RBINDFAIL, 0, 1, smpp.State.OPEN) == (
        resp.command_status,
        smsc.binds,
        smsc.binds_refused,
        esme.conn.state,
    )


async def test_submit_is_answered_and_receipted() -> None:
    """A submit_sm gets a hex message_id, then a DELIVRD receipt that the ESME acknowledges."""
    async with running() as (smsc, esme):
        resp = await esme.submit("8613800138000", short_message=b"hello")
        deliver = await asyncio.wait_for(esme.inbox.get(), TIMEOUT)
        await smsc.wait_for(lambda: smsc.receipts_acked == 1)

    receipt = smpp.parse_receipt(deliver)
    assert receipt is not None
    int(resp.message_id, 16)  # hexadecimal
    submission = smsc.submissions[0]
    assert (
        S.ESME_ROK,
        resp.message_id,
        M.DELIVERED,
        0x04,
        "8613800138000",
        "10690000",
        (0, 0, b"hello"),
        ["hello"],
        (1, 1, 1, []),
    ) == (
        resp.command_status,
        receipt.message_id,
        receipt.state,
        deliver.esm_class,
        deliver.source_addr,
        deliver.destination_addr,
        (submission.data_coding, submission.esm_class, submission.short_message),
        smsc.messages(),
        (smsc.submits, smsc.receipts_sent, smsc.receipts_acked, smsc.unacked_receipts),
    )


async def test_receipt_state_follows_the_destination_prefix() -> None:
    """The longest matching prefix of `receipt` decides each message's final state."""
    states = {"86138": M.UNDELIVERABLE, "8613800": M.EXPIRED}
    async with running(receipt=states) as (_, esme):
        for destination in ("8613800138000", "8613811111111", "8615000000000"):
            await esme.submit(destination)
        receipts = [await esme.receipt() for _ in range(3)]

    assert [M.EXPIRED, M.UNDELIVERABLE, M.DELIVERED] == [r.state for r in receipts]


async def test_no_receipt_unless_registered_delivery_asks() -> None:
    """registered_delivery 0 gets no receipt; 2 (failure only) gets one only for a failure."""
    async with running(receipt={"86139": M.UNDELIVERABLE}) as (smsc, esme):
        await esme.submit("8613800138000", registered_delivery=0)
        await esme.submit("8613800138000", registered_delivery=2)
        await esme.submit("8613900000000", registered_delivery=2)
        receipt = await esme.receipt()
        await asyncio.sleep(0.05)

    assert (M.UNDELIVERABLE, 1) == (receipt.state, smsc.receipts_sent)


async def test_every_nth_submit_is_throttled() -> None:
    """throttle_every=3 answers the 3rd and 6th submit_sm with ESME_RTHROTTLED."""
    async with running(throttle_every=3) as (smsc, esme):
        statuses = [(await esme.submit(registered_delivery=0)).command_status for _ in range(6)]

    ok, throttled = S.ESME_ROK, S.ESME_RTHROTTLED
    assert ([ok, ok, throttled, ok, ok, throttled], 2, 4) == (
        statuses,
        smsc.throttled,
        len(smsc.accepted),
    )


async def test_submits_above_max_rate_are_throttled() -> None:
    """max_rate=5 takes five submit_sm in a second and throttles the rest."""
    async with running(max_rate=5) as (smsc, esme):
        futures = [esme.send(smpp.SubmitSm(destination_addr="8613800138000")) for _ in range(8)]
        resps = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)

    assert ([S.ESME_ROK] * 5 + [S.ESME_RTHROTTLED] * 3, 3) == (
        [r.command_status for r in resps],
        smsc.throttled,
    )


async def test_rejected_destination_gets_the_policy_status() -> None:
    """A destination matching `reject` is refused with its status and no message_id."""
    async with running(reject={"8613900": S.ESME_RINVDSTADR}) as (smsc, esme):
        refused = await esme.submit("8613900000001")
        taken = await esme.submit("8613800138000", registered_delivery=0)

    assert (S.ESME_RINVDSTADR, "", S.ESME_ROK, 1, ["hello"]) == (
        refused.command_status,
        refused.message_id,
        taken.command_status,
        smsc.rejected,
        smsc.messages(),
    )


async def test_drop_after_closes_mid_window() -> None:
    """drop_after=2 answers two of a window of four, closes, and lets the next session be."""
    async with running(drop_after=2) as (smsc, esme):
        window = [esme.send(smpp.SubmitSm(destination_addr="8613800138000")) for _ in range(4)]
        await asyncio.wait_for(esme.closed.wait(), TIMEOUT)
        answered = [f.result().command_status for f in window if not f.cancelled()]
        again = await Esme.connect(smsc)
        await again.bind()
        statuses = [(await again.submit(registered_delivery=0)).command_status for _ in range(3)]
        await again.close()

    assert ([S.ESME_ROK] * 2, [S.ESME_ROK] * 3, 1, 2) == (
        answered,
        statuses,
        smsc.dropped,
        smsc.connections,
    )


async def test_resp_delay_holds_each_response() -> None:
    """resp_delay=0.1 answers a submit_sm no sooner than 0.1 s after it was sent."""
    async with running(resp_delay=0.1) as (_, esme):
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        resp = await esme.submit(registered_delivery=0)
        elapsed = loop.time() - sent_at

    assert (S.ESME_ROK, True) == (resp.command_status, elapsed >= 0.1)


async def test_enquire_link_can_go_unanswered() -> None:
    """answer_enquire_link=False leaves enquire_link unanswered, as a hung SMSC does."""
    async with running(answer_enquire_link=False) as (smsc, esme):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(esme.send(smpp.EnquireLink()), 0.2)

    assert 1 == smsc.enquire_links


async def test_receipt_can_come_before_the_submit_sm_resp() -> None:
    """receipt_before_resp puts the deliver_sm on the wire ahead of the submit_sm_resp."""
    async with running(receipt_before_resp=True) as (_, esme):
        resp = await esme.submit()
        receipt = await esme.receipt()

    assert (["bind_transceiver_resp", "deliver_sm", "submit_sm_resp"], resp.message_id) == (
        esme.wire,
        receipt.message_id,
    )


async def test_duplicate_receipts_are_sent_twice() -> None:
    """duplicate_receipts sends the same receipt twice, and both are acknowledged."""
    async with running(duplicate_receipts=True) as (smsc, esme):
        resp = await esme.submit()
        receipts = [await esme.receipt() for _ in range(2)]
        await smsc.wait_for(lambda: smsc.receipts_acked == 2)

    assert ([(resp.message_id, M.DELIVERED)] * 2, 2) == (
        [(r.message_id, r.state) for r in receipts],
        smsc.receipts_sent,
    )


async def test_out_of_order_sends_an_intermediate_after_the_final_receipt() -> None:
    """out_of_order follows DELIVRD with a late ENROUTE receipt for the same message."""
    async with running(out_of_order=True) as (_, esme):
        await esme.submit()
        receipts = [await esme.receipt() for _ in range(2)]

    assert [M.DELIVERED, M.ENROUTE] == [r.state for r in receipts]


async def test_segment_states_fail_one_part_of_a_multipart_message() -> None:
    """segment_states={2: UNDELIVERABLE} fails the second segment; the text reassembles."""
    text = "Your parking permit for bay 42 has been approved. " * 4
    async with running(segment_states={2: M.UNDELIVERABLE}) as (smsc, esme):
        ids = []
        for segment in smpp.split(text, method="udh8", reference=7):
            resp = await esme.submit(
                short_message=segment.short_message,
                esm_class=segment.esm_class,
                data_coding=segment.data_coding,
            )
            ids.append(resp.message_id)
        receipts = {r.message_id: r.state for r in [await esme.receipt() for _ in ids]}

    assert ([M.DELIVERED, M.UNDELIVERABLE], [text], {("8613800138000", 7): text}) == (
        [receipts[i] for i in ids],
        smsc.messages(),
        smsc.multipart,
    )


async def test_query_sm_reports_the_state_over_time() -> None:
    """query_sm says ENROUTE before receipt_delay, DELIVERED after, and refuses unknown IDs."""
    async with running(receipt_delay=0.2) as (_, esme):
        resp = await esme.submit(registered_delivery=0)
        early = await esme.request(smpp.QuerySm(message_id=resp.message_id))
        await asyncio.sleep(0.3)
        late = await esme.request(smpp.QuerySm(message_id=resp.message_id))
        unknown = await esme.request(smpp.QuerySm(message_id="ffffffff"))

    assert isinstance(early, smpp.QuerySmResp) and isinstance(late, smpp.QuerySmResp)
    assert (M.ENROUTE, "", M.DELIVERED, 16, S.ESME_RINVMSGID) == (
        early.message_state,
        early.final_date,
        late.message_state,
        len(late.final_date),
        unknown.command_status,
    )


async def test_query_sm_is_refused_when_unsupported() -> None:
    """supports_query_sm=False answers query_sm with ESME_RINVCMDID."""
    async with running(supports_query_sm=False) as (_, esme):
        resp = await esme.submit(registered_delivery=0)
        query = await esme.request(smpp.QuerySm(message_id=resp.message_id))

    assert S.ESME_RINVCMDID == query.command_status


async def test_refused_receipt_is_sent_again() -> None:
    """A receipt answered ESME_RX_T_APPN is recorded unacknowledged and sent again."""
    async with running(receipt_retry_s=0.05) as (smsc, esme):
        esme.ack_status = S.ESME_RX_T_APPN
        resp = await esme.submit()
        first = await esme.receipt()
        esme.ack_status = S.ESME_ROK
        second = await esme.receipt()
        await smsc.wait_for(lambda: smsc.receipts_acked == 1)

    assert (resp.message_id, resp.message_id, [1, 2], [S.ESME_RX_T_APPN]) == (
        first.message_id,
        second.message_id,
        [r.attempt for r in smsc.receipts],
        [r.ack_status for r in smsc.unacked_receipts],
    )


async def test_receipt_waits_for_a_receiver_to_bind() -> None:
    """A transmitter's receipt is held until a receiver with the same system_id binds."""
    async with FakeSMSC() as smsc:
        transmitter = await Esme.connect(smsc)
        await transmitter.bind(smpp.BindTransmitter)
        resp = await transmitter.submit()
        await asyncio.sleep(0.05)
        held = smsc.receipts_sent
        receiver = await Esme.connect(smsc)
        await receiver.bind(smpp.BindReceiver)
        receipt = await receiver.receipt()
        await transmitter.close()
        await receiver.close()

    assert (0, resp.message_id) == (held, receipt.message_id)


async def test_late_receipt_outlives_the_session_that_submitted() -> None:
    """A receipt due after its session ended goes to the next session that binds."""
    async with FakeSMSC(SMSCPolicy(receipt_delay=0.1)) as smsc:
        first = await Esme.connect(smsc)
        await first.bind()
        resp = await first.submit()
        await first.close()
        await asyncio.sleep(0.15)
        second = await Esme.connect(smsc)
        await second.bind()
        receipt = await second.receipt()
        await second.close()

    assert (resp.message_id, M.DELIVERED) == (receipt.message_id, receipt.state)


async def test_enquire_link_and_unbind_are_answered() -> None:
    """enquire_link gets enquire_link_resp; unbind gets unbind_resp and the session ends."""
    async with running() as (smsc, esme):
        link = await esme.request(smpp.EnquireLink())
        unbind = await esme.request(smpp.Unbind())
        await asyncio.wait_for(esme.closed.wait(), TIMEOUT)
        await smsc.wait_for(lambda: smsc.sessions == 0)

    assert (smpp.EnquireLinkResp, smpp.UnbindResp, 1) == (
        type(link),
        type(unbind),
        smsc.enquire_links,
    )


async def test_smsc_down_at_start_comes_up_on_the_same_port() -> None:
    """With started=False connecting is refused; after start() a bind succeeds on that port."""
    async with FakeSMSC(started=False) as smsc:
        port = smsc.port
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(smsc.host, smsc.port)
        await smsc.start()
        esme = await Esme.connect(smsc)
        resp = await esme.bind()
        await smsc.stop()
        await asyncio.wait_for(esme.closed.wait(), TIMEOUT)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(smsc.host, smsc.port)
        await esme.close()

    assert (port, S.ESME_ROK) == (smsc.port, resp.command_status)


async def test_refuse_binds_refuses_even_the_right_credentials() -> None:
    """refuse_binds=True answers ESME_RBINDFAIL to every bind, as an SMSC in maintenance."""
    async with FakeSMSC(SMSCPolicy(refuse_binds=True)) as smsc:
        esme = await Esme.connect(smsc)
        resp = await esme.bind()
        await esme.close()

    assert (S.ESME_RBINDFAIL, 0, 1) == (resp.command_status, smsc.binds, smsc.binds_refused)


async def test_max_outstanding_counts_unanswered_submits_per_session() -> None:
    """Three submit_sm held by resp_delay on one session, two on another: the most is three."""
    async with running(resp_delay=0.1) as (smsc, esme):
        other = await Esme.connect(smsc)
        await other.bind()
        first = [esme.send(smpp.SubmitSm(destination_addr="8613800138000")) for _ in range(3)]
        second = [other.send(smpp.SubmitSm(destination_addr="8613800138000")) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*first, *second), TIMEOUT)
        await other.close()

    assert 3 == smsc.max_outstanding
    assert [1, 1, 1, 2, 2] == sorted(s.session for s in smsc.submissions)


async def test_restart_can_reuse_message_ids() -> None:
    """restart(reuse_ids=True) numbers messages from 1 again and forgets the old ones."""
    async with running() as (smsc, esme):
        before = await esme.submit(registered_delivery=0)
        await smsc.restart(reuse_ids=True)
        await asyncio.wait_for(esme.closed.wait(), TIMEOUT)
        again = await Esme.connect(smsc)
        await again.bind()
        after = await again.submit(registered_delivery=0)
        await again.close()

    assert (before.message_id, 2) == (after.message_id, smsc.connections)


async def test_a_stray_receipt_names_an_id_never_given() -> None:
    """send_stray_receipt sends a receipt for any id, about any handset, to a bound receiver."""
    async with running() as (smsc, esme):
        smsc.send_stray_receipt("0000abcd", M.UNDELIVERABLE, destination="8613900000001",
                                system_id=SYSTEM_ID)  # fmt: skip
        deliver = await asyncio.wait_for(esme.inbox.get(), TIMEOUT)
        await smsc.wait_for(lambda: smsc.receipts_acked == 1)

    receipt = smpp.parse_receipt(deliver)
    assert receipt is not None
    assert ("0000abcd", M.UNDELIVERABLE, "8613900000001", 0) == (
        receipt.message_id, receipt.state, deliver.source_addr, smsc.submits
    )  # fmt: skip
