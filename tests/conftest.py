"""Fixtures shared by every test tier: databases, stores and message factories.

PostgreSQL comes from ``IWORK_MC_TEST_PG_DSN``.  Unset, the PostgreSQL cases
skip (a laptop without PostgreSQL); set but unreachable, they fail: CI sets it
and must never pass by skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import iwork_mc
from iwork_mc.apps import App
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import NewMessage
from iwork_mc.store import Store, create_store

from databases import pg_schema_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database URL naming a file (not yet created) in the test's directory."""
    return f"sqlite:///{tmp_path / 'db' / 'iwork-mc.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    with pg_schema_url() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend (SQLite file, PostgreSQL schema), as a URL."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated, open store on each backend, closed afterwards."""
    opened = create_store(database_url)
    await opened.open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def app_factory() -> Callable[..., App]:
    """Build an :class:`App`; keyword arguments override the defaults."""

    def make(**overrides: Any) -> App:
        fields: dict[str, Any] = {
            "app_key": "12345678",
            "name": "Visitor desk",
            "secret": "0123456789abcdef0123456789abcdef",
            "enabled": True,
            "created_at_ms": 1_700_000_000_000,
        }
        return App(**(fields | overrides))

    return make


@pytest.fixture
async def app(store: Store, app_factory: Callable[..., App]) -> App:
    """An enabled app stored in ``store``."""
    stored = app_factory()
    await store.insert_app(stored)
    return stored


@pytest.fixture
def event_factory() -> Callable[..., MobileReceiverMessageEvent]:
    """Build a valid event; keyword arguments override the defaults."""

    def make(**overrides: Any) -> MobileReceiverMessageEvent:
        fields: dict[str, Any] = {
            "msg_key": "visit-1",
            "event_time_millis": 1_700_000_000_000,
            "source": "visitor",
            "action": "arrived",
            "mobile_receiver": "+8613888888888",
            "event_type": "notice",
            "json_data": '{"name": "张三"}',
            "sender": 42,
        }
        return MobileReceiverMessageEvent(**(fields | overrides))

    return make


@pytest.fixture
def message_factory(
    event_factory: Callable[..., MobileReceiverMessageEvent],
) -> Callable[..., NewMessage]:
    """Build a :class:`NewMessage`; ``app_key``, ``request_id`` and ``accepted_at_ms``
    override the message, any other keyword the event."""

    def make(
        *,
        app_key: str = "12345678",
        request_id: str = "req-1",
        accepted_at_ms: int = 1_700_000_001_000,
        **event_fields: Any,
    ) -> NewMessage:
        event = event_factory(**event_fields)
        return NewMessage(
            app_key=app_key,
            event=event,
            fingerprint=event.fingerprint(),
            request_id=request_id,
            accepted_at_ms=accepted_at_ms,
        )

    return make


@pytest.fixture
def race() -> Callable[..., list[Any]]:
    """Run ``script`` in ``count`` processes released at one instant; return their JSON.

    Each process prints ``ready`` once set up, then reads the epoch time at
    which to start from stdin, then prints one JSON document.  Starting only
    when every process is ready makes them really race.
    """

    def run(script: Path, *args: str, count: int = 2, timeout: float = 60) -> list[Any]:
        env = dict(os.environ)
        # The subprocesses import iwork_mc from wherever this process does.
        package_root = str(Path(iwork_mc.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        processes = [
            subprocess.Popen(
                [sys.executable, str(script), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(count)
        ]
        try:
            for process in processes:
                assert process.stdout is not None
                assert "ready" == process.stdout.readline().strip()
            start_at = time.time() + 0.2
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{start_at}\n")
                process.stdin.flush()
            # Each output is small, far below a pipe's buffer: reading in turn cannot block.
            outputs = [process.communicate(timeout=timeout)[0] for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        assert [0] * count == [process.returncode for process in processes]
        return [json.loads(output) for output in outputs]

    return run
