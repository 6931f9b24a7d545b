"""The Apprise channel: one Apprise URL, one notification per message.

Apprise reaches 100+ services by URL (SMS services such as Twilio, Vonage or
ClickSend; DingTalk, Feishu and WeCom robots; ntfy, MQTT, e-mail, FCM …).  It
answers only "sent" or "not sent", and no service it drives sends a receipt
back through it, so:

- **sent** → ``delivered`` (the service took the notification; nothing
  later confirms the handset got it);
- **not sent** → a transient failure, retried on the worker's schedule; when
  the retries run out the message falls back to the route's next channel or
  fails.  Apprise does not say why, so a URL whose credentials are wrong is
  retried too: the reason on the timeline says to check the URL;
- **no answer within** ``timeout_s`` → a transient failure whose reason says
  the service may have it (the next try may notify twice: visible on the
  timeline, never silent);
- a URL the service refuses for this receiver (say, a number it cannot take)
  → a permanent failure.

Apprise is synchronous: each notification runs on a thread of the channel's
own pool (``concurrency`` threads), with Apprise's own deadline and an outer
one, so the event loop never waits on it.  The URL holds the service's tokens:
it never reaches a log or a timeline; /healthz shows Apprise's masked form.
Apprise's own log lines (which may name a number) are not passed on.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any

import apprise

from iwork_mc.channels.apprise_config import AppriseConfig, fill_receiver
from iwork_mc.channels.base import (
    Delivered,
    PermanentChannelError,
    SendResult,
    TransientChannelError,
)
from iwork_mc.messages import Message

__all__ = ["AppriseChannel", "Outcome"]

#: How much longer than Apprise's own deadline the channel waits for its thread.
_GRACE_S = 5.0

# Apprise logs through the standard library; its lines may name receivers.
# Nothing configures stdlib logging here, so Python's last-resort handler would
# print its warnings on stderr: keep them out.
logging.getLogger("apprise").addHandler(logging.NullHandler())
logging.getLogger("apprise").propagate = False


class Outcome(StrEnum):
    SENT = "sent"  #: Apprise: the service took it
    NOT_SENT = "not_sent"  #: Apprise: the service did not take it
    TIMEOUT = "timeout"  #: Apprise gave up waiting for the service
    REFUSED = "refused"  #: the URL, filled with this receiver, is not one Apprise accepts


def notify(url: str, title: str, body: str, timeout_s: float) -> Outcome:
    """Send one notification with Apprise (blocking: call it on a thread)."""
    asset = apprise.AppriseAsset(storage_mode="memory", secure_logging=True)
    # A fresh instance per message: plugins keep per-instance state (connections,
    # "already delivered" marks) that must not leak from one message to the next.
    notifier = apprise.Apprise(asset=asset)
    if not notifier.add(url):
        return Outcome.REFUSED
    result = notifier.notify(body=body, title=title, timeout=timeout_s)
    if bool(result):
        return Outcome.SENT
    if result.status == apprise.AppriseResultStatus.TIMEOUT:
        return Outcome.TIMEOUT
    return Outcome.NOT_SENT


class AppriseChannel:
    """A channel that notifies ``config.url`` through Apprise.

    Args:
        config: The URL and how to send (see :class:`AppriseConfig`).
        name: The channel's name in routes and timelines.
    """

    def __init__(self, config: AppriseConfig, *, name: str = "apprise") -> None:
        self.name = name
        self.config = config
        self._service = config.service_name() or "?"
        self._display_url = config.display_url()
        self._pool: ThreadPoolExecutor | None = None
        # Sends wait for a thread here, before their deadline starts: one queued
        # inside the pool could time out unsent, then be sent after all.
        self._slots = asyncio.Semaphore(config.concurrency)
        self._in_flight = 0

    def ready(self) -> bool:
        """Always: each send is its own notification call, with no session to bind."""
        return True

    def health(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "kind": "apprise",
            "service": self._service,
            "url": self._display_url,
            "in_flight": self._in_flight,
        }

    async def open(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.config.concurrency, thread_name_prefix=f"apprise-{self.name}"
            )

    async def close(self) -> None:
        if self._pool is not None:
            # The worker has drained its sends; a thread still stuck past its
            # deadline is not waited for.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def send(self, message: Message, text: str) -> SendResult:
        await self.open()
        assert self._pool is not None
        config = self.config
        try:
            url = fill_receiver(config.url, message.event.mobile_receiver)
        except ValueError:
            raise PermanentChannelError("apprise: the receiver is not a phone number") from None
        loop = asyncio.get_running_loop()
        async with self._slots:
            call = loop.run_in_executor(
                self._pool, notify, url, config.title, text, config.timeout_s
            )
            self._in_flight += 1
            try:
                outcome = await asyncio.wait_for(call, config.timeout_s + _GRACE_S)
            except TimeoutError:
                outcome = Outcome.TIMEOUT
            except Exception as exc:
                # A plugin's error text may quote the URL: only its type goes on.
                raise TransientChannelError(
                    f"apprise: {self._service} failed ({type(exc).__name__})"
                ) from None
            finally:
                self._in_flight -= 1
        service = self._service
        if outcome is Outcome.SENT:
            return Delivered(f"apprise-{message.id}-{message.attempts}")
        if outcome is Outcome.REFUSED:
            raise PermanentChannelError(
                f"apprise: {service} does not accept the URL filled with this receiver"
            )
        if outcome is Outcome.TIMEOUT:
            raise TransientChannelError(
                f"apprise: {service} gave no answer within {config.timeout_s:g} s"
                " (it may have the notification; the next try may notify twice)"
            )
        raise TransientChannelError(
            f"apprise: {service} did not take the notification"
            " (a network error, or wrong credentials in the URL: Apprise does not say)"
        )
