"""Real servers for tests: the gateway in a thread, on a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from iwork_mc.apps import App, new_app_key, new_secret
from iwork_mc.config import Settings
from iwork_mc.gateway.app import create_app
from iwork_mc.gateway.server import HttpImplementation, server_config
from iwork_mc.store import create_store
from iwork_mc.store.base import Store

from databases import pg_schema_url

T = TypeVar("T")


class GatewayThread:
    """``create_app`` served as the CLI serves it, on its own loop and thread, with a migrated store."""

    def __init__(self, settings: Settings, *, http: HttpImplementation = "httptools") -> None:
        self.settings = settings
        self.http = http
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/router/rest"
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.store: Store | None = None
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("gateway did not start")
        if self._error is not None:
            raise RuntimeError("gateway failed to start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.should_exit = True
        self._thread.join(30)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self.store = create_store(
                self.settings.effective_database_url, **self.settings.store_options
            )
            await self.store.open()
            await self.store.migrate()
            config = server_config(
                create_app(self.settings, self.store), self.settings, implementation=self.http
            )
            self._server = uvicorn.Server(config)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        serving = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        # uvicorn exposes "started" as a flag, not an event.
        while not self._server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self._ready.set()
        try:
            await serving
        finally:
            await self.store.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop (where its store lives) and return its result."""
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(30)

    def create_app(self, *, enabled: bool = True) -> App:
        assert self.store is not None
        app = App(
            app_key=new_app_key(),
            name="test",
            secret=new_secret(),
            enabled=enabled,
            created_at_ms=int(time.time() * 1000),
        )
        self.run(self.store.insert_app(app))
        return app

    def message_count(self) -> int:
        assert self.store is not None
        return sum(self.run(self.store.count_by_status()).values())


@contextlib.contextmanager
def gateway_on(backend: str, data_dir: Path) -> Iterator[GatewayThread]:
    """The whole gateway on a fresh ``sqlite`` or ``postgres`` database, apps read every call."""
    if backend == "sqlite":
        with GatewayThread(Settings(data_dir=data_dir, app_cache_ttl_s=0)) as gw:
            yield gw
        return
    with pg_schema_url() as url:
        settings = Settings(data_dir=data_dir, database_url=url, app_cache_ttl_s=0)
        with GatewayThread(settings) as gw:
            yield gw
