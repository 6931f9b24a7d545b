"""The worker against a real store (SQLite file and PostgreSQL): claim, send, record, retry."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.channels.base import (
    Delivered,
    PermanentChannelError,
    SendResult,
    Submitted,
    TransientChannelError,
)
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.messages import Message, MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store
from iwork_mc.worker import Worker

T0 = 1_700_000_010.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedChannel:
    """A carrier that answers each send with the next scripted outcome."""

    name = "scripted"

    def __init__(self, *outcomes: SendResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[int, str]] = []

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Message, text: str) -> SendResult:
        self.sent.append((message.id, text))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def worker_for(store: Store, channel: object, clock: Clock, **kwargs: object) -> Worker:
    return Worker(store, channel, clock=clock, rng=random.Random(7), worker_id="w1", **kwargs)  # type: ignore[arg-type]


async def accept(store: Store, make: Callable[..., NewMessage], **fields: object) -> int:
    result = await store.accept(make(**fields))
    return result.message_id


async def kinds(store: Store, message_id: int) -> list[str]:
    return [entry.kind for entry in await store.timeline(message_id)]


async def test_sandbox_delivery_reaches_delivered(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """An accepted message is claimed, sent through the sandbox and marked delivered."""
    message_id = await accept(store, message_factory)
    channel = SandboxChannel(tmp_path / "sandbox")
    await channel.open()
    assert 1 == await worker_for(store, channel, Clock()).run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.DELIVERED, "sandbox", 1) == (
        message.status,
        message.channel,
        message.attempts,
    )
    # Confirmed at once by the channel: one transaction from sending to delivered.
    assert ["accepted", "claimed", "delivered"] == await kinds(store, message_id)
    assert 0o600 == channel.path.stat().st_mode & 0o777
    [line] = channel.path.read_text(encoding="utf-8").splitlines()
    assert {"to": "+8613888888888", "text": "arrived: name: 张三", "msg_key": "visit-1"} == {
        k: json.loads(line)[k] for k in ("to", "text", "msg_key")
    }
    assert 0 == await worker_for(store, channel, Clock()).run_once()


async def test_submitted_waits_for_a_receipt(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A channel that only submits leaves the message submitted with its reference."""
    message_id = await accept(store, message_factory)
    await worker_for(store, ScriptedChannel(Submitted("smsc-1")), Clock()).run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.SUBMITTED, "smsc-1") == (message.status, message.channel_ref)


async def test_transient_error_is_retried_later_from_the_store(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A transient error schedules a retry in the store; it is not sent again before it is due."""
    message_id = await accept(store, message_factory)
    clock = Clock()
    channel = ScriptedChannel(TransientChannelError("throttled"), Delivered("ok"))
    worker = worker_for(store, channel, clock, retry=RetryPolicy(base_s=2))
    await worker.run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.QUEUED, "throttled") == (message.status, message.last_error)
    assert 0 == await worker.run_once()
    clock.now += 2.0
    assert 1 == await worker.run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.DELIVERED, 2) == (message.status, message.attempts)
    assert ["accepted", "claimed", "retry_scheduled", "claimed", "delivered"] == (
        await kinds(store, message_id)
    )


async def test_permanent_error_fails_at_once(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A permanent error fails the message with the carrier's reason, without a retry."""
    message_id = await accept(store, message_factory)
    channel = ScriptedChannel(PermanentChannelError("invalid destination"))
    await worker_for(store, channel, Clock()).run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.FAILED, "invalid destination") == (message.status, message.last_error)
    assert 1 == len(channel.sent)


async def test_retries_run_out(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """After max_attempts transient errors the message fails and says why."""
    message_id = await accept(store, message_factory)
    clock = Clock()
    channel = ScriptedChannel(*[TransientChannelError("busy")] * 3)
    worker = worker_for(store, channel, clock, retry=RetryPolicy(base_s=1, max_attempts=3))
    for _ in range(3):
        await worker.run_once()
        clock.now += 60
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.FAILED, "retries exhausted: busy", 3) == (
        message.status, message.last_error, message.attempts
    )  # fmt: skip


async def test_a_crashing_channel_is_retried(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """An unexpected channel exception is treated as transient, never as a loss."""
    message_id = await accept(store, message_factory)
    await worker_for(store, ScriptedChannel(RuntimeError("bug")), Clock()).run_once()
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.QUEUED, "channel error: RuntimeError") == (
        message.status,
        message.last_error,
    )


async def test_late_result_after_lease_loss_is_visible(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A worker whose lease expired cannot record its result; the possible duplicate is noted."""
    message_id = await accept(store, message_factory)
    clock = Clock()
    slow = worker_for(store, ScriptedChannel(Submitted("first")), clock, lease_ms=1_000)
    [claimed] = await store.claim_due(
        worker_id="w1", now_ms=int(clock.now * 1000), lease_ms=1_000, limit=1
    )
    clock.now += 5
    takeover = Worker(store, ScriptedChannel(Delivered("second")), clock=clock, worker_id="w2")
    assert 1 == await takeover.run_once()
    await slow._deliver(claimed)
    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.DELIVERED, "second") == (message.status, message.channel_ref)
    timeline = await store.timeline(message_id)
    late = [e for e in timeline if e.kind == "late_result_after_lease_lost"]
    assert 1 == len(late)
    assert ("w1", "first") == (late[0].detail["worker_id"], late[0].detail["ref"])


async def test_serve_stops_when_asked(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """serve() delivers what is due and returns once stop is set."""
    ids = [await accept(store, message_factory, msg_key=f"m{i}") for i in range(40)]
    channel = SandboxChannel(tmp_path / "sandbox")
    await channel.open()
    stop = asyncio.Event()
    worker = Worker(store, channel, concurrency=8, poll_interval=0.01)
    serving = asyncio.create_task(worker.serve(stop))
    for _ in range(500):
        if (await store.count_by_status())[MessageStatus.DELIVERED] == len(ids):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(serving, 5)
    assert {MessageStatus.DELIVERED: 40} == {
        k: v for k, v in (await store.count_by_status()).items() if v
    }


@pytest.mark.parametrize("seed", range(3))
def test_retry_policy_stays_within_its_bounds(seed: int) -> None:
    """Each retry waits between half and all of its exponential ceiling."""
    policy = RetryPolicy(base_s=2, max_delay_s=60, max_attempts=8)
    rng = random.Random(seed)
    for attempts in range(1, 8):
        due = policy.next_attempt_at_ms(attempts, 0, rng)
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1)) * 1000
        assert due is not None and ceiling / 2 <= due <= ceiling
    assert None is policy.next_attempt_at_ms(8, 0, rng)
