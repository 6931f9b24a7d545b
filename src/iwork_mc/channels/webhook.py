"""The webhook channel: POST each message, signed per Standard Webhooks, to one URL.

For teams whose own app pushes to the phone.  Each message is one POST of a
JSON body (:func:`webhook_body`) with the three Standard Webhooks headers,
signed with the ``standardwebhooks`` package, so a receiver in any language
verifies it with that package or a few lines of HMAC (docs/howto/webhook.md):

- ``webhook-id``: :func:`webhook_id`, the same for every try of one message
  (retries, a resend after a crash, a fallback to another webhook), so a
  receiver drops repeats by it;
- ``webhook-timestamp``: the time of *this* try, in epoch seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``.

The answer decides the message's fate (:func:`classify`): 2xx delivered (the
receiver took it; no receipt follows), 408, 429 and 5xx, a timeout or a
network error transient (retried on the worker's schedule, no earlier than a
``Retry-After``), any other status permanent (3xx included: redirects are not
followed; the message falls back to the route's next channel or fails).  The
answer's body is never looked at (a short one is read and dropped, so the
connection is kept for the next POST).  Reasons on the timeline carry the HTTP status,
never the URL (it may hold a token) nor the secret.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import standardwebhooks

from iwork_mc import __version__
from iwork_mc.callbacks import iso8601, parse_retry_after
from iwork_mc.channels.base import (
    Delivered,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from iwork_mc.channels.webhook_config import WebhookConfig
from iwork_mc.messages import Message

__all__ = ["EVENT_TYPE", "Answer", "WebhookChannel", "classify", "webhook_body", "webhook_id"]

#: The body's ``type``.
EVENT_TYPE = "message.send"
USER_AGENT = f"iwork-mc/{__version__} (webhook channel)"
#: Answer bodies up to this size are read (and dropped) to keep the connection.
_MAX_ANSWER_BYTES = 65_536


class Answer(StrEnum):
    DELIVERED = "delivered"  #: 2xx: the receiver has the message
    TRANSIENT = "transient"  #: 408, 429, 5xx: try again later
    PERMANENT = "permanent"  #: Any other status: never try this channel again


def classify(status_code: int) -> Answer:
    """What a receiver's HTTP status means for the message."""
    if 200 <= status_code < 300:
        return Answer.DELIVERED
    if status_code in (408, 429) or 500 <= status_code < 600:
        return Answer.TRANSIENT
    return Answer.PERMANENT


def webhook_id(message: Message) -> str:
    """The ``webhook-id`` of every try of ``message``: receivers drop repeats by it."""
    return f"msg_{message.id}"


def webhook_body(message: Message, text: str) -> bytes:
    """The JSON POSTed for ``message``: the same bytes on every try.

    ``{"type": "message.send", "timestamp": <accepted, ISO 8601>, "data": {...}}``
    with the message's ids, receiver (E.164), rendered text and template, and
    the caller's event fields (``json_data`` parsed into ``data``).
    """
    event = message.event
    document = {
        "type": EVENT_TYPE,
        "timestamp": iso8601(message.accepted_at_ms),
        "data": {
            "message_id": message.id,
            "app_key": message.app_key,
            "msg_key": message.msg_key,
            "receiver": event.mobile_receiver,
            "text": text,
            "template": message.template,
            "urgent": message.urgent,
            "event": {
                "source": event.source,
                "action": event.action,
                "event_type": event.event_type,
                "event_time_millis": event.event_time_millis,
                "sender": event.sender,
                "data": event.data(),
                "resource_id": event.resource_id,
                "resource_url": event.resource_url,
            },
        },
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


async def _drain(response: httpx.Response) -> None:
    """Read (and drop) a short answer body, so its connection goes back to the pool.

    A longer one is left unread: closing the response closes its connection.
    """
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > _MAX_ANSWER_BYTES:
            break


class WebhookChannel:
    """A channel that POSTs each message to ``config.url``.

    Args:
        config: URL, secret, timeout (see :class:`WebhookConfig`).
        name: The channel's name in routes and timelines.
        clock: Epoch seconds, for ``webhook-timestamp`` and ``Retry-After`` dates.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        name: str = "webhook",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self._signer = standardwebhooks.Webhook(config.secret)
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        # POSTs beyond max_connections wait here, not in httpx's pool, whose
        # bookkeeping grows with the square of the requests queued in it.
        self._slots = asyncio.Semaphore(config.max_connections)
        self._in_flight = 0

    def ready(self) -> bool:
        """Always: each send is one POST, with no session to bind."""
        return True

    def health(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "kind": "webhook",
            "url": self.config.display_url,
            "in_flight": self._in_flight,
        }

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_s),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self.config.max_connections),
                headers={"User-Agent": USER_AGENT},
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of one try, signed now."""
        now = self._clock()
        msg_id = webhook_id(message)
        moment = datetime.fromtimestamp(now, tz=UTC)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": self._signer.sign(msg_id, moment, body),
        }

    async def send(self, message: Message, text: str) -> SendResult:
        await self.open()
        body = webhook_body(message, text)
        async with self._slots:
            # Signed once it has a connection: the timestamp is when it leaves.
            return await self._post(body, self.headers(message, body))

    async def _post(self, body: bytes, headers: dict[str, str]) -> SendResult:
        assert self._client is not None
        timeout_s = self.config.timeout_s
        self._in_flight += 1
        try:
            async with (
                asyncio.timeout(timeout_s),
                self._client.stream("POST", self.config.url, content=body, headers=headers) as r,
            ):
                status_code, retry_after = r.status_code, r.headers.get("Retry-After")
                await _drain(r)
        except (TimeoutError, httpx.TimeoutException):
            raise TransientChannelError(
                f"webhook: no answer within {timeout_s:g} s (the next try has the same webhook-id)"
            ) from None
        except httpx.HTTPError as exc:
            raise TransientChannelError(f"webhook: network error ({type(exc).__name__})") from None
        finally:
            self._in_flight -= 1
        answer = classify(status_code)
        if answer is Answer.DELIVERED:
            return Delivered(headers["webhook-id"])
        if answer is Answer.TRANSIENT:
            asked = parse_retry_after(retry_after, int(self._clock() * 1000))
            raise TransientChannelError(f"webhook: HTTP {status_code}", retry_after_s=asked)
        raise PermanentChannelError(f"webhook: HTTP {status_code}, not retried")
