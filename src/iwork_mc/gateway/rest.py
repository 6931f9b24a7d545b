"""The ``/v1`` REST API (JSON), its OpenAPI schema at ``/openapi.json``, ``/docs`` and ``/redoc``.

Each app reads and changes only its own messages, templates, opt-outs and
callback URL; every call is signed with the app's TOP secret
(:mod:`iwork_mc.gateway.rest_auth`).  The routes live in ``rest_messages``,
``rest_templates`` and ``rest_account``; this module assembles them and maps
every failure to one error shape: ``{"error": {"code": ..., "message": ...}}``.

Receivers are never logged: log lines carry the app_key, the route template
and the status, not the path (which may hold a phone number).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iwork_mc import __version__
from iwork_mc.compose import AcceptRules
from iwork_mc.config import Settings
from iwork_mc.gateway import rest_account, rest_channels, rest_messages, rest_templates, wire
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.gateway.rest_auth import RestAuthenticator, RestError
from iwork_mc.gateway.rest_common import RestContext
from iwork_mc.gateway.rest_models import ErrorOut
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError, StoreUnavailable

__all__ = ["create_rest_app"]

log = structlog.get_logger("iwork_mc.gateway.rest")

_DESCRIPTION = """\
The message center's own API: read your messages and their timelines, retry
failed ones, and manage your templates, opt-outs and status callback URL.

Every `/v1` call is signed with your app's secret: send `X-App-Key`,
`X-Timestamp` (epoch milliseconds), `X-Sign-Method: hmac-sha256` and `X-Sign`.
See docs/reference/rest.md for the string to sign, with a worked example.
Errors are `{"error": {"code": "...", "message": "..."}}`.
"""


_COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong credentials, or a stale timestamp."},
    422: {"model": ErrorOut, "description": "A parameter or the body is not valid."},
    429: {
        "model": ErrorOut,
        "description": "The app is over its rate: retry after the seconds in Retry-After.",
    },
}


def _error(status: int, code: str, message: str, /, **extra: Any) -> JSONResponse:
    body = {"code": code, "message": message}
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse({"error": body}, status_code=status)


async def _on_rest_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RestError)
    if exc.status == 401:
        log.info("rest_refused", code=exc.code, app_key=request.headers.get("x-app-key"))
    response = _error(exc.status, exc.code, exc.message, **exc.extra)
    if exc.status == 429:
        response.headers["Retry-After"] = str(exc.extra["retry_after_s"])
    return response


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return _error(422, "invalid_request", message, details=details)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    try:
        message = HTTPStatus(exc.status_code).phrase
    except ValueError:
        message = str(exc.detail)
    response = _error(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    if isinstance(exc, StoreUnavailable):
        # The store logs the outage once, with its cause.
        log.debug("store_unavailable", **outage.describe(exc))
        return _error(503, "store_unavailable", "the message store is unavailable, retry later")
    log.error("store_error", **outage.describe(exc))
    return _error(500, "store_error", "the message store failed")


def create_rest_app(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    apps: AppDirectory | None = None,
    flow_control: FlowControl | None = None,
    channel_breakers: Callable[[], dict[str, dict[str, Any]]] | None = None,
) -> ASGIApp:
    """The ``/v1`` API around an opened ``store`` (the caller owns its lifetime).

    Args:
        settings: the gateway's settings (timestamp window, app cache, regions).
        store: the store, opened.
        clock: epoch seconds, for timestamps and the instants written.
        apps: the app cache to share with the TOP endpoint; a new one by default.
        flow_control: the apps' rates, shared with the TOP endpoint; a new one by default.
        channel_breakers: a worker in the same process: its channels' breakers.

    Returns:
        An ASGI app serving ``/v1/...``, ``/openapi.json``, ``/docs``, ``/redoc`` and
        their assets under ``/docs-assets``.
    """
    # Swagger UI and ReDoc with their scripts served from the package (no CDN):
    # /docs and /redoc work on a machine with no way out.
    app = FastAPIOffline(
        title="iwork-mc REST API",
        version=__version__,
        description=_DESCRIPTION,
        static_url="/docs-assets",
    )
    app.state.rest = RestContext(
        settings=settings,
        store=store,
        auth=RestAuthenticator(
            apps or AppDirectory(store, settings.app_cache_ttl_s),
            flow_control or FlowControl(store, settings.app_rate_limit, settings.app_rate_burst),
            tolerance_ms=settings.timestamp_tolerance_s * 1000,
            clock=clock,
        ),
        rules=AcceptRules.from_settings(settings),
        clock=clock,
        channel_breakers=channel_breakers,
    )
    app.add_exception_handler(RestError, _on_rest_error)
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(StoreError, _on_store_error)
    for module in (rest_messages, rest_templates, rest_account, rest_channels):
        app.include_router(module.router, responses=_COMMON_RESPONSES)
    return _docs_kept_local(_body_limited(app, settings.max_body_bytes))


#: The API docs pages may load only what this server serves.  Their HTML has inline
#: scripts and ReDoc styles itself inline and renders in a blob: worker; ReDoc's
#: sidebar would fetch a logo from its vendor's CDN: the browser refuses that.
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


def _docs_kept_local(app: ASGIApp) -> ASGIApp:
    """Add the Content-Security-Policy of :data:`_DOCS_CSP` to ``/docs`` and ``/redoc``."""

    async def kept_local(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in ("/docs", "/redoc"):
            await app(scope, receive, send)
            return

        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"content-security-policy", _DOCS_CSP)]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_csp)

    return kept_local


def _body_limited(app: ASGIApp, limit: int) -> ASGIApp:
    """Refuse a body over ``limit`` bytes while it arrives, before FastAPI holds it all."""

    async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            body = await wire.read_request_body(scope, receive, limit)
        except wire.BodyTooLarge:
            await _error(413, "body_too_large", f"the body exceeds {limit} bytes")(
                scope, receive, send
            )
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # only a disconnect is left to come
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return bounded
