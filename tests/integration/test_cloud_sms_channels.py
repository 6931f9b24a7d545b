"""The aliyun_sms and tencent_sms channels, through the unmodified official SDKs, against
the emulators in iwork_mc.testing (real HTTP on 127.0.0.1, signatures verified), with the
real Worker and store (SQLite and PostgreSQL).

Each case runs for both providers: what differs (error codes, receipts pulled or
queried) is in the ``Provider`` table below.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from iwork_mc.apps import App
from iwork_mc.channels import providers
from iwork_mc.channels.cloud_sms import CloudSMSChannel
from iwork_mc.messages import Message, MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store
from iwork_mc.testing import FakeAliyunSMS, FakeTencentSMS
from iwork_mc.testing._http import CloudEmulator
from iwork_mc.worker import Worker

RECEIVER = "+8613888888888"
SECRETS = {"aliyun_sms": "aliyun-secret-do-not-log", "tencent_sms": "tencent-secret-do-not-log"}


@dataclass(frozen=True)
class Provider:
    kind: str
    permanent: str
    transient: str
    throttled: str
    #: The phone number as the provider's records show it.
    phone: str


ALIYUN = Provider("aliyun_sms", "isv.MOBILE_NUMBER_ILLEGAL", "isp.SYSTEM_ERROR",
                  "isv.BUSINESS_LIMIT_CONTROL", "13888888888")  # fmt: skip
TENCENT = Provider("tencent_sms", "FailedOperation.PhoneNumberInBlacklist", "InternalError.Timeout",
                   "LimitExceeded.PhoneNumberThirtySecondLimit", RECEIVER)  # fmt: skip


class Clock:
    """Real time at first (the SDKs sign with real time), moved on by tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def emulator(kind: str, secret: str | None = None) -> CloudEmulator:
    if kind == "aliyun_sms":
        return FakeAliyunSMS("LTAI-test", secret or SECRETS[kind], slow_s=1.0)
    return FakeTencentSMS("AKID-test", secret or SECRETS[kind], "1400000001", slow_s=1.0)


def options(kind: str, endpoint: str, **overrides: Any) -> dict[str, Any]:
    common: dict[str, Any] = {
        "endpoint": endpoint, "sign_name": "园区通知", "timeout_s": 0.4,
        "throttle_backoff_s": 0.01, "receipt_poll_interval_s": 0,
    }  # fmt: skip
    if kind == "aliyun_sms":
        common |= {"access_key_id": "LTAI-test", "access_key_secret": SECRETS[kind],
                   "templates": {"": "SMS_100", "door-*": "SMS_200"}}  # fmt: skip
    else:
        common |= {"secret_id": "AKID-test", "secret_key": SECRETS[kind],
                   "sdk_app_id": "1400000001",
                   "templates": {"": {"id": "100", "params": ["name"]}, "door-*": "200"}}  # fmt: skip
    return common | overrides


@pytest.fixture(params=[ALIYUN, TENCENT], ids=lambda p: p.kind)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


@pytest.fixture
def fake(provider: Provider) -> Iterator[CloudEmulator]:
    with emulator(provider.kind) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def open_channel(
    provider: Provider, store: Store, endpoint: str, clock: Clock, **overrides: Any
) -> CloudSMSChannel:
    channel = providers.build(
        provider.kind, "cloud", options(provider.kind, endpoint, **overrides), store, clock=clock
    )
    await channel.open()
    return channel


@pytest.fixture
async def channel(
    provider: Provider, store: Store, fake: CloudEmulator, clock: Clock
) -> AsyncIterator[CloudSMSChannel]:
    opened = await open_channel(provider, store, fake.endpoint, clock)
    yield opened
    await opened.close()


def worker_for(store: Store, channel: CloudSMSChannel, clock: Clock) -> Worker:
    return Worker(store, channel, clock=clock, rng=random.Random(3), worker_id="w1",
                  retry=RetryPolicy(base_s=1, max_delay_s=4, max_attempts=3))  # fmt: skip


async def accept(store: Store, message_factory: Callable[..., NewMessage], **fields: Any) -> int:
    expires = fields.pop("expires_at_ms", None)
    fields.setdefault("mobile_receiver", RECEIVER)
    message = message_factory(**fields)
    if expires is not None:
        message = replace(message, expires_at_ms=expires)
    return (await store.accept(message)).message_id


async def message(store: Store, message_id: int) -> Message:
    found = await store.get_message_by_id(message_id)
    assert found is not None
    return found


async def kinds(store: Store, message_id: int) -> list[str]:
    return [entry.kind for entry in await store.timeline(message_id)]


async def test_a_message_is_submitted_then_delivered_by_its_receipt(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """The SDK's signed request is accepted; the provider's id is the ref; the receipt delivers."""
    message_id = await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    submitted = await message(store, message_id)
    [sms] = fake.sent
    assert (MessageStatus.SUBMITTED, sms.carrier_id) == (submitted.status, submitted.channel_ref)
    assert (provider.phone, "园区通知") == (sms.phone, sms.sign_name)
    if provider.kind == "aliyun_sms":  # the seed's json_data is the TemplateParam, as is
        assert ("SMS_100", '{"name": "张三"}') == (sms.template, sms.params)
    else:  # the values the mapping names, in its order
        assert ("100", ["张三"]) == (sms.template, sms.params)
    assert 1 == await channel.poll_receipts()
    assert MessageStatus.DELIVERED is (await message(store, message_id)).status
    assert ["accepted", "claimed", "submitted", "receipt", "delivered"] == [
        k for k in await kinds(store, message_id) if k != "status_event"
    ]
    assert 0 == fake.bad_signatures


async def test_no_secret_reaches_the_timeline_or_health(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    message_id = await accept(store, message_factory)
    fake.script(provider.phone, provider.transient)
    await worker_for(store, channel, clock).run_once()
    timeline = json.dumps([entry.detail for entry in await store.timeline(message_id)])
    assert SECRETS[provider.kind] not in timeline
    assert SECRETS[provider.kind] not in json.dumps(channel.health())
    assert SECRETS[provider.kind] not in repr(channel.provider.options)


async def test_a_wrong_secret_is_refused_by_the_signature_check_and_fails_the_message(
    provider: Provider, store: Store, app: App, clock: Clock,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """The emulator verifies the SDK's signature: a request signed with another secret fails."""
    with emulator(provider.kind, secret="another-secret") as fake:
        channel = await open_channel(provider, store, fake.endpoint, clock)
        try:
            message_id = await accept(store, message_factory)
            await worker_for(store, channel, clock).run_once()
        finally:
            await channel.close()
    failed = await message(store, message_id)
    assert MessageStatus.FAILED is failed.status
    assert ("SignatureDoesNotMatch" if provider.kind == "aliyun_sms"
            else "AuthFailure.SignatureFailure") in (failed.last_error or "")  # fmt: skip
    assert (1, []) == (fake.bad_signatures, fake.sent)


async def test_a_permanent_error_fails_the_message_at_once(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.script(provider.phone, provider.permanent)
    message_id = await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    failed = await message(store, message_id)
    assert MessageStatus.FAILED is failed.status
    assert provider.permanent in (failed.last_error or "")
    assert 1 == sum(fake.calls.values())


async def test_a_transient_error_is_retried_by_the_worker(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.script(provider.phone, provider.transient)
    message_id = await accept(store, message_factory)
    worker = worker_for(store, channel, clock)
    await worker.run_once()
    waiting = await message(store, message_id)
    assert MessageStatus.QUEUED is waiting.status
    assert provider.transient in (waiting.last_error or "")
    clock.now += 60
    await worker.run_once()
    assert MessageStatus.SUBMITTED is (await message(store, message_id)).status
    assert 1 == len(fake.sent)


async def test_a_throttled_answer_is_tried_again_after_a_back_off(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """Two throttled answers (throttle_retries is 2): the third try in the same attempt goes."""
    fake.script(provider.phone, provider.throttled, provider.throttled)
    message_id = await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    sent = await message(store, message_id)
    assert (MessageStatus.SUBMITTED, 1) == (sent.status, sent.attempts)
    assert 2 == channel.stats["throttled"]
    waits = [e.detail for e in await store.timeline(message_id) if e.kind == "throttled"]
    assert [provider.throttled] * 2 == [w["code"] for w in waits]
    assert [0.01, 0.02] == [w["retry_in_s"] for w in waits]


async def test_throttling_that_lasts_is_retried_later_by_the_worker(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.script(provider.phone, *[provider.throttled] * 3)
    message_id = await accept(store, message_factory)
    worker = worker_for(store, channel, clock)
    await worker.run_once()
    waiting = await message(store, message_id)
    assert MessageStatus.QUEUED is waiting.status
    assert provider.throttled in (waiting.last_error or "")
    assert "retry_scheduled" in await kinds(store, message_id)
    clock.now += 60
    await worker.run_once()
    assert MessageStatus.SUBMITTED is (await message(store, message_id)).status


async def test_a_timed_out_answer_is_in_doubt_and_its_resend_is_marked(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """The provider took the SMS but its answer came too late: resent only after
    in_doubt_resend_s, and the resend is marked as a possible duplicate."""
    fake.script(provider.phone, "timeout")
    message_id = await accept(store, message_factory)
    worker = worker_for(store, channel, clock)
    await worker.run_once()
    waiting = await message(store, message_id)
    assert MessageStatus.QUEUED is waiting.status
    assert "in_doubt" in await kinds(store, message_id)
    clock.now += 60  # before in_doubt_resend_s (600 s): nothing is due
    assert 0 == await worker.run_once()
    clock.now += 600
    await worker.run_once()
    assert MessageStatus.SUBMITTED is (await message(store, message_id)).status
    assert "possible_duplicate" in await kinds(store, message_id)
    assert 2 == len(fake.sent)


async def test_a_submission_recorded_before_a_crash_is_never_sent_again(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """The worker died after the provider took the SMS and its id was stored, before the
    status was: the next worker finds the id and records the submission instead of resending."""
    message_id = await accept(store, message_factory)
    [claimed] = await store.claim_due(worker_id="dead", now_ms=int(clock.now * 1000),
                                      lease_ms=1_000, limit=1)  # fmt: skip
    await channel.send(claimed, "text")  # ... and the worker dies here
    clock.now += 5
    await worker_for(store, channel, clock).run_once()
    resumed = await message(store, message_id)
    assert (MessageStatus.SUBMITTED, fake.sent[0].carrier_id) == (
        resumed.status,
        resumed.channel_ref,
    )
    assert "already_submitted" in await kinds(store, message_id)
    assert 1 == len(fake.sent)


async def test_an_unreachable_provider_is_a_transient_failure_not_in_doubt(
    provider: Provider, store: Store, app: App, clock: Clock,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    channel = await open_channel(provider, store, dead, clock)
    try:
        message_id = await accept(store, message_factory)
        await worker_for(store, channel, clock).run_once()
    finally:
        await channel.close()
    waiting = await message(store, message_id)
    assert MessageStatus.QUEUED is waiting.status
    assert "connection refused" in (waiting.last_error or "")
    assert "in_doubt" not in await kinds(store, message_id)
    assert ["refused"] == [s.state for s in await store.segments(message_id)]


async def test_a_template_with_no_mapping_fails_without_calling_the_provider(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, clock: Clock,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    channel = await open_channel(provider, store, fake.endpoint, clock,
                                 templates={"door-*": "SMS_200"})  # fmt: skip
    try:
        message_id = await accept(store, message_factory)
        await worker_for(store, channel, clock).run_once()
    finally:
        await channel.close()
    failed = await message(store, message_id)
    assert MessageStatus.FAILED is failed.status
    assert "for template '(default)'" in (failed.last_error or "")
    assert 0 == sum(fake.calls.values())


async def test_a_late_receipt_delivers_the_message_when_it_comes(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.receipt(provider.phone, "pending")
    message_id = await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    assert 0 == await channel.poll_receipts()
    assert MessageStatus.SUBMITTED is (await message(store, message_id)).status
    fake.complete(fake.sent[0].carrier_id)
    assert 1 == await channel.poll_receipts()
    assert MessageStatus.DELIVERED is (await message(store, message_id)).status


async def test_a_failure_receipt_fails_the_message(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.receipt(provider.phone, "failed")
    message_id = await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    await channel.poll_receipts()
    failed = await message(store, message_id)
    assert MessageStatus.FAILED is failed.status
    assert "MN:0001" in (failed.last_error or "")


async def test_a_receipt_that_never_comes_expires_the_message(
    provider: Provider, store: Store, app: App, fake: CloudEmulator, channel: CloudSMSChannel,
    clock: Clock, message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.receipt(provider.phone, "pending")
    message_id = await accept(store, message_factory,
                              expires_at_ms=int((clock.now + 120) * 1000))  # fmt: skip
    worker = worker_for(store, channel, clock)
    worker.receipt_wait_ms = 60_000
    await worker.run_once()
    await channel.poll_receipts()
    clock.now += 600
    assert 1 == await worker.expire_overdue()
    expired = await message(store, message_id)
    assert (MessageStatus.EXPIRED, "no delivery receipt within the validity period") == (
        expired.status, expired.last_error,
    )  # fmt: skip
    assert 0 == await channel.poll_receipts()  # an expired message is asked about no more


async def test_a_receipt_that_comes_twice_counts_once(
    store: Store, app: App, clock: Clock, message_factory: Callable[..., NewMessage]
) -> None:
    """Tencent's queue serves the same report twice: the second changes nothing."""
    with emulator("tencent_sms") as fake:
        fake.receipt(RECEIVER, "twice")
        channel = await open_channel(TENCENT, store, fake.endpoint, clock)
        try:
            message_id = await accept(store, message_factory)
            await worker_for(store, channel, clock).run_once()
            assert 2 == await channel.poll_receipts()
        finally:
            await channel.close()
    assert MessageStatus.DELIVERED is (await message(store, message_id)).status
    assert ["receipt", "delivered", "duplicate_receipt"] == [
        k
        for k in await kinds(store, message_id)
        if k in ("receipt", "delivered", "duplicate_receipt")
    ]
    assert 1 == channel.stats["duplicate_receipts"]


async def test_receipts_are_polled_for_every_waiting_message_in_pages(
    store: Store, app: App, clock: Clock, message_factory: Callable[..., NewMessage]
) -> None:
    """Alibaba Cloud is asked per BizId, a page at a time, round after round: submissions
    whose receipt is late do not keep the poller from the ones after them."""
    phones = [f"+86139000{n:05d}" for n in range(60)]
    with emulator("aliyun_sms") as fake:
        for phone in phones[:50]:
            fake.receipt(phone.removeprefix("+86"), "pending")
        channel = await open_channel(ALIYUN, store, fake.endpoint, clock)
        try:
            ids = [
                await accept(store, message_factory, msg_key=f"m{n}", mobile_receiver=phone)
                for n, phone in enumerate(phones)
            ]
            worker = worker_for(store, channel, clock)
            worker.concurrency = 60
            await worker.run_once()
            assert 0 == await channel.poll_receipts()  # the first 50: all still waiting
            assert 10 == await channel.poll_receipts()  # the next page: the last 10
            for sms in fake.sent:
                fake.complete(sms.carrier_id)
            assert 50 == await channel.poll_receipts()  # a new round, from the oldest
        finally:
            await channel.close()
    assert {MessageStatus.DELIVERED} == {(await message(store, i)).status for i in ids}
    assert 110 == fake.calls["QuerySendDetails"]


@pytest.mark.slow
async def test_the_worker_delivers_a_mixed_batch_end_to_end(
    provider: Provider, store: Store, app: App, fake: CloudEmulator,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """Worker.serve with receipt polling on: throttled, transient, permanent and plain
    messages all end where they should, and no SMS is sent twice."""
    channel = providers.build(provider.kind, "cloud", options(
        provider.kind, fake.endpoint, receipt_poll_interval_s=0.1, concurrency=4), store)  # fmt: skip
    phones = [f"+861390000{n:04d}" for n in range(12)]
    local = [p if provider.kind == "tencent_sms" else p.removeprefix("+86") for p in phones]
    fake.script(local[0], provider.throttled, provider.throttled)
    fake.script(local[1], provider.permanent)
    fake.script(local[2], provider.transient)
    ids = [
        await accept(store, message_factory, msg_key=f"e2e-{n}", mobile_receiver=phone)
        for n, phone in enumerate(phones)
    ]
    worker = Worker(store, channel, worker_id="e2e", poll_interval=0.05, concurrency=8,
                    retry=RetryPolicy(base_s=0.1, max_delay_s=0.2, max_attempts=3))  # fmt: skip
    stop = asyncio.Event()
    await worker.open_channels()
    serving = asyncio.create_task(worker.serve(stop))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            statuses = [(await message(store, i)).status for i in ids]
            if all(s in (MessageStatus.DELIVERED, MessageStatus.FAILED) for s in statuses):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await serving
        await worker.close_channels()
    assert [MessageStatus.DELIVERED, MessageStatus.FAILED] + [MessageStatus.DELIVERED] * 10 == [
        (await message(store, i)).status for i in ids
    ]
    assert sorted(local[:1] + local[2:]) == sorted(sms.phone for sms in fake.sent)


async def test_polled_receipts_are_counted_in_metrics_and_the_channel_is_always_ready(
    provider: Provider, store: Store, app: App, channel: CloudSMSChannel, clock: Clock,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    """A polled receipt is counted like an SMPP or sandbox one, with its latency; a cloud
    channel has no session to bind, so /readyz always finds it ready."""

    def counted() -> tuple[float, float]:
        labels = {"channel": channel.name}
        return (
            REGISTRY.get_sample_value("iwork_mc_receipts_total", {**labels, "result": "matched"})
            or 0.0,
            REGISTRY.get_sample_value("iwork_mc_receipt_seconds_count", labels) or 0.0,
        )

    assert channel.ready()
    before = counted()
    await accept(store, message_factory)
    await worker_for(store, channel, clock).run_once()
    assert 1 == await channel.poll_receipts()
    after = counted()
    assert (1.0, 1.0) == (after[0] - before[0], after[1] - before[1])
