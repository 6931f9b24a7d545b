"""Everything the sync and async clients share; no I/O happens here.

Theory of operation
-------------------

A call is a *flow*: a generator that yields what it needs done and gets the
outcome sent back, in the manner of ``httpx.Auth.auth_flow``:

* it yields an ``httpx.Request`` and receives the ``httpx.Response`` (or has the
  :class:`TransportError` that sending it raised thrown in);
* it yields a :class:`Sleep` and is resumed when the time has passed;
* it returns the call's result, or raises.

:func:`execute_flow` (one TOP call) and :func:`send_mobile_flow` (a sendmobile
call with retries) are the two flows.  ``_sync.py`` and ``_async.py`` only
drive them: send with ``httpx.Client`` or ``httpx.AsyncClient``, sleep with
``time.sleep`` or ``asyncio.sleep``.  Signing, the parameter layout, answer
parsing, error mapping and the retry policy therefore exist exactly once.

The request layout is the Java SDK's (spec/top-protocol.md §1.3): system
parameters in the query string, application parameters in an
``application/x-www-form-urlencoded;charset=UTF-8`` body, every value signed
as sent (§3), the timestamp ``yyyy-MM-dd HH:mm:ss`` in GMT+8 (§2.1).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlencode

import httpx

from iwork_mc import __version__
from iwork_mc.client._exceptions import (
    HTTPStatusError,
    InvalidAnswer,
    InvalidRequest,
    MessageRejected,
    NetworkError,
    TopApiError,
    TransportError,
    TransportTimeout,
)
from iwork_mc.client._requests import (
    AlibabaIworkMcMsgSendmobileRequest,
    MobileReceiverMessageEvent,
    TopRequest,
)
from iwork_mc.top import envelope, params, signing
from iwork_mc.top.envelope import Format
from iwork_mc.top.signing import SignMethod

__all__ = [
    "DEFAULT_PARTNER_ID",
    "BaseClient",
    "BaseTopClient",
    "Clock",
    "Flow",
    "SendResult",
    "Sleep",
    "TopProtocol",
    "build_event",
    "execute_flow",
    "map_httpx_exceptions",
    "retry_delay",
    "send_mobile_flow",
]

Clock: TypeAlias = Callable[[], float]
"""Returns the current time in seconds since the epoch, like :func:`time.time`."""

#: ``partner_id`` the SDK sends unless told otherwise; TOP SDKs send their name here.
DEFAULT_PARTNER_ID = "iwork-mc-sdk-python"
API_VERSION = "2.0"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
USER_AGENT = f"iwork-mc-sdk-python/{__version__}"
_ACCEPT: dict[Format, str] = {"json": "application/json,text/javascript", "xml": "text/xml"}

#: Exponential backoff between retries: base * 2**attempt, capped, with jitter.
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
#: A flow-control ban (code 7) is waited out only if it ends within this many seconds.
MAX_BAN_WAIT = 5.0
#: Platform codes whose ``isp.*`` sub_codes (or any sub_code, for 10) mean a server-side fault.
_SERVICE_UNAVAILABLE = 10
_REMOTE_SERVICE_ERROR = 15
_APP_CALL_LIMITED = 7
_RETRIED_STATUSES = frozenset({408, 429})
_BODY_SNIPPET = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sleep:
    """A flow step: wait ``seconds`` before resuming the flow."""

    seconds: float


Step: TypeAlias = httpx.Request | Sleep
Flow: TypeAlias = Generator[Step, httpx.Response | None, T]
"""A sans-I/O call: yields requests and sleeps, is sent responses, returns ``T``."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message the gateway accepted.

    Args:
        msg_key: the message's key.
        event_time_millis: the event time that was sent.  Sending again with the
            same ``msg_key`` *and* ``event_time_millis`` (and the same other
            fields) is a repeat, answered with success and delivered once; a
            different event under the same key is refused (``MSG_KEY_CONFLICT``).
        request_id: the gateway's id of the (last) request, if the answer carried one.
    """

    msg_key: str
    event_time_millis: int
    request_id: str | None


class TopProtocol:
    """The pure part of a TOP client: signs requests, builds them, reads answers.

    Args:
        url: the gateway URL, e.g. ``https://mc.example.com/router/rest``.
        app_key: the app key.
        secret: the app secret.
        sign_method: ``md5``, ``hmac`` or ``hmac-sha256``.
        format: the answer format to ask for, ``json`` or ``xml``.
        partner_id: sent (and signed) as ``partner_id``; ``None`` leaves it out.
        simplify: ask for simplified JSON answers (no root wrapper).
        timeout: seconds allowed for each of connect, write, read and pool.
        clock: the time source for the ``timestamp`` parameter.

    Raises:
        ValueError: an unknown ``sign_method`` or ``format``, or a URL that is not
            http(s) or carries a query.
    """

    def __init__(
        self,
        url: str,
        app_key: str,
        secret: str,
        *,
        sign_method: SignMethod,
        format: Format,
        partner_id: str | None,
        simplify: bool,
        timeout: float | None,
        clock: Clock,
    ) -> None:
        if sign_method not in signing.SIGN_METHODS:
            raise ValueError(f"sign_method must be one of {signing.SIGN_METHODS}")
        if format not in envelope.FORMATS:
            raise ValueError(f"format must be one of {envelope.FORMATS}")
        self.url = httpx.URL(url)
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if self.url.query or self.url.fragment:
            # The gateway would merge a query into the signed parameters, unsigned.
            raise ValueError(f"the gateway URL must not carry a query or fragment: {url!r}")
        self.app_key = app_key
        self._secret = secret
        self.sign_method: SignMethod = sign_method
        self.format: Format = format
        self.partner_id = partner_id
        self.simplify = simplify
        self.timeout = httpx.Timeout(timeout)
        self.clock = clock

    def __repr__(self) -> str:
        return f"TopProtocol(url={str(self.url)!r}, app_key={self.app_key!r}, secret='***')"

    def signed_params(
        self, request: TopRequest, session: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Sign ``request`` now.

        Args:
            request: the call to sign.
            session: the user's session key, for methods that need one.

        Returns:
            ``(system_params, app_params)``; ``system_params`` includes ``sign``.
            Empty values are left out of both and of the signature, as the Java
            SDK does.

        Raises:
            InvalidRequest: the request's parameters are missing, or one is named
                like a system parameter.
        """
        app_params = _non_empty(request.get_app_params())
        clash = sorted(app_params.keys() & params.SYSTEM_PARAMS)
        if clash:
            raise InvalidRequest(41, f"client-error:Invalid arguments:{clash[0]}")
        system = _non_empty(
            {
                "method": request.api_method_name,
                "v": API_VERSION,
                "app_key": self.app_key,
                "timestamp": params.format_timestamp(int(self.clock() * 1000)),
                "format": self.format,
                "sign_method": self.sign_method,
                "session": session or "",
                "partner_id": self.partner_id or "",
                "simplify": "true" if self.simplify else "",
            }
        )
        system["sign"] = signing.sign({**system, **app_params}, self._secret, self.sign_method)
        return system, app_params

    def build_request(self, request: TopRequest, session: str | None = None) -> httpx.Request:
        """The signed HTTP request for ``request``, timestamped by the clock now.

        Args:
            request: the call to make.
            session: the user's session key, for methods that need one.

        Returns:
            A POST with system parameters in the query and application parameters
            in a UTF-8 urlencoded body.

        Raises:
            InvalidRequest: see :meth:`signed_params`.
        """
        system, app_params = self.signed_params(request, session)
        return httpx.Request(
            "POST",
            self.url.copy_merge_params(system),
            content=urlencode(app_params).encode("ascii"),
            headers={
                "Content-Type": FORM_CONTENT_TYPE,
                "Accept": _ACCEPT[self.format],
                "User-Agent": USER_AGENT,
            },
            extensions={"timeout": self.timeout.as_dict()},
        )

    def parse_response(self, response: httpx.Response, method: str) -> dict[str, Any]:
        """The answer object of a response to ``method``.

        Args:
            response: the HTTP response, body already read.
            method: the TOP method that was called.

        Returns:
            The ``<method>_response`` object, or the bare answer object when
            ``simplify`` was asked for a JSON answer.

        Raises:
            HTTPStatusError: the status is not 200.
            InvalidAnswer: the body is not a TOP answer.
            TopApiError: the answer is an ``error_response``.
        """
        if response.status_code != 200:
            raise HTTPStatusError(response.status_code, response.text[:_BODY_SNIPPET])
        fmt = _answer_format(response.content, self.format)
        try:
            answer = envelope.parse_answer(response.content, fmt)
        except ValueError as exc:
            raise InvalidAnswer(f"the body is not a TOP {fmt} answer: {exc}") from exc
        error = answer.get("error_response")
        if isinstance(error, dict):
            raise top_api_error(error)
        if fmt == "json" and self.simplify:
            return answer
        name = envelope.response_name(method)
        inner = answer.get(name)
        if not isinstance(inner, dict):
            raise InvalidAnswer(f"the answer holds neither {name} nor error_response")
        return inner


def top_api_error(error: Mapping[str, Any]) -> TopApiError:
    """The exception for the members of an ``error_response``.

    Args:
        error: the parsed ``error_response`` object.

    Returns:
        A :class:`TopApiError` carrying every field.

    Raises:
        InvalidAnswer: ``code`` is absent or not an integer.
    """
    code = error.get("code")
    try:
        if isinstance(code, bool) or not isinstance(code, int | str):
            raise ValueError
        number = int(code)
    except ValueError:
        raise InvalidAnswer(f"error_response has no integer code: {code!r}") from None
    return TopApiError(
        number,
        _text(error.get("msg")),
        _optional_text(error.get("sub_code")),
        _optional_text(error.get("sub_msg")),
        _optional_text(error.get("request_id")),
    )


def send_result(answer: Mapping[str, Any], event: MobileReceiverMessageEvent) -> SendResult:
    """Read the ``result`` of a sendmobile answer.

    Args:
        answer: the ``alibaba_iwork_mc_msg_sendmobile_response`` object.
        event: the event that was sent.

    Returns:
        The :class:`SendResult` when ``result.success`` is true.

    Raises:
        MessageRejected: ``result.success`` is false.
        InvalidAnswer: there is no ``result`` object with a boolean ``success``.
    """
    request_id = _optional_text(answer.get("request_id"))
    result = answer.get("result")
    if not isinstance(result, dict):
        raise InvalidAnswer("the answer has no result object")
    success = result.get("success")
    if success in (True, "true"):
        return SendResult(
            msg_key=event.msg_key, event_time_millis=event.event_time_millis, request_id=request_id
        )
    if success in (False, "false"):
        raise MessageRejected(
            _text(result.get("error_code")),
            _text(result.get("error_msg")),
            request_id,
            event.msg_key,
        )
    raise InvalidAnswer(f"result.success is not a boolean: {success!r}")


def retry_delay(error: Exception, attempt: int, *, rng: random.Random) -> float | None:
    """How long to wait before retrying a sendmobile call that failed with ``error``.

    Retried: every :class:`TransportError` except an HTTP status below 500
    (408 and 429 excepted); :class:`TopApiError` code 10 "Service Currently
    Unavailable" and code 15 with an ``isp.*`` sub_code (platform faults); code
    7 "App Call Limited" when its ban ends within :data:`MAX_BAN_WAIT` seconds.

    Args:
        error: what the last attempt raised.
        attempt: how many retries were made already (0 before the first retry).
        rng: the source of jitter.

    Returns:
        Seconds to wait, or ``None`` if the error is not worth retrying.
    """
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    jittered = rng.uniform(backoff / 2, backoff)
    if isinstance(error, HTTPStatusError):
        retried = error.status_code >= 500 or error.status_code in _RETRIED_STATUSES
        return jittered if retried else None
    if isinstance(error, TransportError):
        return jittered
    if not isinstance(error, TopApiError):
        return None
    if error.code == _SERVICE_UNAVAILABLE:
        return jittered
    if error.code == _REMOTE_SERVICE_ERROR and (error.sub_code or "").startswith("isp."):
        return jittered
    if error.code == _APP_CALL_LIMITED:
        ban = error.ban_seconds
        if ban is not None and ban <= MAX_BAN_WAIT:
            return ban + jittered
    return None


@contextmanager
def map_httpx_exceptions() -> Iterator[None]:
    """Translate httpx's exceptions into the SDK's, keeping the original on ``__cause__``.

    The one boundary where lower-layer errors become :class:`TransportError`\\ s.

    Raises:
        TransportTimeout: for ``httpx.TimeoutException``.
        InvalidAnswer: for ``httpx.DecodingError`` (a body that cannot be decoded).
        NetworkError: for any other ``httpx.RequestError``.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransportTimeout(_describe(exc)) from exc
    except httpx.DecodingError as exc:
        raise InvalidAnswer(_describe(exc)) from exc
    except httpx.RequestError as exc:
        raise NetworkError(_describe(exc)) from exc


def execute_flow(
    protocol: TopProtocol, request: TopRequest, session: str | None = None
) -> Flow[dict[str, Any]]:
    """One TOP call, no retries: the flow behind ``TopClient.execute``.

    Args:
        protocol: signs the request and reads the answer.
        request: the call to make.
        session: the user's session key, for methods that need one.

    Returns:
        The flow; it returns what :meth:`TopProtocol.parse_response` returns.
    """
    response = yield from _exchange(protocol.build_request(request, session))
    return protocol.parse_response(response, request.api_method_name)


def send_mobile_flow(
    protocol: TopProtocol,
    event: MobileReceiverMessageEvent,
    *,
    max_retries: int,
    rng: random.Random,
) -> Flow[SendResult]:
    """A sendmobile call, retried per :func:`retry_delay`: the flow behind ``send_mobile``.

    Every attempt sends the same event (same ``msg_key``, same bytes) in a
    freshly timestamped and signed request, so a retry after a lost answer is
    deduplicated by the gateway instead of sending the message twice.

    Args:
        protocol: signs the request and reads the answer.
        event: the event to send.
        max_retries: retries allowed after the first attempt.
        rng: the source of backoff jitter.

    Returns:
        The flow; it returns a :class:`SendResult` or raises the last error.
    """
    request = AlibabaIworkMcMsgSendmobileRequest(event)
    request.get_app_params()  # refuse a bad event before any I/O
    attempt = 0
    while True:
        try:
            response = yield from _exchange(protocol.build_request(request))
            answer = protocol.parse_response(response, request.api_method_name)
            return send_result(answer, event)
        except (TransportError, TopApiError) as exc:
            delay = retry_delay(exc, attempt, rng=rng) if attempt < max_retries else None
            if delay is None:
                raise
        attempt += 1
        yield Sleep(delay)


def build_event(
    *,
    mobile_receiver: str,
    json_data: Mapping[str, Any] | str,
    source: str,
    action: str,
    event_type: str,
    sender: int,
    msg_key: str | None,
    event_time_millis: int | None,
    resource_id: str | None,
    resource_url: str | None,
    clock: Clock,
) -> MobileReceiverMessageEvent:
    """The event for ``send_mobile``'s arguments, filling in the defaults.

    Args:
        mobile_receiver: the receiver's mobile number.
        json_data: the message content; a mapping is written as compact JSON.
        source: the calling system.
        action: the message event.
        event_type: the message type.
        sender: the sender's numeric id.
        msg_key: the message key; ``None`` makes a new uuid4.
        event_time_millis: the event time; ``None`` reads the clock.
        resource_id: optional resource id.
        resource_url: optional resource URL.
        clock: the time source.

    Returns:
        The event, fixed once so that every retry sends the same one.
    """
    if not isinstance(json_data, str):
        json_data = json.dumps(dict(json_data), ensure_ascii=False, separators=(",", ":"))
    return MobileReceiverMessageEvent(
        msg_key=str(uuid.uuid4()) if msg_key is None else msg_key,
        event_time_millis=int(clock() * 1000) if event_time_millis is None else event_time_millis,
        source=source,
        action=action,
        mobile_receiver=mobile_receiver,
        event_type=event_type,
        json_data=json_data,
        resource_id=resource_id,
        resource_url=resource_url,
        sender=sender,
    )


class BaseTopClient:
    """What :class:`TopClient` and :class:`AsyncTopClient` share: the protocol settings.

    Args: see :class:`iwork_mc.client.TopClient`.
    """

    def __init__(
        self,
        url: str,
        app_key: str,
        secret: str,
        sign_method: SignMethod,
        format: Format,
        *,
        timeout: float | None,
        partner_id: str | None,
        simplify: bool,
        clock: Clock,
    ) -> None:
        self._protocol = TopProtocol(
            url,
            app_key,
            secret,
            sign_method=sign_method,
            format=format,
            partner_id=partner_id,
            simplify=simplify,
            timeout=timeout,
            clock=clock,
        )

    def _execute_flow(self, request: TopRequest, session: str | None) -> Flow[dict[str, Any]]:
        return execute_flow(self._protocol, request, session)


class BaseClient:
    """What :class:`Client` and :class:`AsyncClient` share: settings, event, retry flow.

    Args: see :class:`iwork_mc.client.Client`.
    """

    def __init__(
        self,
        url: str,
        app_key: str,
        secret: str,
        *,
        sign_method: SignMethod,
        timeout: float | None,
        max_retries: int,
        clock: Clock,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._protocol = TopProtocol(
            url,
            app_key,
            secret,
            sign_method=sign_method,
            format="json",
            partner_id=DEFAULT_PARTNER_ID,
            simplify=False,
            timeout=timeout,
            clock=clock,
        )
        self._max_retries = max_retries
        self._rng = random.Random()

    def _send_mobile_flow(self, event: MobileReceiverMessageEvent) -> Flow[SendResult]:
        return send_mobile_flow(self._protocol, event, max_retries=self._max_retries, rng=self._rng)


def _exchange(request: httpx.Request) -> Generator[Step, httpx.Response | None, httpx.Response]:
    response = yield request
    if response is None:
        raise RuntimeError("the flow driver answered a request with no response")
    return response


def _answer_format(body: bytes, requested: Format) -> Format:
    # A gateway may answer a request it cannot read (e.g. a bad format) in either format.
    head = body.lstrip()[:1]
    if head == b"<":
        return "xml"
    if head == b"{":
        return "json"
    return requested


def _non_empty(values: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value and value.strip()}


def _optional_text(value: Any) -> str | None:
    return None if value is None or value == "" else _text(value)


def _text(value: Any) -> str:
    # Business payloads may carry booleans or numbers where text is expected.
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
