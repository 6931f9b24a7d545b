"""Status callbacks: the body, the signature and the retry schedule (pure).

Every status change of a message whose app has a callback URL becomes a
:class:`~iwork_mc.messages.StatusEvent` in the store; the callback sender
(:mod:`iwork_mc.callback_sender`) POSTs it to the app's URL until the
receiver answers 2xx.  This module decides everything about that POST that
needs no network and no clock:

- **The body** (:func:`event_body`): compact UTF-8 JSON with the event id, the
  message's ids, the new status, when it happened (epoch ms and ISO 8601) and
  the timeline detail.  Never the receiver's number nor the message text: a
  callback crosses the network to a URL, and the app already knows both.
- **The signature** (:func:`sign`, :func:`signature_header`): HMAC-SHA256 with
  the app's secret over ``f"{timestamp_ms}.{body}"``, sent as
  ``X-Iwork-Signature: v1=<lowercase hex>``.  The timestamp is the time of
  *sending* (each retry is signed afresh), so a receiver can refuse replays
  older than a few minutes.  While a rotated-out secret is still valid, the
  header carries one ``v1=`` per valid secret, separated by a space, current
  first: a receiver still configured with the old secret keeps verifying.
  The scheme is versioned (``v1``) so another algorithm can be added beside
  it without breaking receivers.
- **Verification** (:func:`verify_signature`): what a receiver runs.  It uses
  only the standard library so it can be copied into a receiver verbatim
  (``docs/howto/callbacks.md`` carries the same function).
- **The outcome of an answer** (:func:`classify_status`) and **when to try
  again** (:func:`next_retry_at_ms`, :data:`CALLBACK_RETRY`).
- **Whether a URL may be set** (:func:`check_callback_url`): its shape here,
  its host by :mod:`iwork_mc.callback_targets` (public, or allowed by the operator).
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import random
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from iwork_mc.callback_targets import AllowList, TargetRefused, check_host
from iwork_mc.messages import FINAL_STATUSES, StatusEvent
from iwork_mc.retry import RetryPolicy

__all__ = [
    "ATTEMPT_HEADER",
    "CALLBACK_RETRY",
    "DEFAULT_TOLERANCE_MS",
    "EVENT_ID_HEADER",
    "EVENT_TYPE",
    "MAX_CALLBACK_URL",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "InvalidCallbackURL",
    "Outcome",
    "callback_headers",
    "check_callback_url",
    "classify_status",
    "event_body",
    "iso8601",
    "next_retry_at_ms",
    "parse_retry_after",
    "sign",
    "signature_header",
    "verify_signature",
]

EVENT_ID_HEADER = "X-Iwork-Event-Id"
TIMESTAMP_HEADER = "X-Iwork-Timestamp"
SIGNATURE_HEADER = "X-Iwork-Signature"
#: Which try this POST is (1 for the first); informative, not signed.
ATTEMPT_HEADER = "X-Iwork-Attempt"

#: The body's ``type``: one kind of event today, named so others can follow.
EVENT_TYPE = "message.status"

#: How far a receiver should let ``X-Iwork-Timestamp`` be from its own clock.
DEFAULT_TOLERANCE_MS = 5 * 60 * 1000

#: The callback schedule: try n waits between half and all of
#: ``min(1 h, 5 s * 2**(n-1))`` after try n; 16 tries in all, the last between
#: 3.2 and 6.4 hours after the first (long enough to ride out a receiver's
#: deploy or an evening outage, short enough that a status is still news).
CALLBACK_RETRY = RetryPolicy(base_s=5.0, max_delay_s=3600.0, max_attempts=16)

#: Detail keys that may name a person, dropped from the body however they got
#: into the timeline (today's channels write none of them).
_PERSONAL_KEYS = frozenset(
    {"mobile_receiver", "receiver", "to", "phone", "number", "text", "json_data", "message"}
)


class Outcome(StrEnum):
    DELIVERED = "delivered"  #: 2xx: the receiver has the event; never sent again
    RETRY = "retry"  #: Any other answer, a timeout or a network error: try again later
    GIVE_UP = "give_up"  #: 410 Gone: the receiver says it will never take it


#: The longest callback URL accepted (as long as an event's resource_url).
MAX_CALLBACK_URL = 2048


class InvalidCallbackURL(ValueError):
    """A callback URL that cannot or may not be POSTed to (scheme, host, credentials…)."""


def iso8601(at_ms: int) -> str:
    """``1700000000000`` → ``2023-11-14T22:13:20.000Z`` (UTC, millisecond precision)."""
    moment = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(event: StatusEvent) -> bytes:
    """The JSON body POSTed for ``event``, exactly the bytes that are signed.

    Keys are sorted and the JSON is compact, so the same event always gives the
    same bytes (only the signature and timestamp change between retries)::

        {"app_key":"12345678","at":"2023-11-14T22:13:20.000Z","at_ms":1700000000000,
         "detail":{"channel":"smpp","ref":"4f2a"},"event_id":42,"final":true,
         "message_id":7,"msg_key":"visit-1","status":"delivered","type":"message.status"}
    """
    document = {
        "type": EVENT_TYPE,
        "event_id": event.id,
        "message_id": event.message_id,
        "app_key": event.app_key,
        "msg_key": event.msg_key,
        "status": str(event.status),
        "final": event.status in FINAL_STATUSES,
        "at_ms": event.at_ms,
        "at": iso8601(event.at_ms),
        "detail": _public_detail(event.detail),
    }
    return json.dumps(
        document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


def _public_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in detail.items() if key not in _PERSONAL_KEYS}


def sign(secret: str, timestamp_ms: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``f"{timestamp_ms}.{body}"`` with ``secret``."""
    payload = str(timestamp_ms).encode() + b"." + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp_ms: int, body: bytes) -> str:
    """``v1=<hex>`` for each secret, space-separated, in the given order (current first)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign a callback")
    return " ".join(f"v1={sign(secret, timestamp_ms, body)}" for secret in secrets)


def callback_headers(
    event: StatusEvent, *, secrets: Sequence[str], timestamp_ms: int, body: bytes, attempt: int
) -> dict[str, str]:
    """Every header of the POST except ``User-Agent`` (the HTTP client's)."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        EVENT_ID_HEADER: str(event.id),
        TIMESTAMP_HEADER: str(timestamp_ms),
        SIGNATURE_HEADER: signature_header(secrets, timestamp_ms, body),
        ATTEMPT_HEADER: str(attempt),
    }


# verify_signature uses only hmac and hashlib, so receivers can copy it as it is;
# docs/howto/callbacks.md carries the same text and a test keeps the two equal.
def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    now_ms: int,
    tolerance_ms: int = 300_000,
) -> bool:
    """Whether an iwork-mc callback is authentic and fresh.

    secret:    the app's secret.
    timestamp: the X-Iwork-Timestamp header (epoch milliseconds, as text).
    body:      the raw request body, as bytes, before any JSON parsing.
    header:    the X-Iwork-Signature header ("v1=<hex>", maybe several).
    now_ms:    the receiver's clock, epoch milliseconds.
    """
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now_ms - int(timestamp)) > tolerance_ms:
        return False
    payload = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    for item in header.replace(",", " ").split():
        version, _, signature = item.partition("=")
        given = signature.lower().encode()
        if version == "v1" and hmac.compare_digest(expected.encode(), given):
            return True
    return False


def classify_status(status_code: int) -> Outcome:
    """What a receiver's HTTP status means for the event.

    2xx: delivered.  410 Gone: the receiver refuses it for good, so it is
    given up at once (other events still go to the URL: only an operator or
    the app changes that).  Anything else, redirects included (they are not
    followed: a callback goes only where the app said), is retried.
    """
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.GIVE_UP
    return Outcome.RETRY


def parse_retry_after(value: str | None, now_ms: int) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from now; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now_ms / 1000)


def next_retry_at_ms(
    policy: RetryPolicy,
    attempts: int,
    now_ms: int,
    rng: random.Random,
    *,
    retry_after_s: float | None = None,
) -> int | None:
    """When to try again after ``attempts`` failed tries; ``None``: give up.

    A receiver's ``Retry-After`` (on 429 or 503) can push the next try later,
    never earlier, and never past the policy's longest delay.
    """
    return policy.next_attempt_at_ms(attempts, now_ms, rng, retry_after_s=retry_after_s)


def check_callback_url(url: str, allow: AllowList | None = None) -> str:
    """``url`` stripped, if callbacks may be POSTed to it; else :class:`InvalidCallbackURL`.

    For the CLI and the REST call that set a URL: ``http`` or ``https``, a
    host, no ``user:password@`` (credentials would end up in logs and
    listings; a receiver authenticates callbacks by their signature), no
    space, control character or backslash anywhere (parsers disagree on what
    they mean), and a host that may receive callbacks
    (:func:`iwork_mc.callback_targets.check_host`: public, or in ``allow``).
    """
    url = url.strip()
    if len(url) > MAX_CALLBACK_URL:
        raise InvalidCallbackURL(f"must be at most {MAX_CALLBACK_URL} characters")
    bad = next((char for char in url if _is_forbidden(char)), None)
    if bad is not None:
        raise InvalidCallbackURL(f"must not contain {bad!r} (spaces and control characters)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidCallbackURL(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidCallbackURL("the callback URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidCallbackURL("the callback URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidCallbackURL("the callback URL must not carry user:password@")
    if port == 0:
        raise InvalidCallbackURL("the callback URL has port 0")
    try:
        check_host(parts.hostname, allow or AllowList())
    except TargetRefused as exc:
        raise InvalidCallbackURL(str(exc)) from None
    return url


def _is_forbidden(char: str) -> bool:
    # Whitespace and controls (C0, DEL, C1, format characters such as U+200B),
    # and the backslash some parsers read as "/".
    return char == "\\" or char.isspace() or unicodedata.category(char) in ("Cc", "Cf")
