"""The request-head meter: bytes, line length and field count, however the head is split."""

from __future__ import annotations

import pytest

from iwork_mc.gateway.headlimits import HeadLimits, HeadMeter

LIMITS = HeadLimits(max_bytes=1_000, max_line_bytes=100, max_fields=5)
HEAD = b"POST /router/rest?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"


def feed_all(chunks: list[bytes], limits: HeadLimits = LIMITS) -> tuple[HeadMeter, str | None]:
    meter = HeadMeter(limits)
    for chunk in chunks:
        refusal = meter.feed(chunk)
        if refusal is not None:
            return meter, refusal
    return meter, None


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1_000])
def test_a_head_in_any_chunking_is_measured_to_its_blank_line(size: int) -> None:
    """The body after the head is not counted, even when a read splits the terminator."""
    data = HEAD + b"abc"
    meter, refusal = feed_all([data[i : i + size] for i in range(0, len(data), size)])
    assert (None, True, len(HEAD)) == (refusal, meter.done, meter.size)


def test_bare_line_feeds_end_a_head_too() -> None:
    meter, refusal = feed_all([b"GET / HTTP/1.1\nHost: x\n\nBODY"])
    assert (None, True) == (refusal, meter.done)


def test_a_head_over_max_bytes_is_refused_before_it_ends() -> None:
    chunks = [b"GET / HTTP/1.1\r\n", *[b"X: " + b"y" * 90 + b"\r\n"] * 20]
    meter, refusal = feed_all(chunks, HeadLimits(max_bytes=1_000, max_fields=100))
    assert refusal == "request head larger than 1000 bytes"
    assert not meter.done


def test_a_long_request_line_is_bounded_by_the_total_only() -> None:
    """A GET may carry a whole event in its query: the request line has no line limit."""
    _, refusal = feed_all([b"GET /?" + b"e" * 900 + b" HTTP/1.1\r\n\r\n"])
    assert refusal is None


def test_a_long_header_line_is_refused_even_before_its_end() -> None:
    _, refusal = feed_all([b"GET / HTTP/1.1\r\nX: ", b"y" * 200])
    assert refusal == "a header line is longer than 100 bytes"


def test_more_fields_than_allowed_are_refused() -> None:
    fields = b"".join(b"X-%d: 1\r\n" % n for n in range(6))
    _, refusal = feed_all([b"GET / HTTP/1.1\r\n" + fields + b"\r\n"])
    assert refusal == "more than 5 header fields"
    exact = b"".join(b"X-%d: 1\r\n" % n for n in range(5))
    assert (None) is feed_all([b"GET / HTTP/1.1\r\n" + exact + b"\r\n"])[1]
