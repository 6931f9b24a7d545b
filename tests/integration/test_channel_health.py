"""Routing by channel health, end to end on a real store: a webhook receiver fails, then recovers.

The failing channel is the real webhook channel POSTing to a real HTTP
receiver on 127.0.0.1 (503 first, then 200); the next channel of the route is
the real sandbox channel (a JSON-lines file).  The worker's clock is a value,
so the breaker's ``open_s`` passes without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iwork_mc.apps import App
from iwork_mc.breaker import BreakerPolicy
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.channels.smpp import SMPPChannel
from iwork_mc.channels.smpp_config import SMPPConfig
from iwork_mc.channels.webhook import WebhookChannel
from iwork_mc.channels.webhook_config import WebhookConfig
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.routing import Route
from iwork_mc.store import Store
from iwork_mc.testing import FakeSMSC, SMSCPolicy
from iwork_mc.worker import Worker

from receivers import Answer, Receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
T0 = 1_700_000_010.0
POLICY = BreakerPolicy(window_s=60, min_calls=3, failure_ratio=0.5, open_s=10, probes=2)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def accept(store: Store, factory: Callable[..., NewMessage], *keys: str) -> list[int]:
    return [(await store.accept(factory(msg_key=key))).message_id for key in keys]


async def timeline(store: Store, message_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [(entry.kind, entry.detail) for entry in await store.timeline(message_id)]


async def test_an_open_channel_is_skipped_probed_and_given_its_traffic_back(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """Breaker opens on 503s, new traffic moves to the backup, a probe closes it, traffic returns.

    Every message ends delivered exactly once: by the receiver (a 2xx) or by
    the sandbox, never both, and none is lost.
    """
    clock = Clock()
    sandbox = SandboxChannel(tmp_path / "sandbox", name="lab", store=store, clock=clock)
    with Receiver(Answer(503), Answer(503), Answer(503)).running() as receiver:
        push = WebhookChannel(WebhookConfig(url=f"{receiver.url}/in", secret=SECRET), name="push")
        work = Worker(
            store, {"push": push, "lab": sandbox},
            routes=[Route(name="r", channels=("push", "lab"))],
            retry=RetryPolicy(base_s=30), breaker=POLICY,
            clock=clock, rng=random.Random(1), worker_id="w",
        )  # fmt: skip
        await work.open_channels()
        try:
            # 1. Three 503s: transient failures, retried later; the breaker opens.
            failing = await accept(store, message_factory, "a1", "a2", "a3")
            assert 3 == await work.run_once()
            assert "open" == work.breaker_states()["push"]["state"]
            assert 1 == work.breaker_states()["push"]["times_opened"]

            # 2. New traffic skips push at once (no attempt counted) and goes to lab.
            clock.now += 1
            moved = await accept(store, message_factory, "b1", "b2")
            assert 2 == await work.run_once()
            assert 2 == await work.run_once()
            assert 3 == len(receiver.received)

            # 3. open_s later: one probe at a time; the other message still goes to lab.
            clock.now += 10
            assert "half_open" == work.breaker_states()["push"]["state"]
            probed_or_moved = await accept(store, message_factory, "c1", "c2")
            assert 2 == await work.run_once()
            assert 1 == await work.run_once()
            assert "half_open" == work.breaker_states()["push"]["state"]

            # 4. A second good probe closes it; new traffic and the old retries use push.
            (second_probe,) = await accept(store, message_factory, "d1")
            assert 1 == await work.run_once()
            assert "closed" == work.breaker_states()["push"]["state"]
            returned = await accept(store, message_factory, "e1", "e2")
            assert 2 == await work.run_once()
            clock.now += 60  # the retries of step 1 are due
            assert 3 == await work.run_once()
        finally:
            await work.close_channels()
        posts = receiver.received

    everything = [*failing, *moved, *probed_or_moved, second_probe, *returned]
    for message_id in everything:
        message = await store.get_message_by_id(message_id)
        assert message is not None
        assert MessageStatus.DELIVERED is message.status, (message_id, message.last_error)

    # Sent exactly once: a 2xx from the receiver or a line in the sandbox file, not both.
    accepted_by_push = [
        int(post.headers["webhook-id"].removeprefix("msg_")) for post in posts[3:]
    ]  # the first three posts were the 503s
    lines = (tmp_path / "sandbox" / "deliveries.jsonl").read_text(encoding="utf-8").splitlines()
    accepted_by_lab = [json.loads(line)["message_id"] for line in lines]
    assert sorted(everything) == sorted(accepted_by_push + accepted_by_lab)
    assert len(set(accepted_by_push + accepted_by_lab)) == len(everything)

    # The timeline says why each message went where it went.
    for message_id in moved:
        kinds = await timeline(store, message_id)
        skipped = next(detail for kind, detail in kinds if kind == "channel_skipped")
        assert {"channel": "push", "to_channel": "lab", "breaker": "open", "step": 0}.items() <= (
            skipped.items()
        )
        assert 0 < skipped["reopens_in_s"] <= 10
        delivered = next(detail for kind, detail in kinds if kind == "delivered")
        assert ("lab", 1, 1) == (delivered["channel"], delivered["step"], delivered["attempt"])
    c_kinds = {m: await timeline(store, m) for m in probed_or_moved}
    probes = [m for m, kinds in c_kinds.items() if any(d.get("probe") for _, d in kinds)]
    skips = [m for m, kinds in c_kinds.items() if any(k == "channel_skipped" for k, _ in kinds)]
    assert 1 == len(probes) and 1 == len(skips) and probes != skips
    assert probes[0] in accepted_by_push and skips[0] in accepted_by_lab
    (probe_delivered,) = [d for k, d in c_kinds[probes[0]] if k == "delivered"]
    assert {"channel": "push", "probe": True, "step": 0}.items() <= probe_delivered.items()
    for message_id in [*returned, *failing]:
        kinds = await timeline(store, message_id)
        assert not any(kind == "channel_skipped" or "probe" in d for kind, d in kinds)
        assert message_id in accepted_by_push


async def test_a_weighted_split_picks_a_first_channel_per_message_and_keeps_it_on_retries(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """70/30: each message's first channel comes from its id, and its retries stay there."""
    clock = Clock()
    route = Route(name="split", channels=("cheap", "dear"), weights=(70, 30))
    channels = {
        name: SandboxChannel(tmp_path / name, name=name, store=store, clock=clock)
        for name in route.channels
    }
    work = Worker(
        store, channels, routes=[route], retry=RetryPolicy(base_s=1), breaker=POLICY,
        clock=clock, rng=random.Random(1), worker_id="w", concurrency=64,
    )  # fmt: skip
    plain = await accept(store, message_factory, *(f"m{i}" for i in range(40)))
    # Fails transiently twice, then is delivered (the sandbox's magic number).
    (flaky,) = [
        (await store.accept(message_factory(msg_key="flaky", mobile_receiver="+8613800000002")))
        .message_id
    ]  # fmt: skip
    await work.open_channels()
    try:
        for _ in range(4):
            await work.run_once()
            clock.now += 5
    finally:
        await work.close_channels()
    firsts = {m: route.order_for(m)[0] for m in [*plain, flaky]}
    assert {"cheap", "dear"} == set(firsts.values())  # both sides of the split get traffic
    for message_id, first in firsts.items():
        message = await store.get_message_by_id(message_id)
        assert message is not None
        assert (MessageStatus.DELIVERED, first) == (message.status, message.channel)
        entries = await timeline(store, message_id)
        sent = [d for kind, d in entries if kind in ("delivered", "retry_scheduled")]
        assert {first} == {d["channel"] for d in sent}
        assert {
            "bucket": route.split_bucket(message_id),
            "weights": {"cheap": 70, "dear": 30},
        } == sent[-1]["split"]
    flaky_kinds = [kind for kind, _ in await timeline(store, flaky)]
    assert 2 == flaky_kinds.count("retry_scheduled")


async def test_an_opening_in_one_worker_moves_the_traffic_of_every_worker_of_the_store(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """Worker A sees the 503s and opens; B, which never failed, skips the channel too.

    A's probes later close it and end the shared opening; B probes on its own.
    """
    clock = Clock()
    with Receiver(Answer(503), Answer(503), Answer(503)).running() as receiver:

        def worker(name: str) -> Worker:
            channels = {
                "push": WebhookChannel(
                    WebhookConfig(url=f"{receiver.url}/in", secret=SECRET), name="push"
                ),
                "lab": SandboxChannel(tmp_path / name, name="lab", store=store, clock=clock),
            }
            return Worker(
                store, channels, routes=[Route(name="r", channels=("push", "lab"))],
                retry=RetryPolicy(base_s=30), breaker=POLICY,
                clock=clock, rng=random.Random(1), worker_id=name,
            )  # fmt: skip

        a, b = worker("a"), worker("b")
        await a.open_channels()
        await b.open_channels()
        try:
            await accept(store, message_factory, "a1", "a2", "a3")
            assert 3 == await a.run_once()
            await a.sync_breakers()
            (opening,) = await store.open_channels(now_ms=int(clock.now * 1000))
            assert ("push", "a", int(clock.now * 1000) + 10_000) == (
                opening.channel, opening.opened_by, opening.open_until_ms,
            )  # fmt: skip

            await b.sync_breakers()
            assert "open" == b.breaker_states()["push"]["state"]
            (moved,) = await accept(store, message_factory, "b1")
            assert 1 == await b.run_once()
            assert 1 == await b.run_once()
            assert 3 == len(receiver.received)  # B sent nothing to the failing receiver
            kinds = [kind for kind, _ in await timeline(store, moved)]
            assert ["accepted", "claimed", "channel_skipped", "claimed", "delivered"] == kinds

            clock.now += 10
            for key in ("p1", "p2"):  # two good probes close A's breaker
                await accept(store, message_factory, key)
                assert 1 == await a.run_once()
            assert "closed" == a.breaker_states()["push"]["state"]
            await a.sync_breakers()
            assert [] == await store.open_channels(now_ms=int(clock.now * 1000))
            await b.sync_breakers()
            assert "half_open" == b.breaker_states()["push"]["state"]  # B's own probes next
        finally:
            await a.close_channels()
            await b.close_channels()


@pytest.mark.slow
async def test_an_smsc_outage_opens_the_smpp_channel_and_its_messages_go_to_the_next_channel(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """Any kind: no SMPP session (the SMSC is down) opens the breaker; traffic comes back after.

    Messages waiting out the outage (``channel_unavailable``) are skipped to the
    sandbox once the breaker opens, instead of waiting for the SMSC; after the
    SMSC starts, a probe closes the breaker and new messages go over SMPP.
    """
    policy = BreakerPolicy(window_s=60, min_calls=3, failure_ratio=0.5, open_s=0.5, probes=1)
    async with FakeSMSC(SMSCPolicy(system_id="park01", password="secret"), started=False) as smsc:
        smpp = SMPPChannel(
            SMPPConfig(
                host="127.0.0.1", port=smsc.port, system_id="park01", password="secret",
                bind_wait_s=0.05, reconnect_min_s=0.05, reconnect_max_s=0.2,
            ),
            store, name="smsc",
        )  # fmt: skip
        lab = SandboxChannel(tmp_path / "sandbox", name="lab", store=store)
        work = Worker(
            store, {"smsc": smpp, "lab": lab}, routes=[Route(name="r", channels=("smsc", "lab"))],
            breaker=policy, poll_interval=0.02, worker_id="w",
        )  # fmt: skip
        await work.open_channels()
        stop = asyncio.Event()
        serving = asyncio.create_task(work.serve(stop))
        try:
            during = await accept(store, message_factory, "o1", "o2", "o3")
            await wait_for_status(store, during, MessageStatus.DELIVERED)
            assert 1 <= work.breakers["smsc"].times_opened
            await smsc.start()
            deadline = time.monotonic() + 15
            while work.breaker_states()["smsc"]["state"] != "closed":
                assert time.monotonic() < deadline, work.breaker_states()
                if not smsc.submits:  # nothing probing yet: give the breaker a message
                    await accept(store, message_factory, f"probe-{time.monotonic_ns()}")
                await asyncio.sleep(0.3)
            after = await accept(store, message_factory, "n1", "n2")
            await wait_for_status(store, after, MessageStatus.DELIVERED)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)
            await work.close_channels()
    for message_id in during:
        message = await store.get_message_by_id(message_id)
        assert message is not None and "lab" == message.channel
        kinds = [kind for kind, _ in await timeline(store, message_id)]
        assert "channel_unavailable" in kinds and "channel_skipped" in kinds
    for message_id in after:
        message = await store.get_message_by_id(message_id)
        assert message is not None and "smsc" == message.channel
    lines = (tmp_path / "sandbox" / "deliveries.jsonl").read_text(encoding="utf-8").splitlines()
    by_lab = [json.loads(line)["message_id"] for line in lines]
    assert len(by_lab) == len(set(by_lab))  # none sent twice
    assert not set(after) & set(by_lab)


async def wait_for_status(
    store: Store, ids: list[int], wanted: MessageStatus, within: float = 15
) -> None:
    deadline = time.monotonic() + within
    while True:
        found = [await store.get_message_by_id(i) for i in ids]
        if all(m is not None and m.status is wanted for m in found):
            return
        assert time.monotonic() < deadline, [(m.status, m.channel) for m in found if m]
        await asyncio.sleep(0.05)
