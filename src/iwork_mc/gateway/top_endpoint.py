"""``/router/rest``: the TOP endpoint, a raw ASGI app on the hot path.

It reads the call off the wire, checks the system parameters in the order
spec/top-protocol.md fixes, runs the method's handler and answers, always with
HTTP 200 and an envelope in the requested format::

    method (21/22) → app_key (28/29) → timestamp (30/31) → v (32/33/34)
    → format (23) → sign (24/25) → app enabled (11) → flow control (7)
    → the method: top-level parameter (40/41) → event fields (50) → store

The disabled-app check (11) comes after the signature so that only the app's
owner learns the app is disabled.  Store outages answer 15 with an ``isp.``
sub_code (retry later); anything unexpected answers 10.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Mapping

import structlog
from starlette.types import Receive, Scope, Send

from iwork_mc import metrics, tracing
from iwork_mc.gateway import wire
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.gateway.methods import MethodHandler, TopCall
from iwork_mc.store import outage
from iwork_mc.store.base import StoreError, StoreUnavailable
from iwork_mc.top import envelope, params
from iwork_mc.top.envelope import Format
from iwork_mc.top.errors import PlatformCode, TopError

__all__ = ["TopEndpoint", "new_request_id"]

log = structlog.get_logger("iwork_mc.gateway")


_STORE_UNAVAILABLE = TopError(
    PlatformCode.REMOTE_SERVICE_ERROR,
    "isp.store-unavailable",
    "the message store is unavailable, retry later",
)
_STORE_FAILED = TopError(
    PlatformCode.REMOTE_SERVICE_ERROR, "isp.store-error", "the message store failed"
)
_UNEXPECTED = TopError(PlatformCode.SERVICE_UNAVAILABLE, "isp.unknown-error")
#: The metrics' method label of a call that names no method served here.
_OTHER_METHOD = "other"


# Request ids need uniqueness, not secrecy: a PRNG seeded once from the OS is
# far cheaper per call than reading the OS's random source every time.
_request_ids = random.Random(secrets.randbits(128))


def new_request_id() -> str:
    """13 characters of ``[0-9a-z]``, like TOP's request ids."""
    value = _request_ids.getrandbits(64)
    digits = []
    while value:
        value, digit = divmod(value, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(reversed(digits)).rjust(13, "0")


class TopEndpoint:
    def __init__(
        self,
        *,
        methods: Mapping[str, MethodHandler],
        apps: AppDirectory,
        flow_control: FlowControl,
        timestamp_tolerance_ms: int,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._methods = methods
        self._apps = apps
        self._flow_control = flow_control
        self._tolerance_ms = timestamp_tolerance_ms
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if tracing.enabled():
            with tracing.span("top.call", server=True):
                method, outcome = await self._serve(scope, receive, send)
                tracing.annotate({"top.method": method, "top.outcome": outcome})
        else:
            method, outcome = await self._serve(scope, receive, send)
        metrics.count_call(method, outcome, time.perf_counter() - started)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> tuple[str, str]:
        """Answer one call; returns its method label and outcome code."""
        started = time.perf_counter()
        request_id = new_request_id()
        fmt: Format = "xml"
        simplify = False
        method = _OTHER_METHOD
        try:
            query = wire.parse_query(scope.get("query_string", b""))
            # Known before the body is read, so even a refused body is answered as asked.
            fmt = params.answer_format(query)
            if scope["method"] not in ("GET", "POST"):
                raise TopError(PlatformCode.HTTP_ACTION_NOT_ALLOWED)
            call_params = await self._read_params(query, scope, receive)
            fmt = params.answer_format(call_params)
            simplify = params.is_simplified(call_params)
            # A label only ever names a method served here: callers choose the text.
            if call_params.get("method", "").strip() in self._methods:
                method = call_params["method"].strip()
            method, call = await self._authenticate(call_params, request_id)
            payload = await self._methods[method](call)
            body = envelope.render_success(method, payload, request_id, fmt, simplify=simplify)
            outcome = payload.get("result", {}).get("error_code", "200")
            log.info("top_call", request_id=request_id, app_key=call.app.app_key,
                     outcome=outcome, ms=_ms(started))  # fmt: skip
            if outcome != "200":
                metrics.DECLINES.labels(outcome).inc()
        except TopError as error:
            body = envelope.render_error(error, request_id, fmt)
            outcome = str(int(error.code))
            log.info("top_call", request_id=request_id, code=int(error.code),
                     sub_code=error.sub_code, ms=_ms(started))  # fmt: skip
        except StoreUnavailable as exc:
            # The store's own log line (one per outage) gives the cause.
            body = envelope.render_error(_STORE_UNAVAILABLE, request_id, fmt)
            outcome = str(int(_STORE_UNAVAILABLE.code))
            log.debug("store_unavailable", request_id=request_id, **outage.describe(exc))
        except StoreError as exc:
            log.error("store_error", request_id=request_id, **outage.describe(exc))
            body = envelope.render_error(_STORE_FAILED, request_id, fmt)
            outcome = str(int(_STORE_FAILED.code))
        except Exception:
            log.exception("unexpected_error", request_id=request_id)
            body = envelope.render_error(_UNEXPECTED, request_id, fmt)
            outcome = str(int(_UNEXPECTED.code))
        await _answer(send, body, fmt)
        return method, outcome

    async def _read_params(
        self, query: dict[str, str], scope: Scope, receive: Receive
    ) -> dict[str, str]:
        content_type = dict(scope.get("headers", ())).get(b"content-type", b"").decode("latin-1")
        body = await wire.read_request_body(scope, receive, self._max_body_bytes)
        return wire.merge_params(query, content_type, body)

    async def _authenticate(
        self, call_params: Mapping[str, str], request_id: str
    ) -> tuple[str, TopCall]:
        method = params.check_method(call_params, self._methods)
        app_key = params.check_app_key(call_params)
        now = self._clock()
        now_ms = int(now * 1000)
        app = await self._apps.get(app_key, now)
        if app is None:
            raise TopError(PlatformCode.INVALID_APP_KEY, "isv.appkey-not-exists")
        params.check_timestamp(call_params, now_ms, self._tolerance_ms)
        params.check_version(call_params)
        params.check_format(call_params)
        params.check_signature(call_params, app.valid_secrets(now_ms))
        if not app.enabled:
            raise TopError(
                PlatformCode.INSUFFICIENT_ISV_PERMISSIONS,
                "isv.permission-app-disabled",
                "this app is disabled",
            )
        wait = await self._flow_control.admit(app, now)
        if wait:
            raise TopError(
                PlatformCode.APP_CALL_LIMITED,
                "accesscontrol.limited-by-app-access-count",
                f"This ban will last for {wait} more seconds",
            )
        return method, TopCall(call_params, app, request_id, now_ms)


async def _answer(send: Send, body: bytes, fmt: Format) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", envelope.CONTENT_TYPES[fmt].encode("ascii")),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
