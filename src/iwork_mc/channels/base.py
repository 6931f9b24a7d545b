"""The seam between the worker and the carriers: a channel delivers one message.

A channel answers with a :class:`Submitted` (the carrier took it; a receipt
will follow) or a :class:`Delivered` (the carrier confirmed delivery at once),
or raises :class:`TransientChannelError` (try again later; :class:`Unavailable`
when nothing could be tried at all) or :class:`PermanentChannelError` (never
try again).  The worker owns retries,
leases and status; channels only talk to carriers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from iwork_mc.messages import Message

__all__ = [
    "Channel",
    "ChannelError",
    "Delivered",
    "InDoubt",
    "PermanentChannelError",
    "SendResult",
    "Submitted",
    "TransientChannelError",
    "Unavailable",
]


@dataclass(frozen=True, slots=True)
class Submitted:
    """The carrier accepted the message under ``ref``; delivery is not yet confirmed."""

    ref: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """The carrier confirmed delivery (synchronous channels, the sandbox)."""

    ref: str


SendResult = Submitted | Delivered


class ChannelError(Exception):
    """Delivery failed; ``reason`` is kept with the message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientChannelError(ChannelError):
    """The carrier may accept the message later (throttled, unreachable, busy).

    ``retry_after_s``: how long the carrier asked us to wait (an HTTP
    ``Retry-After``); the retry is scheduled no earlier, within the retry
    policy's longest delay.
    """

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class InDoubt(TransientChannelError):
    """A submission went out and its answer never came: the carrier may have it.

    The worker sends it again after ``retry_after_s`` (long enough for a late
    receipt to arrive), and the resend is marked as a possible duplicate.
    """

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason, retry_after_s)
        self.retry_after_s: float = retry_after_s


class Unavailable(TransientChannelError):
    """The channel cannot reach its carrier at all (no session bound): nothing was tried.

    Not a failed attempt: the worker gives the message back without counting
    one and claims it again after ``retry_after_s``, so an outage makes
    messages wait (bounded only by their validity) instead of failing them.
    """

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s: float = retry_after_s


class PermanentChannelError(ChannelError):
    """The carrier will never accept this message (invalid destination, refused)."""


class Channel(Protocol):
    """**Protocol:** a named way to reach a phone."""

    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Message, text: str) -> SendResult: ...

    def health(self) -> dict[str, Any]:
        """What /healthz shows of the channel (session states, say)."""
        ...

    def ready(self) -> bool:
        """Whether a send could go out now (an SMPP session is bound, say); for /readyz."""
        ...
