"""The webhook channel through the real worker and store, against a real HTTP receiver.

The receiver verifies every POST with the ``standardwebhooks`` package itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Callable

import pytest
import standardwebhooks

from iwork_mc.apps import App
from iwork_mc.channels.webhook import WebhookChannel
from iwork_mc.channels.webhook_config import WebhookConfig
from iwork_mc.messages import Message, MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store
from iwork_mc.worker import Worker

from receivers import Answer, Receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()


def channel_for(receiver: Receiver, timeout_s: float = 5.0) -> WebhookChannel:
    config = WebhookConfig(
        url=f"{receiver.url}/hooks/sms?token=t0k3n", secret=SECRET, timeout_s=timeout_s
    )
    return WebhookChannel(config, name="push")


def worker_for(store: Store, channel: WebhookChannel, **kwargs: object) -> Worker:
    return Worker(store, channel, rng=random.Random(3), worker_id="w1", **kwargs)  # type: ignore[arg-type]


async def deliver_once(store: Store, channel: WebhookChannel, **kwargs: object) -> Message:
    await channel.open()
    try:
        assert 1 == await worker_for(store, channel, **kwargs).run_once()
    finally:
        await channel.close()
    found = await store.get_message("12345678", "visit-1")
    assert found is not None
    return found


async def test_a_message_is_posted_signed_and_delivered(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """2xx: delivered; the POST verifies with standardwebhooks and carries the message."""
    await store.accept(message_factory(resource_url="https://park.example/v/1"))
    with Receiver().running() as receiver:
        message = await deliver_once(store, channel_for(receiver))
        [request] = receiver.wait_for(1)
    assert (MessageStatus.DELIVERED, f"msg_{message.id}") == (message.status, message.channel_ref)
    assert "/hooks/sms?token=t0k3n" == request.path
    payload = standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert "message.send" == payload["type"]
    data = payload["data"]
    assert {
        "message_id": message.id,
        "app_key": "12345678",
        "msg_key": "visit-1",
        "receiver": "+8613888888888",
        "text": "arrived: name: 张三 https://park.example/v/1",
    } == {k: data[k] for k in ("message_id", "app_key", "msg_key", "receiver", "text")}
    assert {"name": "张三"} == data["event"]["data"]
    assert ("visitor", "arrived", "https://park.example/v/1") == (
        data["event"]["source"],
        data["event"]["action"],
        data["event"]["resource_url"],
    )
    assert f"msg_{message.id}" == request.headers["webhook-id"]
    # A receiver holding another secret refuses it.
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(request.body, request.headers)
    timeline = await store.timeline(message.id)
    assert ["accepted", "claimed", "delivered"] == [e.kind for e in timeline]
    assert "t0k3n" not in json.dumps([e.detail for e in timeline])


async def test_a_4xx_answer_fails_the_message_without_a_retry(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """4xx: a permanent failure, not tried again."""
    await store.accept(message_factory())
    with Receiver(Answer(422)).running() as receiver:
        message = await deliver_once(store, channel_for(receiver))
    assert (MessageStatus.FAILED, "webhook: HTTP 422, not retried") == (
        message.status,
        message.last_error,
    )
    assert 1 == len(receiver.received)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(503, {"Retry-After": "120"}), "webhook: HTTP 503"),
        (Answer(429, {"Retry-After": "120"}), "webhook: HTTP 429"),
    ],
)
async def test_retry_after_holds_the_retry_back(
    store: Store, app: App, message_factory: Callable[..., NewMessage], answer: Answer, error: str
) -> None:
    """429/5xx with Retry-After: queued again, due no earlier than Retry-After asks."""
    await store.accept(message_factory())
    before_ms = int(time.time() * 1000)
    with Receiver(answer).running() as receiver:
        message = await deliver_once(
            store, channel_for(receiver), retry=RetryPolicy(base_s=1.0, max_delay_s=600.0)
        )
    assert (MessageStatus.QUEUED, error) == (message.status, message.last_error)
    retry = (await store.timeline(message.id))[-1]
    assert "retry_scheduled" == retry.kind
    assert 120 == retry.detail["retry_after_s"]
    # Without Retry-After the first retry would come within 1 s.
    assert retry.detail["due_at_ms"] >= before_ms + 120_000


async def test_retry_after_is_bounded_by_the_longest_retry_delay(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A receiver asking for a day gets the policy's longest delay, not more."""
    await store.accept(message_factory())
    after_ms = int(time.time() * 1000)
    with Receiver(Answer(503, {"Retry-After": "86400"})).running() as receiver:
        message = await deliver_once(
            store, channel_for(receiver), retry=RetryPolicy(base_s=1.0, max_delay_s=60.0)
        )
    retry = (await store.timeline(message.id))[-1]
    assert after_ms + 60_000 <= retry.detail["due_at_ms"] <= int(time.time() * 1000) + 60_000


async def test_a_slow_receiver_times_out_and_the_retry_keeps_the_webhook_id(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A timeout is transient; the next try has the same webhook-id, signed afresh."""
    await store.accept(message_factory())
    with Receiver(Answer(200, delay_s=2.0), Answer(204)).running() as receiver:
        channel = channel_for(receiver, timeout_s=0.3)
        started = time.monotonic()
        message = await deliver_once(store, channel, retry=RetryPolicy(base_s=0.01))
        assert time.monotonic() - started < 1.5
        assert MessageStatus.QUEUED == message.status
        assert message.last_error is not None and "no answer within 0.3 s" in message.last_error
        await asyncio.sleep(0.05)  # the retry is due within 10 ms
        message = await deliver_once(store, channel)
        first, second = receiver.wait_for(2)
    assert MessageStatus.DELIVERED == message.status
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{message.id}"
    assert first.body == second.body
    for request in (first, second):
        standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)


async def test_an_unreachable_receiver_is_a_transient_failure(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Connection refused: queued for a retry, the reason names no URL."""
    await store.accept(message_factory())
    with Receiver().running() as receiver:
        channel = channel_for(receiver)
    message = await deliver_once(store, channel)
    assert (MessageStatus.QUEUED, "webhook: network error (ConnectError)") == (
        message.status,
        message.last_error,
    )


async def test_posts_reuse_one_connection(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A short answer body is read, so the next POST goes on the same connection."""
    for n in range(3):
        await store.accept(message_factory(msg_key=f"visit-{n}"))
    answers = [Answer(200, body=b'{"ok": true}') for _ in range(3)]
    with Receiver(*answers, keep_alive=True).running() as receiver:
        channel = channel_for(receiver)
        await channel.open()
        try:
            worker = worker_for(store, channel, concurrency=1)
            assert 3 == sum([await worker.run_once() for _ in range(3)])
        finally:
            await channel.close()
        requests = receiver.wait_for(3)
    assert 1 == len({request.client_port for request in requests})


def test_a_webhook_channel_is_always_ready() -> None:
    """Each send is one POST, with no session to bind: /readyz never waits on it."""
    config = WebhookConfig(url="http://127.0.0.1:9/hooks/sms", secret=SECRET)
    assert WebhookChannel(config, name="push").ready()
