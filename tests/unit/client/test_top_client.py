"""Unit tests for TopClient.execute: answers, error_response, transport failures (spec §5, §6)."""

from __future__ import annotations

import httpx
import pytest

from iwork_mc.client import (
    AlibabaIworkMcMsgSendmobileRequest,
    HTTPStatusError,
    InvalidAnswer,
    InvalidRequest,
    NetworkError,
    TopApiError,
    TopClient,
    TransportError,
    TransportTimeout,
)

from ._support import (
    APP_KEY,
    REQUEST_ID,
    SECRET,
    SEED_ERROR_JSON,
    SEED_ERROR_XML,
    SEED_EVENT,
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


def test_json_success_returns_the_response_object(
    top_client: TopClient, gateway: FakeGateway
) -> None:
    """A JSON success answer yields the inner alibaba_iwork_mc_msg_sendmobile_response object."""
    gateway.play(SEED_SUCCESS_JSON)

    assert SEED_ANSWER == top_client.execute(REQUEST)


def test_xml_success_returns_the_same_object(gateway: FakeGateway, clock: FakeClock) -> None:
    """An XML answer yields the same object, booleans typed, with format=xml sent."""
    gateway.play(SEED_SUCCESS_XML)

    with TopClient(
        URL, APP_KEY, SECRET, "md5", "xml", transport=gateway.transport(), clock=clock
    ) as client:
        answer = client.execute(REQUEST)

    assert SEED_ANSWER == answer
    assert ("xml", "md5") == (gateway.calls[0]["format"], gateway.calls[0]["sign_method"])


def test_simplified_success_returns_the_bare_object(gateway: FakeGateway, clock: FakeClock) -> None:
    """With simplify, the answer has no root wrapper and is returned as it is."""
    gateway.play(SEED_SUCCESS_SIMPLIFIED)

    with TopClient(
        URL, APP_KEY, SECRET, simplify=True, transport=gateway.transport(), clock=clock
    ) as client:
        assert SEED_ANSWER == client.execute(REQUEST)


@pytest.mark.parametrize("body", [SEED_ERROR_JSON, SEED_ERROR_XML], ids=["json", "xml"])
@pytest.mark.parametrize("simplify", [False, True])
def test_error_response_raises_top_api_error(
    body: bytes, simplify: bool, gateway: FakeGateway, clock: FakeClock
) -> None:
    """An error_response raises TopApiError with every field, whatever the format or simplify."""
    gateway.play(body)

    with (
        TopClient(
            URL, APP_KEY, SECRET, simplify=simplify, transport=gateway.transport(), clock=clock
        ) as client,
        pytest.raises(TopApiError) as info,
    ):
        client.execute(REQUEST)

    error = info.value
    assert (50, "Remote service error", "isv.invalid-parameter", "非法参数", REQUEST_ID) == (
        error.code,
        error.msg,
        error.sub_code,
        error.sub_msg,
        error.request_id,
    )
    assert "50 Remote service error | isv.invalid-parameter | 非法参数 | request_id=abc123" == str(
        error
    )


def test_error_response_without_optional_fields(
    top_client: TopClient, gateway: FakeGateway
) -> None:
    """An error_response with only code and msg leaves the other fields None."""
    gateway.play(b'{"error_response":{"code":25,"msg":"Invalid signature"}}')

    with pytest.raises(TopApiError) as info:
        top_client.execute(REQUEST)

    error = info.value
    assert (25, "Invalid signature", None, None, None) == (
        error.code,
        error.msg,
        error.sub_code,
        error.sub_msg,
        error.request_id,
    )


def test_ban_seconds_is_read_from_sub_msg(top_client: TopClient, gateway: FakeGateway) -> None:
    """A code 7 answer tells how long its ban lasts."""
    gateway.play(
        b'{"error_response":{"code":7,"msg":"App Call Limited",'
        b'"sub_code":"accesscontrol.limited-by-app-access-count",'
        b'"sub_msg":"This ban will last for 31062 more seconds"}}'
    )

    with pytest.raises(TopApiError) as info:
        top_client.execute(REQUEST)

    assert (7, 31062) == (info.value.code, info.value.ban_seconds)


def test_an_answer_in_the_other_format_is_read(top_client: TopClient, gateway: FakeGateway) -> None:
    """An XML error_response to a JSON request is still read as an error_response."""
    gateway.play(SEED_ERROR_XML)

    with pytest.raises(TopApiError) as info:
        top_client.execute(REQUEST)

    assert 50 == info.value.code


@pytest.mark.parametrize("status", [500, 502, 404])
def test_non_200_status_raises_http_status_error(
    status: int, top_client: TopClient, gateway: FakeGateway
) -> None:
    """A status other than 200 is a transport failure, and execute does not retry."""
    gateway.play(httpx.Response(status, text="upstream trouble"))

    with pytest.raises(HTTPStatusError) as info:
        top_client.execute(REQUEST)

    assert (status, "upstream trouble") == (info.value.status_code, info.value.body)
    assert isinstance(info.value, TransportError)
    assert 1 == len(gateway.calls)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html",
        b"not json",
        b"[1, 2]",
        b'{"something_else_response":{}}',
        b'{"error_response":{"code":"x","msg":"?"}}',
        b"",
    ],
)
def test_an_unreadable_body_raises_invalid_answer(
    body: bytes, top_client: TopClient, gateway: FakeGateway
) -> None:
    """A 200 body that is not a TOP answer for the method raises InvalidAnswer."""
    gateway.play(body)

    with pytest.raises(InvalidAnswer):
        top_client.execute(REQUEST)


def test_network_error_is_mapped_with_its_cause(
    top_client: TopClient, gateway: FakeGateway
) -> None:
    """An httpx connection error becomes NetworkError, the original kept on __cause__."""
    cause = httpx.ConnectError("connection refused")
    gateway.play(cause)

    with pytest.raises(NetworkError) as info:
        top_client.execute(REQUEST)

    assert cause is info.value.__cause__
    assert "connection refused" == str(info.value)


def test_timeout_is_mapped(top_client: TopClient, gateway: FakeGateway) -> None:
    """An httpx timeout becomes TransportTimeout."""
    gateway.play(httpx.ReadTimeout("read timed out"))

    with pytest.raises(TransportTimeout) as info:
        top_client.execute(REQUEST)

    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_a_request_without_event_is_not_sent(top_client: TopClient, gateway: FakeGateway) -> None:
    """InvalidRequest is raised before any I/O."""
    with pytest.raises(InvalidRequest):
        top_client.execute(AlibabaIworkMcMsgSendmobileRequest())

    assert [] == gateway.requests


@pytest.mark.parametrize(
    ("sign_method", "fmt"), [("sha1", "json"), ("md5", "yaml"), ("MD5", "json")]
)
def test_unknown_settings_are_refused(sign_method: str, fmt: str) -> None:
    """An unknown sign_method or format raises ValueError at construction."""
    with pytest.raises(ValueError, match="must be one of"):
        TopClient(URL, APP_KEY, SECRET, sign_method, fmt)  # type: ignore[arg-type]


def test_closed_client_sends_nothing(gateway: FakeGateway, clock: FakeClock) -> None:
    """Leaving the with block closes the pool; later calls fail without sending."""
    with TopClient(URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock) as client:
        client.execute(REQUEST)

    with pytest.raises(RuntimeError):
        client.execute(REQUEST)
    assert 1 == len(gateway.requests)


def test_xml_messages_that_read_as_booleans_stay_text(
    top_client: TopClient, gateway: FakeGateway
) -> None:
    """An XML sub_msg of 'true' is reported as the text it was, as in JSON."""
    gateway.play(
        b"<error_response><code>15</code><msg>Remote service error</msg>"
        b"<sub_code>isv.X</sub_code><sub_msg>true</sub_msg></error_response>"
    )

    with pytest.raises(TopApiError) as info:
        top_client.execute(REQUEST)

    assert "true" == info.value.sub_msg
