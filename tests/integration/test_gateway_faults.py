"""Faults behind the gateway: a locked store answers 15, a bug answers 10; nothing is stored."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from iwork_mc.apps import App
from iwork_mc.config import Settings
from iwork_mc.gateway.directory import AppDirectory
from iwork_mc.gateway.flowcontrol import FlowControl
from iwork_mc.gateway.methods import SEND_MOBILE, TopCall, build_methods
from iwork_mc.gateway.top_endpoint import TopEndpoint
from iwork_mc.store import Store
from iwork_mc.top.errors import PlatformCode, TopError

from servers import GatewayThread
from topcalls import event_json, java_layout, signed


def fresh_event() -> str:
    return event_json(msg_key=f"k-{time.time_ns()}")


def test_locked_store_answers_15_and_recovers(tmp_path: Path) -> None:
    """While another process holds the write lock past the busy timeout the answer is 15 isp.*."""
    settings = Settings(data_dir=tmp_path, sqlite_busy_timeout_ms=200, app_cache_ttl_s=60)
    with GatewayThread(settings) as gateway, httpx.Client(timeout=10) as http:
        app = gateway.create_app()

        def call() -> dict[str, Any]:
            return java_layout(signed(app.app_key, app.secret, event=fresh_event(), format="json"))

        assert "alibaba_iwork_mc_msg_sendmobile_response" in http.post(gateway.url, **call()).json()
        before = gateway.message_count()
        lock = sqlite3.connect(tmp_path / "iwork-mc.db", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            error = http.post(gateway.url, **call()).json()["error_response"]
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert (15, "Remote service error", "isp.store-unavailable") == (
            error["code"], error["msg"], error["sub_code"]
        )  # fmt: skip
        assert before == gateway.message_count()
        assert "alibaba_iwork_mc_msg_sendmobile_response" in http.post(gateway.url, **call()).json()


class Crashing:
    async def __call__(self, call: TopCall) -> Mapping[str, Any]:
        raise RuntimeError("a bug")


async def test_unexpected_error_answers_10(store: Store, app: App) -> None:
    """A handler that raises answers 10 Service Currently Unavailable with isp.unknown-error."""
    endpoint = TopEndpoint(
        methods={"alibaba.iwork.mc.msg.sendmobile": Crashing()},
        apps=AppDirectory(store, ttl=0),
        flow_control=FlowControl(store, 0, 1),
        timestamp_tolerance_ms=600_000,
        max_body_bytes=65_536,
    )
    transport = httpx.ASGITransport(app=endpoint)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        call = signed(app.app_key, app.secret, event=fresh_event(), format="json")
        response = await client.post("/router/rest", **java_layout(call))
    assert 200 == response.status_code
    error = response.json()["error_response"]
    assert (10, "Service Currently Unavailable", "isp.unknown-error") == (
        error["code"], error["msg"], error["sub_code"]
    )  # fmt: skip


async def test_event_limit_counts_utf8_bytes_not_characters(store: Store, app: App) -> None:
    """48 characters of Chinese are 128 UTF-8 bytes: over a 100-byte limit they answer 41."""
    handler = build_methods(store, Settings(max_event_bytes=100))[SEND_MOBILE]

    def call(event: str) -> TopCall:
        return TopCall({"mobile_receiver_message_event": event}, app, "r", 0)

    with pytest.raises(TopError) as too_long:
        await handler(call('{"x":"' + "张" * 40 + '"}'))
    assert PlatformCode.INVALID_ARGUMENTS == too_long.value.code
    with pytest.raises(TopError) as fits:  # 88 bytes: within the limit, so the fields are checked
        await handler(call('{"x":"' + "a" * 80 + '"}'))
    assert PlatformCode.REMOTE_SERVICE_FIELD_ERROR == fits.value.code
