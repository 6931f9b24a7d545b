"""Health endpoints and store outages, through the real gateway on a real socket.

``/livez`` does no I/O; ``/readyz`` and ``/healthz`` probe the store with a short
timeout, so a store that hangs is reported within a second.  While the store
is unavailable the log gets one warning with the cause, not a line (or a
traceback) per call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from iwork_mc.config import Settings
from iwork_mc.store import StoreUnavailable, create_store

from servers import GatewayThread
from topcalls import event_json, java_layout, signed


def timed_get(http: httpx.Client, url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = http.get(url)
    return answer, time.monotonic() - started


def store_up(http: httpx.Client, base_url: str) -> float:
    for family in text_string_to_metric_families(http.get(f"{base_url}/metrics").text):
        if family.name == "iwork_mc_store_up":
            return float(family.samples[0].value)
    raise AssertionError("no iwork_mc_store_up in /metrics")


def test_live_and_ready_with_a_healthy_store(tmp_path: Path) -> None:
    """/livez says ok; /readyz says ready, naming the store; /healthz keeps its detailed view."""
    with GatewayThread(Settings(data_dir=tmp_path)) as gateway, httpx.Client(timeout=5) as http:
        base = gateway.url.removesuffix("/router/rest")
        live = http.get(f"{base}/livez")
        assert (200, "ok") == (live.status_code, live.text)
        ready = http.get(f"{base}/readyz")
        assert 200 == ready.status_code
        assert {"status": "ready", "store": True, "channels": {}} == ready.json()
        assert {"status": "ok"} == http.get(f"{base}/healthz").json()
        assert 1.0 == store_up(http, base)


@pytest.mark.postgres
def test_a_hanging_store_is_not_ready_within_a_second(pg_url: str, tmp_path: Path) -> None:
    """With the apps table locked by another session, /readyz and /healthz answer 503 in < 1 s."""
    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    with GatewayThread(settings) as gateway, httpx.Client(timeout=10) as http:
        base = gateway.url.removesuffix("/router/rest")
        with psycopg.connect(pg_url) as locker:
            locker.execute("LOCK TABLE apps IN ACCESS EXCLUSIVE MODE")
            ready, ready_s = timed_get(http, f"{base}/readyz")
            health, health_s = timed_get(http, f"{base}/healthz")
            live, live_s = timed_get(http, f"{base}/livez")
            locker.rollback()
        assert (503, {"status": "not ready", "store": False, "channels": {}}) == (
            ready.status_code, ready.json()
        )  # fmt: skip
        assert 503 == health.status_code
        assert 200 == live.status_code
        assert max(ready_s, health_s, live_s) < 1.0
        assert 200 == http.get(f"{base}/readyz").status_code


def test_a_store_outage_logs_one_warning_with_its_cause(tmp_path: Path) -> None:
    """Calls during a lock past the busy timeout log one store_unavailable, then store_recovered."""
    settings = Settings(data_dir=tmp_path, sqlite_busy_timeout_ms=100, app_cache_ttl_s=60)
    with GatewayThread(settings) as gateway, httpx.Client(timeout=10) as http:
        app = gateway.create_app()

        def call(n: int) -> dict[str, object]:
            event = event_json(msg_key=f"outage-{n}", mobile_receiver="13912345678")
            params = signed(app.app_key, app.secret, event=event, format="json")
            answer: dict[str, object] = http.post(gateway.url, **java_layout(params)).json()
            return answer

        lock = sqlite3.connect(tmp_path / "iwork-mc.db", isolation_level=None)
        with structlog.testing.capture_logs() as logs:
            try:
                lock.execute("BEGIN IMMEDIATE")
                codes = [call(n)["error_response"]["code"] for n in range(3)]  # type: ignore[index]
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert "alibaba_iwork_mc_msg_sendmobile_response" in call(99)
    assert [15, 15, 15] == codes
    warnings = [entry for entry in logs if entry["log_level"] in ("warning", "error")]
    assert ["store_unavailable"] == [entry["event"] for entry in warnings]
    assert "locked" in warnings[0]["reason"]
    assert "sqlite" == warnings[0]["backend"]
    assert not any("exc_info" in entry or "exception" in entry for entry in logs)
    assert 1 == sum(entry["event"] == "store_recovered" for entry in logs)
    assert "13912345678" not in repr(logs)


class TCPProxy:
    """A loopback TCP forwarder to PostgreSQL that a test can take down and bring back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.postgres
async def test_a_postgres_outage_is_logged_once_with_its_cause(pg_url: str) -> None:
    """PostgreSQL unreachable for several calls: one store_unavailable with the cause, then
    store_recovered once it answers again; no traceback."""
    parts = urlsplit(pg_url)
    proxy = TCPProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.up()
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    store = create_store(urlunsplit(parts._replace(netloc=netloc)), timeout=0.3)
    await store.open()
    try:
        await store.migrate()
        with structlog.testing.capture_logs() as logs:
            await proxy.down()
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await store.get_app("12345678")
            await proxy.up()
            assert None is await store.get_app("12345678")
    finally:
        await store.close()
        await proxy.down()
    warnings = [entry for entry in logs if entry["log_level"] in ("warning", "error")]
    assert ["store_unavailable"] == [entry["event"] for entry in warnings]
    assert "postgres" == warnings[0]["backend"]
    assert "PostgreSQL" in warnings[0]["reason"]
    assert 1 == sum(entry["event"] == "store_recovered" for entry in logs)
    assert not any("exc_info" in entry or "exception" in entry for entry in logs)
