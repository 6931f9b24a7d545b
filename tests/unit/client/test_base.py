"""Unit tests for the pure core in iwork_mc.client._base: retry decisions and error mapping."""

from __future__ import annotations

import pickle
import random

import httpx
import pytest

from iwork_mc.client import (
    HTTPStatusError,
    InvalidAnswer,
    MessageRejected,
    NetworkError,
    SDKError,
    TopApiError,
    TransportError,
    TransportTimeout,
)
from iwork_mc.client._base import map_httpx_exceptions, retry_delay


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (NetworkError("reset"), True),
        (TransportTimeout("slow"), True),
        (InvalidAnswer("html"), True),
        (HTTPStatusError(500), True),
        (HTTPStatusError(429), True),
        (HTTPStatusError(404), False),
        (TopApiError(10, "Service Currently Unavailable"), True),
        (TopApiError(15, "Remote service error", "isp.unknown-error"), True),
        (TopApiError(15, "Remote service error", "isv.MOBILE_NUMBER_ILLEGAL"), False),
        (TopApiError(15, "Remote service error"), False),
        (TopApiError(50, "Remote service error", "isp.unknown-error"), False),
        (TopApiError(7, "App Call Limited", sub_msg="This ban will last for 5 more seconds"), True),
        (
            TopApiError(7, "App Call Limited", sub_msg="This ban will last for 6 more seconds"),
            False,
        ),
        (TopApiError(7, "App Call Limited", sub_msg="x, will last 1 more second"), True),
        (TopApiError(7, "App Call Limited"), False),
        (TopApiError(25, "Invalid signature"), False),
        (MessageRejected("MSG_KEY_CONFLICT", "conflict"), False),
        (ValueError("not ours"), False),
    ],
    ids=str,
)
def test_retry_delay_decides_what_is_retried(error: Exception, retried: bool) -> None:
    """Transport errors and platform faults get a delay; caller errors get None."""
    delay = retry_delay(error, 0, rng=random.Random(0))

    assert retried == (delay is not None)


def test_retry_delay_waits_out_a_short_ban() -> None:
    """A short code 7 ban waits its seconds plus a little jitter."""
    error = TopApiError(7, "App Call Limited", sub_msg="This ban will last for 3 more seconds")

    delay = retry_delay(error, 1, rng=random.Random(0))

    assert delay is not None
    assert 3.0 < delay <= 3.5


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectTimeout("t"), TransportTimeout),
        (httpx.PoolTimeout("t"), TransportTimeout),
        (httpx.ConnectError("c"), NetworkError),
        (httpx.RemoteProtocolError("p"), NetworkError),
        (httpx.ProxyError("p"), NetworkError),
        (httpx.DecodingError("gzip"), InvalidAnswer),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_httpx_errors_are_mapped_at_the_boundary(
    raised: Exception, expected: type[TransportError]
) -> None:
    """Each httpx request error becomes the matching TransportError, chained to the original."""
    with pytest.raises(expected) as info, map_httpx_exceptions():
        raise raised

    assert raised is info.value.__cause__


def test_other_errors_pass_the_boundary_unchanged() -> None:
    """Errors that are not httpx request errors are not translated."""
    with pytest.raises(KeyError), map_httpx_exceptions():
        raise KeyError("x")


def test_every_sdk_error_shares_one_base() -> None:
    """Catching SDKError catches everything the SDK raises on purpose."""
    for cls in (TransportError, TopApiError, MessageRejected, HTTPStatusError, InvalidAnswer):
        assert issubclass(cls, SDKError)


def test_exceptions_survive_pickling() -> None:
    """Exceptions with fields can cross process boundaries intact."""
    error = TopApiError(50, "Remote service error", "isv.invalid-parameter", "非法参数", "r1")

    copy = pickle.loads(pickle.dumps(error))

    assert (str(error), error.sub_code, error.request_id) == (
        str(copy),
        copy.sub_code,
        copy.request_id,
    )
