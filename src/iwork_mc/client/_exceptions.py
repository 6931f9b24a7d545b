"""Exceptions raised by the Python SDK.

The hierarchy::

    SDKError                      base of everything the SDK raises on purpose
    ├── InvalidRequest            the SDK refuses to send a request (also a ValueError)
    ├── TransportError            no TOP answer was obtained; send_mobile retries these
    │   ├── TransportTimeout      connect / read / write / pool timeout
    │   ├── NetworkError          connection refused or reset, DNS, HTTP protocol errors
    │   ├── HTTPStatusError       an HTTP status other than 200 (.status_code)
    │   └── InvalidAnswer         a 200 body that is not a TOP answer envelope
    ├── TopApiError               the gateway answered with ``error_response``
    │                             (.code, .msg, .sub_code, .sub_msg, .request_id)
    └── MessageRejected           the gateway declined the message on business grounds
                                  (.error_code, .error_msg, .request_id)

Lower-layer errors (httpx's) are translated in exactly one place,
``iwork_mc.client._base.map_httpx_exceptions``, with ``raise … from exc`` so the
original stays on ``__cause__``.  Structured fields are attributes; never parse
them out of ``str(exc)``.
"""

from __future__ import annotations

import re

__all__ = [
    "HTTPStatusError",
    "InvalidAnswer",
    "InvalidRequest",
    "MessageRejected",
    "NetworkError",
    "SDKError",
    "TopApiError",
    "TransportError",
    "TransportTimeout",
]

# TOP's flow-control sub_msg: "This ban will last for 41 more seconds"; the historical
# gateway wrote "<sub_code>, will last 41 more seconds".
_BAN_SECONDS = re.compile(r"will last (?:for )?(\d{1,9}) more seconds?")


class SDKError(Exception):
    """Base class of every exception the iwork-mc SDK raises on purpose."""


class InvalidRequest(SDKError, ValueError):
    """A request the SDK refuses to send, before any I/O.

    The shape follows the Java SDK's local check (``client-error:`` prefix,
    code 40 for a missing and 41 for an invalid parameter).

    Args:
        code: 40 (missing required argument) or 41 (invalid argument).
        msg: the human-readable reason, e.g.
            ``client-error:Missing required arguments:mobile_receiver_message_event``.
    """

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.code} {self.msg}"


class TransportError(SDKError):
    """The request got no TOP answer: network failure, timeout, bad status or body.

    Whether the gateway processed the request is unknown.
    :meth:`iwork_mc.client.Client.send_mobile` retries these safely because
    ``msg_key`` makes sending idempotent on the server.
    """


class TransportTimeout(TransportError):
    """Connecting, sending or reading took longer than the client's ``timeout``."""


class NetworkError(TransportError):
    """The connection failed: refused, reset, name resolution, or a broken HTTP exchange."""


class HTTPStatusError(TransportError):
    """The gateway answered with an HTTP status other than 200.

    A TOP gateway answers every request, errors included, with status 200, so
    any other status comes from something in between (proxy, load balancer) or
    from a gateway in trouble.

    Args:
        status_code: the HTTP status received.
        body: the start of the response body, for diagnostics.
    """

    def __init__(self, status_code: int, body: str = "") -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body

    def __str__(self) -> str:
        return f"HTTP status {self.status_code}" + (f": {self.body}" if self.body else "")


class InvalidAnswer(TransportError):
    """A status-200 body that is not a TOP answer (not JSON/XML, or not an envelope)."""


class TopApiError(SDKError):
    """The gateway answered with ``error_response``.

    The fields are TOP's own (spec/top-protocol.md §5.6, §6).  ``sub_code``
    starting with ``isv.`` means the caller must change something, ``isp.`` a
    fault on the platform side that may go away on a retry.

    Args:
        code: the platform error code, e.g. 25 "Invalid signature", 50 or 15
            "Remote service error", 7 "App Call Limited".
        msg: the platform message for ``code``.
        sub_code: the detailed code, e.g. ``isv.invalid-parameter``, if any.
        sub_msg: the detailed message, e.g. ``非法参数:mobile_receiver …``, if any.
        request_id: the gateway's id of the request, if the answer carried one.
    """

    def __init__(
        self,
        code: int,
        msg: str,
        sub_code: str | None = None,
        sub_msg: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(code, msg, sub_code, sub_msg, request_id)
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.request_id = request_id

    @property
    def ban_seconds(self) -> int | None:
        """Seconds a flow-control ban (code 7) still lasts, read from ``sub_msg``.

        Returns:
            ``N`` from "This ban will last for N more seconds", or ``None`` when
            ``sub_msg`` does not say.
        """
        match = _BAN_SECONDS.search(self.sub_msg or "")
        return int(match.group(1)) if match else None

    def __str__(self) -> str:
        parts = [f"{self.code} {self.msg}"]
        parts.extend(part for part in (self.sub_code, self.sub_msg) if part)
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)


class MessageRejected(SDKError):
    """The gateway understood the request and declined the message.

    Reported inside the success envelope as ``result.success == false``, e.g.
    ``MSG_KEY_CONFLICT`` when a ``msg_key`` is reused with a different event.
    Retrying the same request gives the same answer.

    Args:
        error_code: the business code, e.g. ``MSG_KEY_CONFLICT``.
        error_msg: the business message.
        request_id: the gateway's id of the request, if the answer carried one.
        msg_key: the ``msg_key`` of the declined message, when known.
    """

    def __init__(
        self,
        error_code: str,
        error_msg: str,
        request_id: str | None = None,
        msg_key: str | None = None,
    ) -> None:
        super().__init__(error_code, error_msg, request_id, msg_key)
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.msg_key = msg_key

    def __str__(self) -> str:
        text = f"{self.error_code} {self.error_msg}"
        if self.msg_key:
            text += f" | msg_key={self.msg_key}"
        if self.request_id:
            text += f" | request_id={self.request_id}"
        return text
