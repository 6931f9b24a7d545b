"""Authentication of ``/v1`` calls: the TOP signature, carried in headers.

Theory of operation (docs/reference/rest.md has a worked example):

1. The caller sends ``X-App-Key``, ``X-Timestamp`` (epoch milliseconds),
   ``X-Sign-Method: hmac-sha256`` and ``X-Sign``.
2. Both sides build one parameter map: every query parameter (a name given
   several times has its values joined by ``,`` in order), plus ``app_key``,
   ``timestamp``, ``http_method`` (upper case), ``path`` (percent-decoded,
   e.g. ``/v1/messages/abc``) and ``body_sha256`` (hex SHA-256 of the raw
   body; of ``b""`` when there is none).
3. The map is signed as a TOP call is: :func:`iwork_mc.top.signing.sign` with
   HMAC-SHA256 keyed by the app secret (any of ``App.valid_secrets``, so a
   rotated secret keeps working through its grace period), compared in
   constant time.

Signing the method, path and a digest of the body binds the signature to the
whole request, so a captured signature cannot be replayed on another message,
another verb or another body, and only within the timestamp window.

As in the TOP endpoint, a disabled app is refused only after its signature
checks out, so only the app's owner learns that it is disabled; flow control
comes last, on the same per-app budget as the TOP endpoint (429).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from iwork_mc.apps import App
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.top import signing
from iwork_mc.top.rest_signing import (
    HEADER_APP_KEY,
    HEADER_SIGN,
    HEADER_SIGN_METHOD,
    HEADER_TIMESTAMP,
    RESERVED_PARAMS,
    SIGN_METHOD,
    signing_params,
)

__all__ = [
    "HEADER_APP_KEY",
    "HEADER_SIGN",
    "HEADER_SIGN_METHOD",
    "HEADER_TIMESTAMP",
    "RESERVED_PARAMS",
    "RestAuthenticator",
    "RestError",
    "signing_params",
]


class RestError(Exception):
    """An error answer of the REST API: ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(self, status: int, code: str, message: str, /, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _unauthorized(code: str, message: str) -> RestError:
    return RestError(401, code, message)


class RestAuthenticator:
    """Checks one request's headers and signature and answers the calling :class:`App`."""

    def __init__(
        self,
        apps: AppDirectory,
        flow_control: FlowControl,
        *,
        tolerance_ms: int,
        clock: Callable[[], float],
    ) -> None:
        self._apps = apps
        self._flow_control = flow_control
        self._tolerance_ms = tolerance_ms
        self._clock = clock

    async def authenticate(
        self,
        headers: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        *,
        http_method: str,
        path: str,
        body: bytes,
    ) -> tuple[App, int]:
        """The app and the instant (epoch ms) of a correctly signed request.

        Raises:
            RestError: 401 for every authentication failure, 400 for a query
                parameter with a reserved name, 429 when the app is over its
                rate (flow control, shared with the TOP endpoint).
        """
        app_key = headers.get(HEADER_APP_KEY, "").strip()
        timestamp = headers.get(HEADER_TIMESTAMP, "").strip()
        method = headers.get(HEADER_SIGN_METHOD, "").strip()
        signature = headers.get(HEADER_SIGN, "").strip()
        missing = [
            name
            for name, value in (
                ("X-App-Key", app_key),
                ("X-Timestamp", timestamp),
                ("X-Sign-Method", method),
                ("X-Sign", signature),
            )
            if not value
        ]
        if missing:
            raise _unauthorized("missing_credentials", f"missing header(s): {', '.join(missing)}")
        if method.lower() != SIGN_METHOD:
            raise _unauthorized("unsupported_sign_method", f"X-Sign-Method must be {SIGN_METHOD}")
        now = self._clock()
        now_ms = int(now * 1000)
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
            raise _unauthorized("invalid_timestamp", "X-Timestamp must be epoch milliseconds")
        if abs(now_ms - int(timestamp)) > self._tolerance_ms:
            raise _unauthorized(
                "invalid_timestamp",
                f"X-Timestamp is more than {self._tolerance_ms // 1000} s from the server's time",
            )
        pairs = list(query)
        reserved = sorted({name for name, _ in pairs} & RESERVED_PARAMS)
        if reserved:
            raise RestError(
                400, "invalid_request", f"reserved query parameter(s): {', '.join(reserved)}"
            )
        app = await self._apps.get(app_key, now)
        if app is None:
            raise _unauthorized("invalid_app_key", "no app has this app_key")
        params = signing_params(
            pairs,
            app_key=app_key,
            timestamp=timestamp,
            http_method=http_method,
            path=path,
            body=body,
        )
        if not signing.verify(params, app.valid_secrets(now_ms), SIGN_METHOD, signature):
            raise _unauthorized("invalid_signature", "the signature does not match the request")
        if not app.enabled:
            raise _unauthorized("app_disabled", "this app is disabled")
        wait = await self._flow_control.admit(app, now)
        if wait:
            raise RestError(
                429,
                "rate_limited",
                f"this app is over its rate; retry in {wait} s",
                retry_after_s=wait,
            )
        return app, now_ms
