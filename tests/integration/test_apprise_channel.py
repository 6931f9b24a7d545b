"""The Apprise channel through the real worker and store, against real services here.

``json://`` posts to a real HTTP receiver on 127.0.0.1; ``mqtt://`` publishes
to the machine's Mosquitto on 127.0.0.1:1883 (``.ci/run`` starts it), where a
paho subscriber in the test sees the message arrive.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest

from iwork_mc.apps import App
from iwork_mc.channels.apprise import AppriseChannel
from iwork_mc.channels.apprise_config import AppriseConfig
from iwork_mc.messages import Message, MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store
from iwork_mc.worker import Worker

from receivers import Answer, Receiver

MOSQUITTO = ("127.0.0.1", 1883)


async def deliver_once(store: Store, channel: AppriseChannel, **kwargs: object) -> Message:
    worker = Worker(store, channel, rng=random.Random(3), worker_id="w1", **kwargs)  # type: ignore[arg-type]
    await channel.open()
    try:
        assert 1 == await worker.run_once()
    finally:
        await channel.close()
    found = await store.get_message("12345678", "visit-1")
    assert found is not None
    return found


async def test_json_url_posts_the_text_with_the_receiver_filled_in(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Apprise "sent" is delivered; the receiver's number fills the URL's placeholder."""
    await store.accept(message_factory())
    with Receiver().running() as receiver:
        url = f"json://127.0.0.1:{receiver.port}/sms/{{receiver}}/{{receiver_national}}"
        channel = AppriseChannel(AppriseConfig(url=url, title="iwork"), name="team")
        message = await deliver_once(store, channel)
        [request] = receiver.wait_for(1)
    assert (MessageStatus.DELIVERED, "team") == (message.status, message.channel)
    assert f"apprise-{message.id}-1" == message.channel_ref
    assert "/sms/8613888888888/13888888888" == request.path
    body = json.loads(request.body)
    assert ("iwork", "arrived: name: 张三") == (body["title"], body["message"])
    assert ["accepted", "claimed", "delivered"] == [
        e.kind for e in await store.timeline(message.id)
    ]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_log() -> Iterator[Collect]:
    """A handler on the root logger, as a host application's logging setup would add."""
    handler, root = Collect(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_not_sent_is_a_transient_failure(
    store: Store, app: App, message_factory: Callable[..., NewMessage], root_log: Collect
) -> None:
    """Apprise "not sent" (the service answered 500) is retried; the reason names no URL.

    Apprise's own log lines (hosts, numbers, payloads) reach no handler of the root logger.
    """
    await store.accept(message_factory())
    with Receiver(Answer(500)).running() as receiver:
        url = f"json://user:pa55word@127.0.0.1:{receiver.port}/sms"
        channel = AppriseChannel(AppriseConfig(url=url), name="team")
        message = await deliver_once(store, channel, retry=RetryPolicy(base_s=60))
    assert MessageStatus.QUEUED == message.status
    assert message.last_error is not None
    assert message.last_error.startswith("apprise: JSON did not take the notification")
    timeline = json.dumps([e.detail for e in await store.timeline(message.id)])
    assert "pa55word" not in timeline and str(receiver.port) not in timeline
    assert "pa55word" not in json.dumps(channel.health())
    assert [] == [r.getMessage() for r in root_log.records if r.name.startswith("apprise")]


async def test_a_service_that_does_not_answer_in_time_is_retried(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """No answer within timeout_s: transient, and the reason says it may have arrived."""
    await store.accept(message_factory())
    with Receiver(Answer(200, delay_s=3.0)).running() as receiver:
        url = f"json://127.0.0.1:{receiver.port}/sms"
        channel = AppriseChannel(AppriseConfig(url=url, timeout_s=0.5), name="team")
        message = await deliver_once(store, channel, retry=RetryPolicy(base_s=60))
    assert MessageStatus.QUEUED == message.status
    assert message.last_error is not None and "no answer within 0.5 s" in message.last_error


def mosquitto_is_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(MOSQUITTO) == 0


@contextmanager
def subscribed(topic: str) -> Iterator[queue.Queue[tuple[str, bytes]]]:
    """A paho subscriber on Mosquitto, subscribed before the test publishes."""
    arrived: queue.Queue[tuple[str, bytes]] = queue.Queue()
    ready: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: arrived.put((msg.topic, msg.payload))
    client.on_subscribe = lambda _c, _u, mid, _codes, _props: ready.put(mid)
    client.connect(*MOSQUITTO)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        ready.get(timeout=10)
        yield arrived
    finally:
        client.disconnect()
        client.loop_stop()


async def test_mqtt_url_publishes_to_the_broker(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """An mqtt:// channel publishes the text on the receiver's topic; a subscriber gets it."""
    if not mosquitto_is_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    await store.accept(message_factory())
    base = f"iwork-mc-test/{uuid.uuid4().hex}"
    with subscribed(f"{base}/#") as arrived:
        url = f"mqtt://{MOSQUITTO[0]}:{MOSQUITTO[1]}/{base}/{{receiver}}?qos=1"
        message = await deliver_once(store, AppriseChannel(AppriseConfig(url=url), name="mqtt"))
        topic, payload = arrived.get(timeout=10)
    assert MessageStatus.DELIVERED == message.status
    assert (f"{base}/8613888888888", "arrived: name: 张三") == (topic, payload.decode())
    assert arrived.empty()


async def test_mqtt_broker_down_is_a_transient_failure(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Nothing listening: Apprise says not sent; the message waits for a retry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        await store.accept(message_factory())
        url = f"mqtt://127.0.0.1:{port}/iwork-mc-test/{{receiver}}"
        message = await deliver_once(
            store, AppriseChannel(AppriseConfig(url=url), name="mqtt"), retry=RetryPolicy(base_s=60)
        )
    assert MessageStatus.QUEUED == message.status


def test_an_apprise_channel_is_always_ready() -> None:
    """Each send is its own notification call, with no session to bind."""
    assert AppriseChannel(AppriseConfig(url="json://127.0.0.1:9/"), name="team").ready()
