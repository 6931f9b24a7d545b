"""The ASGI application: ``/router/rest`` (TOP), ``/healthz`` and the ``/v1`` REST API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from iwork_mc.config import Settings
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.gateway.methods import build_methods
from iwork_mc.gateway.rest import create_rest_app
from iwork_mc.gateway.top_endpoint import TopEndpoint
from iwork_mc.store.base import Store, StoreError

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    channel_health: Callable[[], dict[str, Any]] | None = None,
    channel_breakers: Callable[[], dict[str, dict[str, Any]]] | None = None,
) -> ASGIApp:
    """Build the gateway around an opened ``store``; the caller owns the store's lifetime.

    ``channel_health`` and ``channel_breakers`` (a worker in the same process)
    add its sessions' states and its channels' circuit breakers to ``/healthz``
    (and the breakers to ``GET /v1/channels``).
    """
    # One app cache for both APIs: each app is read from the store once per ttl.
    apps = AppDirectory(store, settings.app_cache_ttl_s)
    top = TopEndpoint(
        methods=build_methods(store, settings),
        apps=apps,
        flow_control=FlowControl(settings.app_rate_limit, settings.app_rate_burst),
        timestamp_tolerance_ms=settings.timestamp_tolerance_s * 1000,
        max_body_bytes=settings.max_body_bytes,
        clock=clock,
    )

    async def healthz(request: Request) -> JSONResponse:
        try:
            await store.get_app("")
        except StoreError:
            return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
        body: dict[str, Any] = {"status": "ok"}
        if channel_health is not None:
            body["channel"] = channel_health()
        if channel_breakers is not None:
            body["breakers"] = channel_breakers()
        return JSONResponse(body)

    rest = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            # /v1/..., /openapi.json and /docs (FastAPI); everything else is its 404.
            Mount(
                "/",
                app=create_rest_app(
                    settings, store, clock=clock, apps=apps, channel_breakers=channel_breakers
                ),
            ),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # The TOP route is the hot path: served directly, without the router
        # and middleware layers the other routes go through.
        if scope["type"] == "http" and scope["path"] == "/router/rest":
            await top(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app
