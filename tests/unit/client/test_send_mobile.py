"""Unit tests for Client.send_mobile: the event it sends, its answers and its safe retries."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from iwork_mc.client import (
    Client,
    HTTPStatusError,
    InvalidAnswer,
    MessageRejected,
    NetworkError,
    SendResult,
    TopApiError,
    TransportTimeout,
)
from iwork_mc.client._base import BACKOFF_BASE, BACKOFF_CAP

from ._support import (
    APP_KEY,
    REJECTED_JSON,
    REQUEST_ID,
    SECRET,
    SEED_EVENT,
    SEED_EVENT_JAVA_JSON,
    SEED_SUCCESS_JSON,
    URL,
    FakeClock,
    FakeGateway,
    error_json,
)

SEED_KWARGS: dict[str, Any] = {
    "mobile_receiver": "13888888888",
    "json_data": '{"name":"张三"}',
    "source": "iwork",
    "action": "iwork-action",
    "sender": 10000,
    "msg_key": SEED_EVENT.msg_key,
    "event_time_millis": SEED_EVENT.event_time_millis,
    "resource_id": "1",
    "resource_url": "http://www.aaa.com",
}
MINIMAL_KWARGS: dict[str, Any] = {
    "mobile_receiver": "13888888888",
    "json_data": {"name": "张三"},
    "source": "iwork",
    "action": "iwork-action",
    "sender": 10000,
}
ISP_FAULT = error_json(15, "Remote service error", "isp.top-remote-connection-timeout")
SHORT_BAN = error_json(
    7, "App Call Limited", "accesscontrol.limited-by-api-access-count",
    "This ban will last for 2 more seconds",
)  # fmt: skip


def _client(gateway: FakeGateway, clock: FakeClock, **options: Any) -> Client:
    return Client(
        URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock, sleep=clock.sleep,
        **options,
    )  # fmt: skip


def test_seed_event_is_sent_as_the_java_sdk_sends_it(client: Client, gateway: FakeGateway) -> None:
    """send_mobile with the seed's values sends the Java SDK's event text, signed hmac-sha256."""
    result = client.send_mobile(**SEED_KWARGS)

    expected = SendResult(
        msg_key=SEED_EVENT.msg_key,
        event_time_millis=SEED_EVENT.event_time_millis,
        request_id=REQUEST_ID,
    )
    assert expected == result
    assert SEED_EVENT_JAVA_JSON == gateway.calls[0]["mobile_receiver_message_event"]
    assert ("hmac-sha256", "json") == (gateway.calls[0]["sign_method"], gateway.calls[0]["format"])


def test_defaults_fill_in_the_event(client: Client, gateway: FakeGateway) -> None:
    """Without msg_key, event time and event_type: a uuid4, the clock and mobile_receiver."""
    result = client.send_mobile(**MINIMAL_KWARGS)

    [event] = gateway.events()
    assert 4 == uuid.UUID(result.msg_key).version
    assert {
        "msg_key": result.msg_key,
        "event_time_millis": 1505376496000,
        "source": "iwork",
        "action": "iwork-action",
        "mobile_receiver": "13888888888",
        "event_type": "mobile_receiver",
        "json_data": '{"name":"张三"}',
        "sender": 10000,
    } == event


def test_each_call_gets_its_own_msg_key(client: Client) -> None:
    """Two calls without msg_key send two different messages."""
    first = client.send_mobile(**MINIMAL_KWARGS)
    second = client.send_mobile(**MINIMAL_KWARGS)

    assert first.msg_key != second.msg_key


def test_rejection_raises_message_rejected(client: Client, gateway: FakeGateway) -> None:
    """result.success == false raises MessageRejected with the business code, and no retry."""
    gateway.play(REJECTED_JSON)

    with pytest.raises(MessageRejected) as info:
        client.send_mobile(**SEED_KWARGS)

    error = info.value
    assert (
        "MSG_KEY_CONFLICT",
        "msg_key was used for a different event",
        REQUEST_ID,
        SEED_EVENT.msg_key,
    ) == (error.error_code, error.error_msg, error.request_id, error.msg_key)
    assert 1 == len(gateway.calls)


def test_transport_failures_are_retried_with_the_same_msg_key(
    gateway: FakeGateway, clock: FakeClock
) -> None:
    """Two failed attempts then a success give one SendResult; all three carry one event."""
    clock.tick = 1.0  # every reading moves on, so each attempt has its own timestamp
    gateway.play(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), SEED_SUCCESS_JSON)

    with _client(gateway, clock) as client:
        result = client.send_mobile(**MINIMAL_KWARGS)

    assert REQUEST_ID == result.request_id
    assert 3 == len(gateway.calls)
    assert 1 == len({call["mobile_receiver_message_event"] for call in gateway.calls})
    assert [result.msg_key] * 3 == [event["msg_key"] for event in gateway.events()]
    assert 3 == len({call["timestamp"] for call in gateway.calls})
    assert 3 == len({call["sign"] for call in gateway.calls})
    assert 2 == len(clock.sleeps)


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_server_statuses_are_retried_then_raised(
    status: int, client: Client, gateway: FakeGateway
) -> None:
    """A 5xx, 429 or 408 on every attempt raises HTTPStatusError after max_retries retries."""
    gateway.play(*[httpx.Response(status)] * 3)

    with pytest.raises(HTTPStatusError) as info:
        client.send_mobile(**SEED_KWARGS)

    assert status == info.value.status_code
    assert 3 == len(gateway.calls)


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_statuses_are_not_retried(status: int, client: Client, gateway: FakeGateway) -> None:
    """A 4xx other than 408/429 will not change on a retry and is raised at once."""
    gateway.play(httpx.Response(status))

    with pytest.raises(HTTPStatusError):
        client.send_mobile(**SEED_KWARGS)

    assert 1 == len(gateway.calls)


@pytest.mark.parametrize(
    "fault",
    [
        error_json(10, "Service Currently Unavailable"),
        error_json(10, "Service Currently Unavailable", "isp.unknown-error"),
        ISP_FAULT,
        error_json(15, "Remote service error", "isp.top-remote-service-unavailable"),
        b"<html>proxy error</html>",
    ],
)
def test_platform_faults_are_retried(fault: bytes, client: Client, gateway: FakeGateway) -> None:
    """Code 10, code 15 with an isp.* sub_code and unreadable bodies are retried."""
    gateway.play(fault, SEED_SUCCESS_JSON)

    assert REQUEST_ID == client.send_mobile(**SEED_KWARGS).request_id
    assert 2 == len(gateway.calls)


@pytest.mark.parametrize(
    "answer",
    [
        error_json(15, "Remote service error", "isv.MOBILE_NUMBER_ILLEGAL", "号码格式错误"),
        error_json(50, "Remote service error", "isv.invalid-parameter", "非法参数:sender"),
        error_json(25, "Invalid signature"),
        error_json(31, "Invalid timestamp"),
        error_json(7, "App Call Limited", "accesscontrol.limited-by-app-access-count"),
    ],
)
def test_caller_errors_are_raised_at_once(
    answer: bytes, client: Client, gateway: FakeGateway, clock: FakeClock
) -> None:
    """Errors the caller must fix, and bans of unknown length, are not retried."""
    gateway.play(answer)

    with pytest.raises(TopApiError):
        client.send_mobile(**SEED_KWARGS)

    assert (1, []) == (len(gateway.calls), clock.sleeps)


def test_short_ban_is_waited_out(client: Client, gateway: FakeGateway, clock: FakeClock) -> None:
    """Code 7 whose ban ends within 5 s is retried after at least the ban's length."""
    gateway.play(SHORT_BAN, SEED_SUCCESS_JSON)

    client.send_mobile(**SEED_KWARGS)

    [slept] = clock.sleeps
    assert 2.0 < slept <= 2.0 + BACKOFF_BASE
    assert 2 == len(gateway.calls)


def test_long_ban_is_raised_at_once(client: Client, gateway: FakeGateway, clock: FakeClock) -> None:
    """Code 7 whose ban lasts longer than 5 s is raised, its length on ban_seconds."""
    gateway.play(
        error_json(
            7, "App Call Limited", "accesscontrol.limited-by-app-access-count",
            "This ban will last for 31062 more seconds",
        )
    )  # fmt: skip

    with pytest.raises(TopApiError) as info:
        client.send_mobile(**SEED_KWARGS)

    assert (7, 31062, []) == (info.value.code, info.value.ban_seconds, clock.sleeps)


def test_last_error_is_raised_when_retries_run_out(client: Client, gateway: FakeGateway) -> None:
    """After max_retries retries the last attempt's error is raised."""
    gateway.play(httpx.ConnectError("a"), httpx.ConnectError("b"), httpx.ReadTimeout("c"))

    with pytest.raises(TransportTimeout, match="c"):
        client.send_mobile(**SEED_KWARGS)


def test_max_retries_zero_makes_one_attempt(gateway: FakeGateway, clock: FakeClock) -> None:
    """With max_retries=0 the first failure is raised."""
    gateway.play(httpx.ConnectError("refused"))

    with _client(gateway, clock, max_retries=0) as client, pytest.raises(NetworkError):
        client.send_mobile(**SEED_KWARGS)

    assert 1 == len(gateway.calls)


def test_backoff_grows_with_jitter_and_stays_short(gateway: FakeGateway, clock: FakeClock) -> None:
    """Waits double from attempt to attempt, jittered within the upper half, capped."""
    gateway.play(*[httpx.Response(503)] * 7)

    with _client(gateway, clock, max_retries=6) as client, pytest.raises(HTTPStatusError):
        client.send_mobile(**SEED_KWARGS)

    ceilings = [min(BACKOFF_CAP, BACKOFF_BASE * 2**n) for n in range(6)]
    assert 6 == len(clock.sleeps)
    assert all(c / 2 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    assert BACKOFF_CAP >= max(clock.sleeps)


def test_negative_max_retries_is_refused() -> None:
    """max_retries below zero raises ValueError."""
    with pytest.raises(ValueError, match="max_retries"):
        Client(URL, APP_KEY, SECRET, max_retries=-1)


def test_a_result_without_success_is_an_invalid_answer(
    gateway: FakeGateway, clock: FakeClock
) -> None:
    """An envelope whose result lacks a boolean success raises InvalidAnswer."""
    gateway.play(b'{"alibaba_iwork_mc_msg_sendmobile_response":{"result":{"content":true}}}')

    with _client(gateway, clock, max_retries=0) as client, pytest.raises(InvalidAnswer):
        client.send_mobile(**SEED_KWARGS)


def test_an_unencodable_event_is_not_sent(client: Client, gateway: FakeGateway) -> None:
    """A field of the wrong type is refused before any request."""
    with pytest.raises(ValueError, match="sender"):
        client.send_mobile(**{**SEED_KWARGS, "sender": 1.5})

    assert [] == gateway.requests
