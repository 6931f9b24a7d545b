"""The SMPP channel end to end: store → worker → real SMPP over TCP → FakeSMSC → receipts → status.

Every test runs the real worker and the real channel against ``iwork_mc.testing.FakeSMSC``,
an SMPP server on 127.0.0.1, with a real store (SQLite file, and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
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
    """binds=2 opens two sessions and submits on both."""
    ids = await accept(store, message_factory, 20)
    async with FakeSMSC(policy()) as smsc:
        channel = SMPPChannel(config(smsc, binds=2), store)
        async with delivering(store, channel):
            done = await wait_until(store, ids, {MessageStatus.DELIVERED})
            assert ["bound", "bound"] == channel.health()["sessions"]
        binds = smsc.binds
    assert [MessageStatus.DELIVERED] * 20 == done
    assert 2 == binds


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
