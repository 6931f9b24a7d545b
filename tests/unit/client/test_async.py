"""The asyncio twins: AsyncTopClient.execute and AsyncClient.send_mobile behave as the sync ones."""

from __future__ import annotations

import httpx
import pytest

from iwork_mc.client import (
    AlibabaIworkMcMsgSendmobileRequest,
    AsyncClient,
    AsyncTopClient,
    HTTPStatusError,
    MessageRejected,
    NetworkError,
    SendResult,
    TopApiError,
)

from ._support import (
    APP_KEY,
    REJECTED_JSON,
    REQUEST_ID,
    SECRET,
    SEED_ERROR_JSON,
    SEED_ERROR_XML,
    SEED_EVENT,
    SEED_EVENT_JAVA_JSON,
    SEED_RESULT,
    SEED_SUCCESS_JSON,
    SEED_SUCCESS_SIMPLIFIED,
    SEED_SUCCESS_XML,
    URL,
    FakeClock,
    FakeGateway,
)

REQUEST = AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT)
SEED_ANSWER = {"result": SEED_RESULT, "request_id": REQUEST_ID}
KWARGS = {
    "mobile_receiver": "13888888888",
    "json_data": {"name": "张三"},
    "source": "iwork",
    "action": "iwork-action",
    "sender": 10000,
}


async def test_json_success_returns_the_response_object(
    async_top_client: AsyncTopClient, gateway: FakeGateway
) -> None:
    """A JSON success answer yields the inner response object."""
    gateway.play(SEED_SUCCESS_JSON)

    assert SEED_ANSWER == await async_top_client.execute(REQUEST)
    assert SEED_EVENT_JAVA_JSON == gateway.calls[0]["mobile_receiver_message_event"]


@pytest.mark.parametrize(
    ("fmt", "simplify", "body"),
    [("xml", False, SEED_SUCCESS_XML), ("json", True, SEED_SUCCESS_SIMPLIFIED)],
)
async def test_xml_and_simplified_answers(
    fmt: str, simplify: bool, body: bytes, gateway: FakeGateway, clock: FakeClock
) -> None:
    """XML and simplified JSON answers yield the same object."""
    gateway.play(body)

    async with AsyncTopClient(
        URL, APP_KEY, SECRET, "hmac", fmt,  # type: ignore[arg-type]
        simplify=simplify, transport=gateway.transport(), clock=clock,
    ) as client:  # fmt: skip
        assert SEED_ANSWER == await client.execute(REQUEST)


@pytest.mark.parametrize("body", [SEED_ERROR_JSON, SEED_ERROR_XML], ids=["json", "xml"])
async def test_error_response_raises_top_api_error(
    body: bytes, async_top_client: AsyncTopClient, gateway: FakeGateway
) -> None:
    """An error_response raises TopApiError with every field."""
    gateway.play(body)

    with pytest.raises(TopApiError) as info:
        await async_top_client.execute(REQUEST)

    error = info.value
    assert (50, "Remote service error", "isv.invalid-parameter", "非法参数", REQUEST_ID) == (
        error.code,
        error.msg,
        error.sub_code,
        error.sub_msg,
        error.request_id,
    )


async def test_execute_does_not_retry(
    async_top_client: AsyncTopClient, gateway: FakeGateway
) -> None:
    """A 500 raises HTTPStatusError after one request, and a network error NetworkError."""
    gateway.play(httpx.Response(500), httpx.ConnectError("refused"))

    with pytest.raises(HTTPStatusError):
        await async_top_client.execute(REQUEST)
    with pytest.raises(NetworkError):
        await async_top_client.execute(REQUEST)

    assert 2 == len(gateway.calls)


async def test_send_mobile_returns_a_send_result(
    async_client: AsyncClient, gateway: FakeGateway
) -> None:
    """An accepted message yields its msg_key and the request_id."""
    result = await async_client.send_mobile(**KWARGS, msg_key="k-1")

    sent = gateway.events()[0]["event_time_millis"]
    assert SendResult(msg_key="k-1", event_time_millis=sent, request_id=REQUEST_ID) == result
    assert "k-1" == gateway.events()[0]["msg_key"]


async def test_rejection_raises_message_rejected(
    async_client: AsyncClient, gateway: FakeGateway
) -> None:
    """result.success == false raises MessageRejected."""
    gateway.play(REJECTED_JSON)

    with pytest.raises(MessageRejected) as info:
        await async_client.send_mobile(**KWARGS)

    assert ("MSG_KEY_CONFLICT", REQUEST_ID) == (info.value.error_code, info.value.request_id)


async def test_transport_failures_are_retried_with_the_same_msg_key(
    async_client: AsyncClient, gateway: FakeGateway, clock: FakeClock
) -> None:
    """Two failed attempts then a success give one SendResult; all three carry one msg_key."""
    clock.tick = 1.0
    gateway.play(httpx.ConnectError("refused"), httpx.Response(502), SEED_SUCCESS_JSON)

    result = await async_client.send_mobile(**KWARGS)

    assert REQUEST_ID == result.request_id
    assert [result.msg_key] * 3 == [event["msg_key"] for event in gateway.events()]
    assert 3 == len({call["sign"] for call in gateway.calls})
    assert 2 == len(clock.sleeps)


async def test_status_500_is_raised_after_retries(
    async_client: AsyncClient, gateway: FakeGateway
) -> None:
    """A 500 on every attempt raises HTTPStatusError after three attempts."""
    gateway.play(*[httpx.Response(500)] * 3)

    with pytest.raises(HTTPStatusError):
        await async_client.send_mobile(**KWARGS)

    assert 3 == len(gateway.calls)


async def test_closed_client_sends_nothing(gateway: FakeGateway, clock: FakeClock) -> None:
    """Leaving the async with block closes the pool."""
    async with AsyncClient(URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock) as c:
        await c.send_mobile(**KWARGS)

    with pytest.raises(RuntimeError):
        await c.send_mobile(**KWARGS)
    assert 1 == len(gateway.requests)
