"""The ASGI app: ``/router/rest`` (TOP), health, ``/metrics``, the ``/v1`` API, ``/console``.

Health comes in three depths:

- ``/livez``: the process answers (no I/O at all), for a liveness probe;
- ``/readyz``: the store answers within :data:`PROBE_TIMEOUT_S` and every
  channel of an in-process worker could send, for a readiness probe;
- ``/healthz``: the detailed view (each channel's sessions), with the same
  bounded store probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from iwork_mc import metrics
from iwork_mc.config import Settings
from iwork_mc.console import create_console_app
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.gateway.methods import build_methods
from iwork_mc.gateway.receipts import receipt_route
from iwork_mc.gateway.rest import create_rest_app
from iwork_mc.gateway.top_endpoint import TopEndpoint
from iwork_mc.store.base import QueueSnapshot, Store, StoreError

__all__ = ["PROBE_TIMEOUT_S", "SCRAPE_TIMEOUT_S", "create_app"]

#: How long /readyz and /healthz wait for the store's answer (one probe serves
#: both): they answer well within a second whatever the store does.
PROBE_TIMEOUT_S = 0.5
#: How long /metrics waits for the store's counts before answering without them.
SCRAPE_TIMEOUT_S = 2.0


class _StoreProbe:
    """Asks the store whether it answers, waiting at most ``wait_s`` for the answer.

    A probe that takes longer is not cancelled (that could wait on the driver)
    but left to finish within the store's own timeout, and the next health
    check waits on it rather than starting another: one probe at a time.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: asyncio.Task[bool] | None = None

    async def answers(self, wait_s: float) -> bool:
        probe = self._pending
        if probe is None or probe.done():
            probe = self._pending = asyncio.create_task(self._probe())
        done, _ = await asyncio.wait({probe}, timeout=wait_s)
        return bool(done) and probe.result()

    async def _probe(self) -> bool:
        try:
            await self._store.check_writable()
        except StoreError:
            return False
        return True


def create_app(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    channel_health: Callable[[], dict[str, Any]] | None = None,
    channel_breakers: Callable[[], dict[str, dict[str, Any]]] | None = None,
    channels_ready: Callable[[], Mapping[str, bool]] | None = None,
) -> ASGIApp:
    """Build the gateway around an opened ``store``; the caller owns the store's lifetime.

    ``channel_health``, ``channel_breakers`` and ``channels_ready`` (a worker in the
    same process) add its sessions' states and its channels' circuit breakers to
    ``/healthz`` (and the breakers to ``GET /v1/channels``), and its channels'
    readiness to ``/readyz``.
    """
    # One app cache for both APIs: each app is read from the store once per ttl.
    apps = AppDirectory(store, settings.app_cache_ttl_s)
    # One budget per app for both APIs, shared with the other gateway processes.
    flow_control = FlowControl(store, settings.app_rate_limit, settings.app_rate_burst)
    top = TopEndpoint(
        methods=build_methods(store, settings),
        apps=apps,
        flow_control=flow_control,
        timestamp_tolerance_ms=settings.timestamp_tolerance_s * 1000,
        max_body_bytes=settings.max_body_bytes,
        clock=clock,
    )

    probe = _StoreProbe(store)

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        store_up = await probe.answers(PROBE_TIMEOUT_S)
        channels = dict(channels_ready()) if channels_ready is not None else {}
        ready = store_up and all(channels.values())
        body = {
            "status": "ready" if ready else "not ready",
            "store": store_up,
            "channels": channels,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def healthz(request: Request) -> JSONResponse:
        if not await probe.answers(PROBE_TIMEOUT_S):
            return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
        body: dict[str, Any] = {"status": "ok"}
        if channel_health is not None:
            body["channel"] = channel_health()
        if channel_breakers is not None:
            body["breakers"] = channel_breakers()
        return JSONResponse(body)

    async def metrics_page(request: Request) -> Response:
        now_ms = int(clock() * 1000)
        snapshot: QueueSnapshot | None
        try:
            snapshot = await asyncio.wait_for(store.queue_snapshot(now_ms), SCRAPE_TIMEOUT_S)
        except (StoreError, TimeoutError):
            snapshot = None  # iwork_mc_store_up 0; the process's own counters still count
        return Response(metrics.exposition(snapshot, now_ms), media_type=metrics.CONTENT_TYPE)

    rest = Starlette(
        routes=[
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            receipt_route(settings, store, clock),
            Mount(
                "/console",
                app=create_console_app(settings, store, clock=clock, channel_health=channel_health),
            ),
            # /v1/..., /openapi.json, /docs and /redoc (FastAPI, assets served locally);
            # everything else is its 404.
            Mount(
                "/",
                app=create_rest_app(
                    settings,
                    store,
                    clock=clock,
                    apps=apps,
                    flow_control=flow_control,
                    channel_breakers=channel_breakers,
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
