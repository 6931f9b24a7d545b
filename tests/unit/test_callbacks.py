"""Unit tests for iwork_mc.callbacks: the body, the signature, verification and retries.

Integration tests (a real receiver on 127.0.0.1, both stores) are in
tests/integration/test_callback_sender.py.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iwork_mc import callbacks
from iwork_mc.callback_targets import AllowList
from iwork_mc.callbacks import (
    CALLBACK_RETRY,
    InvalidCallbackURL,
    Outcome,
    callback_headers,
    check_callback_url,
    classify_status,
    event_body,
    iso8601,
    next_retry_at_ms,
    parse_retry_after,
    sign,
    signature_header,
)
from iwork_mc.messages import MessageStatus, StatusEvent
from iwork_mc.retry import RetryPolicy

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "callbacks.md"
SECRET = "b20e2ba180bd94b91cc4eb42d487d748"
OLD_SECRET = "0123456789abcdef0123456789abcdef"
NOW = 1_700_000_003_000

Verify = Callable[..., bool]


def make_event(**overrides: Any) -> StatusEvent:
    fields: dict[str, Any] = {
        "id": 42,
        "message_id": 7,
        "app_key": "12345678",
        "msg_key": "visit-1",
        "status": MessageStatus.SUBMITTED,
        "at_ms": 1_700_000_000_000,
        "url": "https://visitors.example.com/iwork-mc/status?token=t0ps3cret",
        "attempts": 1,
        "detail": {"attempt": 1, "channel": "smpp", "ref": "4f2a"},
    }
    return StatusEvent(**(fields | overrides))


def documented_verify() -> Verify:
    """The receiver's function, run from the how-to's snippet, with nothing of iwork_mc."""
    text = DOC.read_text(encoding="utf-8")
    marker = text.index("<!-- verify-snippet")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None
    namespace: dict[str, Any] = {"__name__": "receiver"}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    verify: Verify = namespace["verify_signature"]
    return verify


VERIFIERS = [
    pytest.param(callbacks.verify_signature, id="iwork_mc"),
    pytest.param(documented_verify(), id="docs-snippet"),
]


# -- the body -----------------------------------------------------------------


def test_body_is_compact_sorted_json_with_every_field() -> None:
    """The body holds the ids, the status, both forms of the instant and the detail."""
    body = event_body(make_event())

    assert {
        "type": "message.status",
        "event_id": 42,
        "message_id": 7,
        "app_key": "12345678",
        "msg_key": "visit-1",
        "status": "submitted",
        "final": False,
        "at_ms": 1_700_000_000_000,
        "at": "2023-11-14T22:13:20.000Z",
        "detail": {"attempt": 1, "channel": "smpp", "ref": "4f2a"},
    } == json.loads(body)
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()


def test_body_is_the_same_bytes_every_time() -> None:
    """Retries resend the same bytes: only the timestamp and the signature change."""
    assert event_body(make_event()) == event_body(make_event(attempts=5))


@pytest.mark.parametrize("status", list(MessageStatus))
def test_final_flag_follows_the_status(status: MessageStatus) -> None:
    """``final`` is true exactly for the statuses a message never leaves on its own."""
    expected = status in {"delivered", "failed", "expired", "rejected"}
    assert expected is json.loads(event_body(make_event(status=status)))["final"]


def test_body_carries_no_number_no_text_and_no_url() -> None:
    """Personal keys in a detail are dropped; the URL (it may hold a token) is never sent."""
    event = make_event(
        detail={
            "mobile_receiver": "+8613888888888",
            "to": "138****8888",
            "text": "您的访客已到达",
            "json_data": '{"name": "张三"}',
            "error": "ESME_RINVDSTADR",
        }
    )
    body = event_body(event).decode()

    assert {"error": "ESME_RINVDSTADR"} == json.loads(body)["detail"]
    for leak in ("13888888888", "8888", "访客", "张三", "t0ps3cret", "example.com"):
        assert leak not in body


def test_body_keeps_non_ascii_as_utf8() -> None:
    """Non-ASCII detail text is sent as UTF-8, not as \\u escapes."""
    body = event_body(make_event(detail={"error": "号码不存在"}))
    assert "号码不存在".encode() in body


@pytest.mark.parametrize(
    ("at_ms", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
    ],
)
def test_iso8601_is_utc_to_the_millisecond(at_ms: int, expected: str) -> None:
    """The ISO form ends in ``Z`` and keeps milliseconds."""
    assert expected == iso8601(at_ms)


# -- signing ------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """``v1`` is lowercase hex HMAC-SHA256 of ``"{timestamp}.{body}"`` keyed with the secret."""
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000003000." + body, hashlib.sha256).hexdigest()

    assert expected == sign(SECRET, NOW, body)
    assert f"v1={expected}" == signature_header([SECRET], NOW, body)


def test_header_signs_with_every_valid_secret_current_first() -> None:
    """During a rotation's grace period the header carries one ``v1=`` per secret."""
    body = event_body(make_event())
    header = signature_header([SECRET, OLD_SECRET], NOW, body)

    assert f"v1={sign(SECRET, NOW, body)} v1={sign(OLD_SECRET, NOW, body)}" == header


def test_signing_without_a_secret_is_refused() -> None:
    """An empty list of secrets is a bug, not an unsigned callback."""
    with pytest.raises(ValueError, match="secret"):
        signature_header([], NOW, b"{}")


def test_headers() -> None:
    """The POST carries the event id, the sending time, the signature and the try number."""
    event = make_event()
    body = event_body(event)
    headers = callback_headers(event, secrets=[SECRET], timestamp_ms=NOW, body=body, attempt=3)

    assert {
        "Content-Type": "application/json; charset=utf-8",
        "X-Iwork-Event-Id": "42",
        "X-Iwork-Timestamp": "1700000003000",
        "X-Iwork-Signature": signature_header([SECRET], NOW, body),
        "X-Iwork-Attempt": "3",
    } == headers


def test_documented_example_is_reproducible() -> None:
    """The how-to's example request is exactly what iwork-mc sends for that event."""
    doc = DOC.read_text(encoding="utf-8")
    body = event_body(make_event())
    header = signature_header([SECRET], NOW, body)

    assert body.decode() in doc
    assert f"X-Iwork-Signature: {header}\n" in doc
    assert f"X-Iwork-Timestamp: {NOW}\n" in doc


# -- verifying (the iwork_mc function and the documented copy alike) ----------


def signed(body: bytes = b'{"event_id":42}', *secrets: str) -> tuple[str, bytes, str]:
    return str(NOW), body, signature_header(list(secrets) or [SECRET], NOW, body)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_accepts_a_genuine_callback(verify: Verify) -> None:
    """A callback signed with the secret, sent just now, verifies."""
    timestamp, body, header = signed()
    assert verify(SECRET, timestamp, body, header, NOW + 1_000)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_rejects_a_tampered_body(verify: Verify) -> None:
    """One changed byte of the body breaks the signature."""
    timestamp, _, header = signed(b'{"status":"failed"}')
    assert not verify(SECRET, timestamp, b'{"status":"delivered"}', header, NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_rejects_a_tampered_timestamp(verify: Verify) -> None:
    """The timestamp is signed: moving it forward (to replay later) breaks the signature."""
    _, body, header = signed()
    assert not verify(SECRET, str(NOW + 60_000), body, header, NOW + 60_000)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_rejects_the_wrong_secret(verify: Verify) -> None:
    """Another app's secret does not verify."""
    timestamp, body, header = signed()
    assert not verify(OLD_SECRET, timestamp, body, header, NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    ("skew_ms", "ok"),
    [(300_000, True), (300_001, False), (-300_000, True), (-300_001, False), (86_400_000, False)],
    ids=["5-min-old", "too-old", "5-min-ahead", "too-far-ahead", "a-day-old"],
)
def test_verify_rejects_stale_timestamps(verify: Verify, skew_ms: int, ok: bool) -> None:
    """A genuine signature older (or newer) than the tolerance is refused: no replays."""
    timestamp, body, header = signed()
    assert ok is verify(SECRET, timestamp, body, header, NOW + skew_ms)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_honours_a_custom_tolerance(verify: Verify) -> None:
    """The receiver chooses the window."""
    timestamp, body, header = signed()
    assert not verify(SECRET, timestamp, body, header, NOW + 2_000, 1_000)
    assert verify(SECRET, timestamp, body, header, NOW + 2_000, 3_000)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_verify_accepts_either_secret_during_rotation(verify: Verify) -> None:
    """A receiver holding the old secret, or the new one, verifies a rotation-time callback."""
    timestamp, body, header = signed(b"{}", SECRET, OLD_SECRET)
    assert verify(SECRET, timestamp, body, header, NOW)
    assert verify(OLD_SECRET, timestamp, body, header, NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    ("timestamp", "header"),
    [
        ("", "v1={sig}"),
        ("17e11", "v1={sig}"),
        ("-1700000003000", "v1={sig}"),
        ("１７００", "v1={sig}"),
        ("{ts}", ""),
        ("{ts}", "{sig}"),
        ("{ts}", "v0={sig}"),
        ("{ts}", "v1="),
        ("{ts}", "v1=签名"),
    ],
)
def test_verify_rejects_malformed_headers(verify: Verify, timestamp: str, header: str) -> None:
    """Garbage in either header is a refusal, never an exception."""
    _, body, good = signed()
    sig = good.removeprefix("v1=")
    assert not verify(SECRET, timestamp.format(ts=NOW), body, header.format(sig=sig), NOW)


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize(
    "layout",
    ["{sig}", "v2=abc {sig}", "{sig},v1=00", " {sig} ", "{upper}"],
    ids=["plain", "unknown-version-first", "comma-list", "padded", "uppercase-hex"],
)
def test_verify_tolerates_header_layouts(verify: Verify, layout: str) -> None:
    """Unknown versions are skipped; spaces or commas separate; hex case does not matter."""
    timestamp, body, good = signed()
    header = layout.format(sig=good, upper="v1=" + good.removeprefix("v1=").upper())
    assert verify(SECRET, timestamp, body, header, NOW)


# -- answers and retries ------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (301, Outcome.RETRY),
        (307, Outcome.RETRY),
        (400, Outcome.RETRY),
        (401, Outcome.RETRY),
        (404, Outcome.RETRY),
        (410, Outcome.GIVE_UP),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
    ],
)
def test_classify_status(status_code: int, outcome: Outcome) -> None:
    """2xx delivers, 410 gives up, everything else (redirects too) is retried."""
    assert outcome == classify_status(status_code)


def test_schedule_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    """Try n+1 comes between half and all of min(1 h, 5 s * 2**(n-1)) after try n."""
    rng = random.Random(1)
    for attempts in range(1, CALLBACK_RETRY.max_attempts):
        ceiling_ms = min(3_600_000, 5_000 * 2 ** (attempts - 1))
        delays = [next_retry_at_ms(CALLBACK_RETRY, attempts, NOW, rng) for _ in range(50)]
        assert all(d is not None and ceiling_ms / 2 <= d - NOW <= ceiling_ms for d in delays)
        assert len(set(delays)) > 1, "jitter spreads the retries"


def test_schedule_gives_up_after_max_attempts() -> None:
    """The 16th failed try is the last: nothing is scheduled after it."""
    rng = random.Random(1)
    assert 16 == CALLBACK_RETRY.max_attempts
    assert next_retry_at_ms(CALLBACK_RETRY, 15, NOW, rng) is not None
    assert next_retry_at_ms(CALLBACK_RETRY, 16, NOW, rng) is None


def test_whole_schedule_spans_hours() -> None:
    """The last try comes between 3.2 and 6.4 hours after the first."""
    low = high = 0.0
    for attempts in range(1, CALLBACK_RETRY.max_attempts):
        ceiling = min(CALLBACK_RETRY.max_delay_s, CALLBACK_RETRY.base_s * 2 ** (attempts - 1))
        low, high = low + ceiling / 2, high + ceiling
    assert (3.2, 6.4) == (round(low / 3600, 1), round(high / 3600, 1))


@pytest.mark.parametrize(
    ("retry_after_s", "expected_at_least_ms"),
    [(None, 0), (1, 0), (600, 600_000), (86_400, 3_600_000)],
    ids=["absent", "shorter-than-backoff", "longer", "capped"],
)
def test_retry_after_only_pushes_later(
    retry_after_s: float | None, expected_at_least_ms: int
) -> None:
    """Retry-After delays the next try, never advances it, and never past the cap."""
    policy = RetryPolicy(base_s=10.0, max_delay_s=3600.0, max_attempts=5)
    plain = next_retry_at_ms(policy, 1, NOW, random.Random(3))
    asked = next_retry_at_ms(policy, 1, NOW, random.Random(3), retry_after_s=retry_after_s)
    assert plain is not None and asked is not None
    assert asked == max(plain, NOW + expected_at_least_ms)


def test_retry_after_does_not_revive_a_given_up_event() -> None:
    """After the last try, Retry-After changes nothing."""
    policy = RetryPolicy(base_s=1.0, max_delay_s=1.0, max_attempts=2)
    assert next_retry_at_ms(policy, 2, NOW, random.Random(), retry_after_s=5) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Tue, 14 Nov 2023 22:14:23 GMT", 60.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Seconds or an HTTP date, as seconds from now; anything else is ignored."""
    assert expected == parse_retry_after(value, NOW)


# -- callback URLs ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://visitors.example.com/iwork",
        " http://93.184.215.14:8081/cb?token=x ",
        "https://[2606:4700:4700::1111]/",
        "https://例え.jp/iwork",
    ],
)
def test_check_callback_url_accepts_public_http_urls(url: str) -> None:
    """http and https URLs with a public host are accepted, stripped."""
    assert url.strip() == check_callback_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "must start with http:// or https://"),
        ("example.com/cb", "must start with http:// or https://"),
        ("https:///cb", "has no host"),
        ("https://user:pw@example.com/", "must not carry user:password@"),
        ("https://example.com:99999/", "not a URL"),
        ("https://example.com:0/", "port 0"),
        ("", "must start with http://"),
        ("https://exa mple.com/", "must not contain ' '"),
        ("https://exa\tmple.com/", "must not contain '\\t'"),
        ("https://example.com/a\r\nX-Injected: 1", "must not contain '\\r'"),
        ("https://example.com/\x00", "must not contain '\\x00'"),
        ("https://example.com\u200b/", "must not contain '\\u200b'"),
        ("https://example.com\\@127.0.0.1/", "must not contain '\\\\'"),
        ("https://a..example.com/", "not a valid host name"),
        ("https://%31%32%37.0.0.1/", "not a valid host name"),
    ],
)
def test_check_callback_url_refuses_others(url: str, why: str) -> None:
    """Other schemes, no host, credentials, a bad port or stray characters are refused, saying why."""
    with pytest.raises(InvalidCallbackURL, match=re.escape(why)):
        check_callback_url(url)


def test_check_callback_url_refuses_internal_hosts_unless_allowed() -> None:
    """A loopback receiver is refused by default and accepted once the operator allows it."""
    url = "http://127.0.0.1:8081/cb"
    with pytest.raises(InvalidCallbackURL, match=re.escape("127.0.0.1 is a loopback address")):
        check_callback_url(url)
    assert url == check_callback_url(url, AllowList.parse("127.0.0.1"))
    assert url == check_callback_url(url, AllowList.parse("127.0.0.0/8"))
    with pytest.raises(InvalidCallbackURL, match="loopback"):
        check_callback_url(url, AllowList.parse("10.0.0.0/8, hooks.example.com"))
