"""The blocking clients, over ``httpx.Client``: :class:`TopClient` and :class:`Client`.

Only I/O lives here: sending a request, sleeping, closing.  What to send, how
to read the answer and when to retry is decided by the flows of ``_base.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import closing
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from iwork_mc.client import _base
from iwork_mc.client._exceptions import TransportError
from iwork_mc.client._requests import TopRequest
from iwork_mc.top.envelope import Format
from iwork_mc.top.signing import SignMethod

__all__ = ["Client", "TopClient"]

T = TypeVar("T")


class _Driver:
    """Runs ``_base`` flows with an ``httpx.Client`` and ``time.sleep``."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None,
        timeout: float | None,
        sleep: Callable[[float], None],
    ) -> None:
        self._http = httpx.Client(transport=transport, timeout=timeout)
        self._sleep = sleep

    def run(self, flow: _base.Flow[T]) -> T:
        with closing(flow):
            reply: httpx.Response | None = None
            error: TransportError | None = None
            while True:
                try:
                    step = flow.send(reply) if error is None else flow.throw(error)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                reply, error = None, None
                if isinstance(step, _base.Sleep):
                    self._sleep(step.seconds)
                    continue
                try:
                    with _base.map_httpx_exceptions():
                        reply = self._http.send(step)
                except TransportError as exc:
                    error = exc

    def close(self) -> None:
        self._http.close()


class TopClient(_base.BaseTopClient):
    """A TOP client in the style of the official SDKs (``DefaultTaobaoClient``).

    ::

        client = TopClient("https://mc.example.com/router/rest", app_key, secret)
        req = AlibabaIworkMcMsgSendmobileRequest()
        req.mobile_receiver_message_event = MobileReceiverMessageEvent(...)
        answer = client.execute(req)   # {"result": {...}, "request_id": "..."}

    Requests are laid out as the Java SDK lays them out: system parameters in
    the query, application parameters in a UTF-8 urlencoded body.  No retries:
    :meth:`execute` makes one HTTP request (see :class:`Client` for retries).

    Args:
        url: the gateway URL, ending in ``/router/rest``.
        app_key: the app key.
        secret: the app secret.
        sign_method: ``md5``, ``hmac`` or ``hmac-sha256``.
        format: the answer format to ask for, ``json`` or ``xml``.
        timeout: seconds allowed for each of connect, write, read and pool;
            ``None`` waits forever.
        transport: an httpx transport to send through, e.g. ``httpx.MockTransport``
            in tests; ``None`` uses a real connection pool.
        partner_id: sent and signed as ``partner_id``; ``None`` leaves it out.
        simplify: ask for simplified JSON answers (``simplify=true``).
        clock: the time source for the ``timestamp`` parameter.

    Raises:
        ValueError: an unknown ``sign_method`` or ``format``, or an unusable URL.
    """

    def __init__(
        self,
        url: str,
        app_key: str,
        secret: str,
        sign_method: SignMethod = "hmac-sha256",
        format: Format = "json",
        *,
        timeout: float | None = 10.0,
        transport: httpx.BaseTransport | None = None,
        partner_id: str | None = _base.DEFAULT_PARTNER_ID,
        simplify: bool = False,
        clock: _base.Clock = time.time,
    ) -> None:
        super().__init__(
            url,
            app_key,
            secret,
            sign_method,
            format,
            timeout=timeout,
            partner_id=partner_id,
            simplify=simplify,
            clock=clock,
        )
        self._driver = _Driver(transport, timeout, time.sleep)

    def execute(self, request: TopRequest, session: str | None = None) -> dict[str, Any]:
        """Send ``request`` once and return the answer object.

        Args:
            request: the call to make.
            session: the user's session key, for methods that need one.

        Returns:
            The ``<method>_response`` object (``result`` and ``request_id`` for
            sendmobile), or the bare answer object when ``simplify`` is on.

        Raises:
            InvalidRequest: the request lacks a required parameter.
            TopApiError: the gateway answered with ``error_response``.
            TransportError: no TOP answer was obtained (network, timeout, HTTP
                status other than 200, unreadable body).
        """
        return self._driver.run(self._execute_flow(request, session))

    def close(self) -> None:
        """Close the connection pool."""
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Client(_base.BaseClient):
    """The pythonic client: ``send_mobile(...)`` with safe retries.

    ::

        with Client("https://mc.example.com/router/rest", app_key, secret) as client:
            sent = client.send_mobile(
                mobile_receiver="13888888888", json_data={"name": "张三"},
                source="iwork", action="iwork-action", sender=10000,
            )

    Args:
        url: the gateway URL, ending in ``/router/rest``.
        app_key: the app key.
        secret: the app secret.
        sign_method: ``md5``, ``hmac`` or ``hmac-sha256``.
        timeout: seconds allowed for each of connect, write, read and pool, per attempt.
        max_retries: retries after the first attempt of a call; 0 disables retrying.
        transport: an httpx transport to send through; ``None`` uses a real pool.
        clock: the time source for timestamps and the default ``event_time_millis``.
        sleep: how to wait between retries.

    Raises:
        ValueError: an unknown ``sign_method``, a negative ``max_retries``, or an
            unusable URL.
    """

    def __init__(
        self,
        url: str,
        app_key: str,
        secret: str,
        *,
        sign_method: SignMethod = "hmac-sha256",
        timeout: float | None = 10.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        clock: _base.Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            url,
            app_key,
            secret,
            sign_method=sign_method,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )
        self._driver = _Driver(transport, timeout, sleep)

    def send_mobile(
        self,
        *,
        mobile_receiver: str,
        json_data: Mapping[str, Any] | str,
        source: str,
        action: str,
        sender: int,
        event_type: str = "mobile_receiver",
        msg_key: str | None = None,
        event_time_millis: int | None = None,
        resource_id: str | None = None,
        resource_url: str | None = None,
    ) -> _base.SendResult:
        """Send a message to a mobile phone user (``alibaba.iwork.mc.msg.sendmobile``).

        Retries are safe: ``msg_key`` is the gateway's idempotency key, and every
        attempt sends the same event (same ``msg_key``, same ``event_time_millis``)
        in a freshly timestamped and signed request, so an attempt whose answer
        was lost is recognised by the gateway and not delivered twice.  Up to
        ``max_retries`` retries follow, with short exponential backoff and
        jitter, on transport errors (network, timeout, HTTP 5xx/408/429,
        unreadable body), on platform faults (code 10, or code 15 with an
        ``isp.*`` sub_code) and on flow control (code 7) whose ban ends within
        5 seconds.  Anything else is raised at once.

        Args:
            mobile_receiver: the receiver's mobile number, e.g. ``13888888888``.
            json_data: the message content; a mapping is sent as compact JSON text.
            source: the calling system, e.g. ``iwork``.
            action: the message event, e.g. ``iwork-action``.
            sender: the sender's numeric id.
            event_type: the message type.
            msg_key: the message key; ``None`` makes a new uuid4.  To resend an
                earlier message idempotently, pass its ``msg_key`` and its
                ``event_time_millis`` (both are on the :class:`SendResult`).
            event_time_millis: the event time in epoch milliseconds; ``None`` is now.
            resource_id: optional id of the resource the message is about.
            resource_url: optional URL of that resource.

        Returns:
            The accepted message's ``msg_key`` and ``event_time_millis``, and the
            gateway's ``request_id``.

        Raises:
            MessageRejected: the gateway declined the message (``result.success``
                false, e.g. ``MSG_KEY_CONFLICT``).
            TopApiError: the gateway answered with ``error_response`` (after
                retries, for retryable codes).
            TransportError: no TOP answer was obtained, after retries.
            InvalidRequest: a field cannot be encoded.
        """
        event = _base.build_event(
            mobile_receiver=mobile_receiver,
            json_data=json_data,
            source=source,
            action=action,
            sender=sender,
            event_type=event_type,
            msg_key=msg_key,
            event_time_millis=event_time_millis,
            resource_id=resource_id,
            resource_url=resource_url,
            clock=self._protocol.clock,
        )
        return self._driver.run(self._send_mobile_flow(event))

    def close(self) -> None:
        """Close the connection pool."""
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
