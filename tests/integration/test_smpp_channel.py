"""The SMPP channel end to end: store → worker → real SMPP over TCP → FakeSMSC → receipts → status.

Every test runs the real worker and the real channel against ``iwork_mc.testing.FakeSMSC``,
an SMPP server on 127.0.0.1, with a real store (SQLite file, and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from iwork_mc import smpp
from iwork_mc.apps import App
from iwork_mc.channels.smpp import SMPPChannel
from iwork_mc.channels.smpp_config import SMPPConfig
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store, create_store
from iwork_mc.templates import default_text
from iwork_mc.testing import FakeSMSC, SMSCPolicy
from iwork_mc.worker import Worker

CHINESE = "张三，您的访客已到达前台，请尽快前往一楼大厅接待。" * 4  # 104 characters: 2 UCS-2 parts
LATIN = "Your visitor Zhang San is waiting at the front desk of building 3. " * 3  # 201: 2 parts


def config(smsc: FakeSMSC, **changes: Any) -> SMPPConfig:
    base = SMPPConfig(
        host="127.0.0.1", port=smsc.port, system_id="park01", password="secret",
        source_addr="ParkDesk", response_timeout_s=2.0, reconnect_min_s=0.05,
        reconnect_max_s=0.2, in_doubt_resend_s=0.2, throttle_pause_s=0.05, bind_wait_s=2.0,
    )  # fmt: skip
    return replace(base, **changes)


def policy(**changes: Any) -> SMSCPolicy:
    return SMSCPolicy(system_id="park01", password="secret", **changes)


async def accept(
    store: Store,
    make: Callable[..., NewMessage],
    count: int,
    *,
    text: str = "hello",
    first: int = 0,
) -> list[int]:
    ids = []
    for i in range(first, first + count):
        message = make(
            msg_key=f"m{i}", mobile_receiver=f"+86139{i:08d}", json_data=json.dumps({"t": text})
        )
        ids.append((await store.accept(message)).message_id)
    return ids


@asynccontextmanager
async def delivering(
    store: Store, channel: SMPPChannel, **worker_options: Any
) -> AsyncIterator[Worker]:
    """The channel open and a worker serving, both stopped (drained) afterwards."""
    await channel.open()
    worker = Worker(store, channel, poll_interval=0.02, **worker_options)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.serve(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await channel.close()


async def statuses(store: Store, ids: Iterable[int]) -> list[MessageStatus]:
    found = [await store.get_message_by_id(i) for i in ids]
    return [m.status for m in found if m is not None]


async def wait_until(
    store: Store, ids: list[int], wanted: set[MessageStatus], within: float = 15
) -> list[MessageStatus]:
    deadline = time.monotonic() + within
    while True:
        current = await statuses(store, ids)
        if all(status in wanted for status in current) or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


async def kinds(store: Store, message_id: int) -> list[str]:
    return [e.kind for e in await store.timeline(message_id)]


# -- encoding ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "coding"), [(CHINESE, 8), (LATIN, 0)], ids=["ucs2", "gsm7"])
@pytest.mark.parametrize("method", ["udh8", "udh16", "sar", "payload"])
async def test_long_texts_arrive_as_segments_that_reassemble(
    store: Store, app: App, message_factory: Callable[..., NewMessage], text: str, coding: int,
    method: str,
) -> None:  # fmt: skip
    """Chinese (UCS-2) and Latin (GSM-7) long texts reach the SMSC in parts that make the text again."""
    [message_id] = await accept(store, message_factory, 1, text=text)
    message = await store.get_message_by_id(message_id)
    assert message is not None
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, long_messages=method), store)  # type: ignore[arg-type]
        async with delivering(store, channel):
            assert [MessageStatus.DELIVERED] == await wait_until(
                store, [message_id], {MessageStatus.DELIVERED}
            )
        submitted = smsc.accepted
    expected_parts = 1 if method == "payload" else 2
    assert expected_parts == len(submitted)
    assert {coding} == {s.data_coding for s in submitted}
    assert {"8613900000000"} == {s.destination for s in submitted}
    assert [default_text(message.event)] == smsc.messages("8613900000000")
    segments = await store.segments(message_id)
    assert [expected_parts] * expected_parts == [s.total for s in segments]


# -- receipts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (smpp.MessageState.DELIVERED, MessageStatus.DELIVERED),
        (smpp.MessageState.UNDELIVERABLE, MessageStatus.FAILED),
        (smpp.MessageState.EXPIRED, MessageStatus.EXPIRED),
        (smpp.MessageState.REJECTED, MessageStatus.FAILED),
    ],
    ids=["delivered", "undeliverable", "expired", "rejected"],
)
async def test_receipts_decide_the_status(
    store: Store, app: App, message_factory: Callable[..., NewMessage],
    state: smpp.MessageState, expected: MessageStatus,
) -> None:  # fmt: skip
    """A final receipt moves the submitted message to its status, with the receipt in the timeline."""
    ids = await accept(store, message_factory, 3)
    async with FakeSMSC(policy(receipt=state)) as smsc:
        async with delivering(store, SMPPChannel(config(smsc), store)):
            assert [expected] * 3 == await wait_until(store, ids, {expected})
        assert 3 == smsc.receipts_acked
    timeline = await kinds(store, ids[0])
    # The receipt may be recorded before or after the worker records "submitted".
    assert (["accepted", "claimed"], {"submitted", "receipt"}, [expected.value]) == (
        timeline[:2],
        set(timeline[2:4]),
        timeline[4:],
    )


async def test_multipart_partial_failure_fails_the_message(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """One undeliverable part out of two fails the whole message; the bad part is named."""
    [message_id] = await accept(store, message_factory, 1, text=CHINESE)
    rules = policy(segment_states={2: smpp.MessageState.UNDELIVERABLE})
    async with FakeSMSC(rules) as smsc, delivering(store, SMPPChannel(config(smsc), store)):
        assert [MessageStatus.FAILED] == await wait_until(
            store, [message_id], {MessageStatus.FAILED}
        )
    message = await store.get_message_by_id(message_id)
    assert message is not None
    segments = await store.segments(message_id)
    assert ["delivered", "undeliverable"] == [s.state.value for s in segments]


@pytest.mark.parametrize(
    "rule",
    [{"duplicate_receipts": True}, {"out_of_order": True}, {"receipt_before_resp": True}],
    ids=["duplicate", "out-of-order", "before-submit-resp"],
)
async def test_awkward_receipts_still_give_one_honest_status(
    store: Store, app: App, message_factory: Callable[..., NewMessage], rule: dict[str, bool]
) -> None:
    """Duplicate, out-of-order and early receipts leave each message delivered exactly once."""
    ids = await accept(store, message_factory, 5)
    async with FakeSMSC(policy(**rule)) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel):
            assert [MessageStatus.DELIVERED] * 5 == await wait_until(
                store, ids, {MessageStatus.DELIVERED}
            )
            # Let late duplicates and intermediates arrive and be answered.
            await smsc.wait_for(lambda: smsc.receipts_acked == smsc.receipts_sent, within=5)
            await asyncio.sleep(0.2)
    for message_id in ids:
        timeline = await kinds(store, message_id)
        assert 1 == timeline.count("delivered")
        if rule.get("duplicate_receipts"):
            assert 1 == timeline.count("duplicate_receipt")
    assert 0 == await store.unmatched_receipts("smpp")


# -- faults -------------------------------------------------------------------------


async def test_throttling_slows_down_and_still_delivers(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """An SMSC allowing 30 submits/s throttles the rest: the session backs off, all get delivered."""
    ids = await accept(store, message_factory, 80)
    async with FakeSMSC(policy(max_rate=30)) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel, concurrency=32):
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
        throttled = smsc.throttled
    assert [MessageStatus.DELIVERED] * 80 == done
    assert throttled >= 1
    assert throttled == channel.stats["throttled"]
    # Backing off keeps refusals a small share of the traffic instead of a retry storm.
    assert throttled < 80
    assert 80 == len({s.destination for s in smsc.accepted})


async def test_permanent_refusal_fails_with_the_smsc_reason(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """ESME_RINVDSTADR fails the message at once, with the SMSC's reason kept."""
    ids = await accept(store, message_factory, 2)
    rules = policy(reject={"8613900000001": smpp.CommandStatus.ESME_RINVDSTADR})
    async with FakeSMSC(rules) as smsc, delivering(store, SMPPChannel(config(smsc), store)):
        done = await wait_until(store, ids, {MessageStatus.DELIVERED, MessageStatus.FAILED})
    assert [MessageStatus.DELIVERED, MessageStatus.FAILED] == done
    failed = await store.get_message_by_id(ids[1])
    assert failed is not None and failed.last_error is not None
    assert "ESME_RINVDSTADR" in failed.last_error
    assert 1 == failed.attempts


async def test_smsc_down_at_start(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """With the SMSC down the worker keeps binding and messages wait; once it is up they go.

    The channel says it is not ready (for /readyz) until a session is bound.
    """
    ids = await accept(store, message_factory, 4)
    async with FakeSMSC(policy(), started=False) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel):
            await asyncio.sleep(0.5)
            assert {MessageStatus.QUEUED, MessageStatus.SENDING} >= set(await statuses(store, ids))
            assert not channel.ready()
            await smsc.start()
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
            assert channel.ready()
    assert [MessageStatus.DELIVERED] * 4 == done


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["down", "refusing_binds"])
async def test_an_smsc_outage_uses_up_no_attempts(
    store: Store, app: App, message_factory: Callable[..., NewMessage], outage: str
) -> None:
    """Messages claimed while no session is bound wait without using attempts, then go."""
    ids = await accept(store, message_factory, 3)
    refusing = outage == "refusing_binds"
    async with FakeSMSC(policy(refuse_binds=refusing), started=refusing) as smsc:
        channel = SMPPChannel(config(smsc, bind_wait_s=0.1, reconnect_max_s=0.3), store)
        retry = RetryPolicy(max_attempts=2, base_s=0.05, max_delay_s=0.1)
        async with delivering(store, channel, retry=retry):
            # Long enough for many claims: each would have been a failed attempt.
            await asyncio.sleep(1.0)
            waiting = [m for m in [await store.get_message_by_id(i) for i in ids] if m]
            assert {MessageStatus.QUEUED, MessageStatus.SENDING} >= {m.status for m in waiting}
            if refusing:
                smsc.policy = policy()
            else:
                await smsc.start()
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
    assert [MessageStatus.DELIVERED] * 3 == done
    for message_id in ids:
        message = await store.get_message_by_id(message_id)
        assert message is not None
        assert 1 == message.attempts
        assert 2 <= (await kinds(store, message_id)).count("channel_unavailable")


async def test_connection_dropped_mid_window_loses_nothing(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """The SMSC drops the session with submits unanswered: they are in doubt, resent, marked, delivered."""
    ids = await accept(store, message_factory, 20)
    async with FakeSMSC(policy(drop_after=7)) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel):
            assert [MessageStatus.DELIVERED] * 20 == await wait_until(
                store, ids, {MessageStatus.DELIVERED}
            )
    in_doubt = [i for i in ids if "in_doubt" in await kinds(store, i)]
    assert in_doubt, "the drop left no submission in doubt"
    for message_id in in_doubt:
        assert "possible_duplicate" in await kinds(store, message_id)
    assert len(in_doubt) == channel.stats["possible_duplicates"]
    # Every message reached the SMSC; any duplicate is one of the marked in-doubt ones.
    per_destination: dict[str, int] = {}
    for submission in smsc.accepted:
        per_destination[submission.destination] = per_destination.get(submission.destination, 0) + 1
    assert 20 == len(per_destination)
    assert sum(per_destination.values()) - 20 <= len(in_doubt)


@pytest.mark.slow
@pytest.mark.parametrize("query_sm", [False, True], ids=["no-query_sm", "query_sm"])
async def test_an_smsc_slower_than_the_response_timeout_gets_each_part_once(
    store: Store, app: App, message_factory: Callable[..., NewMessage], query_sm: bool
) -> None:
    """Answers come after the timeout: they are still recorded, so nothing is resent.

    The parts are in doubt for a while (the message is queued again, marked); the late
    submit_sm_resp names each part's id, its receipt matches, and the message is
    delivered.  With query_sm, the SMSC is asked before anything is resent.
    """
    [message_id] = await accept(store, message_factory, 1, text=CHINESE)
    async with FakeSMSC(policy(resp_delay=0.6)) as smsc:
        options = {"response_timeout_s": 0.3, "in_doubt_resend_s": 1.0, "query_sm": query_sm}
        channel = SMPPChannel(config(smsc, **options), store)
        retry = RetryPolicy(max_attempts=2, base_s=0.05, max_delay_s=0.1)
        async with delivering(store, channel, retry=retry):
            done = await wait_until(store, [message_id], {MessageStatus.DELIVERED}, within=10)
        accepted = len(smsc.accepted)
        queries = smsc.queries
    assert [MessageStatus.DELIVERED] == done
    assert 2 == accepted, "a part was sent twice"
    assert 0 == await store.unmatched_receipts("smpp")
    timeline = await kinds(store, message_id)
    assert {"in_doubt", "late_submit_resp", "already_submitted"} <= set(timeline)
    assert (queries >= 1) if query_sm else (queries == 0)


@pytest.mark.slow
async def test_in_doubt_resends_count_as_attempts(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """An SMSC that never answers submit_sm in time: retry_max_attempts=2 means two sends, no more."""
    [message_id] = await accept(store, message_factory, 1)
    async with FakeSMSC(policy(resp_delay=30.0)) as smsc:
        options = {"response_timeout_s": 0.2, "in_doubt_resend_s": 0.1}
        channel = SMPPChannel(config(smsc, **options), store)
        retry = RetryPolicy(max_attempts=2, base_s=0.05, max_delay_s=0.1)
        async with delivering(store, channel, retry=retry):
            done = await wait_until(store, [message_id], {MessageStatus.SUBMITTED}, within=10)
            await asyncio.sleep(1.0)  # today it keeps resending: give it the time to
        sent = smsc.submits
    message = await store.get_message_by_id(message_id)
    assert message is not None
    # Both copies may have reached the handset: the message waits for a receipt of either.
    assert [MessageStatus.SUBMITTED] == done
    assert (2, 2) == (sent, message.attempts)
    assert MessageStatus.SUBMITTED == message.status
    timeline = await kinds(store, message_id)
    assert 2 == timeline.count("in_doubt") + timeline.count("submitted_in_doubt")
    assert 1 == timeline.count("possible_duplicate")


@pytest.mark.slow
async def test_every_copy_of_a_resent_part_is_matched_and_the_duplicate_counted(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Resent before the first answer came: both copies are taken, both receipts match.

    The first copy's late answer is recorded, its DELIVRD receipt delivers the
    message, and the second copy's late answer is marked as a duplicate.
    """
    [message_id] = await accept(store, message_factory, 1)
    async with FakeSMSC(policy(resp_delay=1.0)) as smsc:
        options = {"response_timeout_s": 0.2, "in_doubt_resend_s": 0.05}
        channel = SMPPChannel(config(smsc, **options), store)
        retry = RetryPolicy(max_attempts=2, base_s=0.05, max_delay_s=0.1)
        async with delivering(store, channel, retry=retry):
            done = await wait_until(store, [message_id], {MessageStatus.DELIVERED}, within=10)
            await smsc.wait_for(lambda: smsc.receipts_acked == 2)
            await asyncio.sleep(0.3)  # the second late answer is being recorded
        sent = len(smsc.accepted)
    assert [MessageStatus.DELIVERED] == done
    assert 2 == sent
    assert 0 == await store.unmatched_receipts("smpp")
    assert [True, True] == [s.carrier_id is not None for s in await store.segments(message_id)]
    late = [e for e in await store.timeline(message_id) if e.kind == "late_submit_resp"]
    assert 2 == len(late)
    assert [1] == late[1].detail["duplicate_of_attempts"]
    assert 1 == channel.stats["duplicates"]


async def test_only_the_parts_in_doubt_are_resent(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Part 1 answered, part 2 lost with the connection: only part 2 goes again, and reassembles."""
    [message_id] = await accept(store, message_factory, 1, text=LATIN)
    message = await store.get_message_by_id(message_id)
    assert message is not None
    async with FakeSMSC(policy(drop_after=1)) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel):
            done = await wait_until(store, [message_id], {MessageStatus.DELIVERED})
        parts = [s.concatenation.seqnum for s in smsc.accepted if s.concatenation]
        texts = smsc.messages("8613900000000")
    assert [MessageStatus.DELIVERED] == done
    assert [1, 2] == parts
    assert [default_text(message.event)] == texts
    [duplicate] = [e for e in await store.timeline(message_id) if e.kind == "possible_duplicate"]
    assert [2] == duplicate.detail["in_doubt_parts"]


async def test_crash_after_submit_resp_is_not_resent_and_is_queried(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A worker died after every part was answered: the next one sends nothing and asks query_sm."""
    [message_id] = await accept(store, message_factory, 1, text=CHINESE)
    async with FakeSMSC(policy(send_receipts=False)) as smsc:
        crashed = SMPPChannel(config(smsc), store)
        await crashed.open()
        now_ms = int(time.time() * 1000)
        [claimed] = await store.claim_due(worker_id="dead", now_ms=now_ms, lease_ms=1, limit=1)
        await crashed.send(claimed, default_text(claimed.event))  # ... and then the worker died
        await crashed.close()
        assert 2 == len(smsc.accepted)

        survivor = SMPPChannel(config(smsc, query_sm=True), store)
        async with delivering(store, survivor):
            done = await wait_until(store, [message_id], {MessageStatus.DELIVERED})
    assert [MessageStatus.DELIVERED] == done
    assert 2 == len(smsc.accepted), "the message was sent twice"
    timeline = await kinds(store, message_id)
    assert {"already_submitted", "delivered"} <= set(timeline)
    assert "possible_duplicate" not in timeline
    assert 2 == smsc.queries


@pytest.mark.slow
async def test_a_stale_receipt_from_before_an_smsc_restart_decides_nothing(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """The SMSC restarts and reuses ids: receipts kept from before never fail the new messages."""
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc), store)
        async with delivering(store, channel):
            await smsc.wait_for(lambda: smsc.binds == 1)
            # Receipts the old SMSC sent for ids we never learned, to the very handsets
            # the next messages go to: kept as unmatched.
            for i in range(5):
                smsc.send_stray_receipt(f"{i + 1:08x}", smpp.MessageState.UNDELIVERABLE,
                                        destination=f"86139{i:08d}", system_id="park01")  # fmt: skip
            await smsc.wait_for(lambda: smsc.receipts_acked == 5)
            assert 5 == await store.unmatched_receipts("smpp")
            await asyncio.sleep(2.2)  # longer than the clock skew a kept receipt is allowed
            await smsc.restart(reuse_ids=True)
            ids = await accept(store, message_factory, 5)
            done = await wait_until(store, ids, set(MessageStatus) - {
                MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SUBMITTED})  # fmt: skip
        reused = sorted(s.message_id for s in smsc.accepted)
    assert [f"{i:08x}" for i in range(1, 6)] == reused
    assert [MessageStatus.DELIVERED] * 5 == done
    assert 5 == await store.unmatched_receipts("smpp")


async def test_separate_transmitter_and_receiver_sessions(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """bind_mode separate: submits go on the transmitter, receipts come on the receiver."""
    ids = await accept(store, message_factory, 5)
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, bind_mode="separate"), store)
        async with delivering(store, channel):
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
            assert {"channel": "smpp", "sessions": ["bound", "bound"]} == channel.health()
        binds = smsc.binds
    assert [MessageStatus.DELIVERED] * 5 == done
    assert 2 == binds


async def test_national_destination_format(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """destination_format national sends the national number with TON 2."""
    ids = await accept(store, message_factory, 1)
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, destination_format="national"), store)
        async with delivering(store, channel):
            await wait_until(store, ids, {MessageStatus.DELIVERED})
        [submission] = smsc.accepted
    assert ("13900000000", 2, 1) == (
        submission.destination,
        submission.pdu.dest_addr_ton,
        submission.pdu.dest_addr_npi,
    )


async def test_several_binds_share_the_load(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """binds=3 opens three sessions and each carries a share of the submits."""
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, binds=3), store)
        async with delivering(store, channel):
            # Every session bound before the first message: the share is the channel's doing.
            await smsc.wait_for(lambda: smsc.binds == 3, within=5)
            ids = await accept(store, message_factory, 30)
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
            assert ["bound"] * 3 == channel.health()["sessions"]
        per_session = Counter(s.session for s in smsc.accepted)
    assert [MessageStatus.DELIVERED] * 30 == done
    assert 3 == smsc.binds
    assert {1, 2, 3} == set(per_session)
    assert min(per_session.values()) >= 5, per_session  # round robin gives 10 each


async def test_the_window_caps_unanswered_submits_per_session(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """window=4: under load a session has exactly 4 submit_sm unanswered at most, never more."""
    ids = await accept(store, message_factory, 40)
    async with FakeSMSC(policy(resp_delay=0.05)) as smsc:
        channel = SMPPChannel(config(smsc, window=4), store)
        async with delivering(store, channel, concurrency=16):
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
        outstanding = smsc.max_outstanding
    assert [MessageStatus.DELIVERED] * 40 == done
    assert 4 == outstanding  # 16 messages in flight: only the window holds them back


async def test_rate_cap_spaces_submits(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """rate=20 per session: 20 submits take about a second, never a burst."""
    ids = await accept(store, message_factory, 20)
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, rate=20.0), store)
        async with delivering(store, channel):
            started = time.monotonic()
            await smsc.wait_for(lambda: len(smsc.accepted) == 20, within=10)
            elapsed = time.monotonic() - started
            await wait_until(store, ids, {MessageStatus.DELIVERED})
    assert 0.7 <= elapsed  # unthrottled, 20 submits take a few milliseconds


async def test_idle_sessions_send_enquire_link(store: Store, app: App) -> None:
    """An idle session sends enquire_link every enquire_link_interval_s and stays bound."""
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, enquire_link_interval_s=0.2), store)
        await channel.open()
        try:
            await smsc.wait_for(lambda: smsc.enquire_links >= 3, within=5)
            assert ["bound"] == channel.health()["sessions"]
        finally:
            await channel.close()


async def test_a_receipt_the_store_cannot_take_is_refused_and_comes_back(
    sqlite_url: str, app_factory: Callable[..., App], message_factory: Callable[..., NewMessage]
) -> None:
    """While the database is locked a receipt is answered ESME_RX_T_APPN; the SMSC's resend lands."""
    store = create_store(sqlite_url, busy_timeout_ms=100)
    await store.open()
    await store.migrate()
    try:
        await store.insert_app(app_factory())
        ids = await accept(store, message_factory, 1)
        rules = policy(receipt_delay=0.6, receipt_retry_s=0.5, receipt_attempts=5)
        async with FakeSMSC(rules) as smsc:
            channel = SMPPChannel(config(smsc), store)
            async with delivering(store, channel):
                await wait_until(store, ids, {MessageStatus.SUBMITTED})
                lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
                lock.execute("BEGIN IMMEDIATE")  # another process holds the write lock
                try:
                    await smsc.wait_for(lambda: smsc.receipts_sent >= 1, within=5)
                    await asyncio.sleep(0.3)
                finally:
                    lock.execute("ROLLBACK")
                    lock.close()
                done = await wait_until(store, ids, {MessageStatus.DELIVERED})
            refused = [
                r for r in smsc.receipts if r.ack_status == smpp.CommandStatus.ESME_RX_T_APPN
            ]
        assert [MessageStatus.DELIVERED] == done
        assert 1 <= len(refused)
    finally:
        await store.close()
