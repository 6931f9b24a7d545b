"""The webhook channel's pure parts: what an answer means, the id, the body, the retry delay."""

from __future__ import annotations

import json
import random

import pytest

from iwork_mc.channels.webhook import Answer, classify, webhook_body, webhook_id
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import Message, MessageStatus
from iwork_mc.retry import RetryPolicy


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, Answer.DELIVERED), (202, Answer.DELIVERED), (204, Answer.DELIVERED),
        (408, Answer.TRANSIENT), (429, Answer.TRANSIENT), (500, Answer.TRANSIENT),
        (502, Answer.TRANSIENT), (503, Answer.TRANSIENT), (599, Answer.TRANSIENT),
        (400, Answer.PERMANENT), (401, Answer.PERMANENT), (404, Answer.PERMANENT),
        (410, Answer.PERMANENT), (422, Answer.PERMANENT), (301, Answer.PERMANENT),
        (302, Answer.PERMANENT), (101, Answer.PERMANENT),
    ],
)  # fmt: skip
def test_each_status_has_one_meaning(status: int, answer: Answer) -> None:
    """2xx delivered; 408, 429 and 5xx transient; everything else permanent."""
    assert answer == classify(status)


def message(attempts: int) -> Message:
    event = MobileReceiverMessageEvent(
        msg_key="visit-1", event_time_millis=1, source="s", action="a",
        mobile_receiver="+8613888888888", event_type="e", json_data='{"name":"张三"}', sender=1,
    )  # fmt: skip
    return Message(
        id=7, app_key="12345678", event=event, fingerprint="f", status=MessageStatus.SENDING,
        request_id="r", accepted_at_ms=1_700_000_000_000, updated_at_ms=0, attempts=attempts,
    )  # fmt: skip


def test_every_try_of_a_message_has_the_same_id_and_body() -> None:
    """Receivers dedupe by webhook-id; the signed body does not change between tries."""
    first, retry = message(1), message(4)
    assert "msg_7" == webhook_id(first) == webhook_id(retry)
    assert webhook_body(first, "hi") == webhook_body(retry, "hi")
    body = json.loads(webhook_body(first, "hi"))
    assert ("message.send", "2023-11-14T22:13:20.000Z") == (body["type"], body["timestamp"])
    assert {"name": "张三"} == body["data"]["event"]["data"]


def test_retry_after_delays_the_retry_within_the_longest_delay() -> None:
    """Retry-After pushes the next try later, never earlier, never past max_delay_s."""
    policy = RetryPolicy(base_s=2.0, max_delay_s=300.0)
    rng = random.Random(1)
    now = 1_000_000
    plain = policy.next_attempt_at_ms(1, now, random.Random(1))
    assert plain is not None and plain <= now + 2_000
    assert now + 120_000 == policy.next_attempt_at_ms(1, now, rng, retry_after_s=120)
    assert now + 300_000 == policy.next_attempt_at_ms(1, now, rng, retry_after_s=86_400)
    assert policy.next_attempt_at_ms(1, now, random.Random(1), retry_after_s=0.5) == plain
    assert None is policy.next_attempt_at_ms(10, now, rng, retry_after_s=5)
