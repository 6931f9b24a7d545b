"""The gateway's HTTP server: uvicorn, with bounds on what a connection may cost.

uvicorn on its own leaves a connection that sends nothing open forever (its
keep-alive timeout starts only after a first response), lets a client trickle
a head or a body one byte a second, and under httptools parses a head of any
size.  The protocols here are uvicorn's two HTTP/1.1 implementations with
one small guard in front (:class:`_ConnectionGuard`):

* every chunk of a request head goes through a :class:`~.headlimits.HeadMeter`
  before the parser sees it; a head over the limits is answered
  ``431 Request Header Fields Too Large`` and the connection is closed;
* a head must be complete ``head_timeout_s`` after the connection opens (or
  after the first byte of a later request on a kept-alive connection), and a
  body ``body_timeout_s`` after its head; otherwise the connection is closed.
  Idle kept-alive connections are uvicorn's: ``timeout_keep_alive``.

A request that arrives whole in one read (the usual case) arms no timer.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar, Literal

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from iwork_mc.config import Settings
from iwork_mc.gateway.headlimits import HeadLimits, HeadMeter

__all__ = ["HTTP_IMPLEMENTATIONS", "HttpImplementation", "head_limits", "server_config"]

HttpImplementation = Literal["httptools", "h11"]


class _ConnectionGuard(asyncio.Protocol):
    """Head limits and head/body deadlines, in front of a uvicorn HTTP protocol."""

    limits: ClassVar[HeadLimits]
    # Provided by the uvicorn protocol this guard is mixed into.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    _meter: HeadMeter
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._meter = HeadMeter(self.limits)
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        meter = self._meter
        if meter.done and not self._body_pending():
            # The previous request is complete: these bytes start the next head.
            meter = self._meter = HeadMeter(self.limits)
        if not meter.done:
            refusal = meter.feed(data)
            if refusal is not None:
                self._refuse(431, "Request Header Fields Too Large", refusal)
                return
            if meter.done:
                self._cancel_head_timer()
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_late)
        super().data_received(data)
        if not self._meter.done:
            return
        if self._body_pending():
            if self._body_timer is None and not self.transport.is_closing():
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_pending(self) -> bool:
        return self.cycle is not None and bool(self.cycle.more_body)

    def _head_late(self) -> None:
        self._head_timer = None
        if not self._meter.done:
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self._body_pending():
            self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        body = detail.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason.encode("ascii"), len(body), body)
        )
        self.transport.close()


class GuardedHttpToolsProtocol(_ConnectionGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol (the default) behind the guard."""


class GuardedH11Protocol(_ConnectionGuard, H11Protocol):
    """uvicorn's pure-Python h11 protocol behind the guard."""


HTTP_IMPLEMENTATIONS: dict[str, type[_ConnectionGuard]] = {
    "httptools": GuardedHttpToolsProtocol,
    "h11": GuardedH11Protocol,
}


def head_limits(settings: Settings) -> HeadLimits:
    return HeadLimits(
        max_bytes=settings.http_max_head_bytes,
        max_line_bytes=settings.http_max_header_line_bytes,
        max_fields=settings.http_max_headers,
        head_timeout_s=settings.http_head_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
    )


def server_config(
    app: ASGIApp,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    implementation: HttpImplementation = "httptools",
) -> uvicorn.Config:
    """The uvicorn configuration every gateway runs with (the CLI's and the tests')."""
    limits = head_limits(settings)
    base = HTTP_IMPLEMENTATIONS[implementation]
    # A subclass per configuration: uvicorn builds protocols from a class.
    protocol = type(base.__name__, (base,), {"limits": limits})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        # h11 measures a head itself too; the guard's limit is the one that counts.
        h11_max_incomplete_event_size=limits.max_bytes + 1,
        timeout_keep_alive=settings.http_keep_alive_timeout_s,
        # uvicorn's access log prints query strings, which carry app keys,
        # signatures and (on GET) phone numbers; the gateway logs its own line.
        access_log=False,
        log_level="warning",
        # uvicorn's lines go to the root logger, which logs.py formats like ours
        # (JSON on every line in json mode).
        log_config=None,
        lifespan="off",
        loop="uvloop" if sys.platform != "win32" else "asyncio",
    )
