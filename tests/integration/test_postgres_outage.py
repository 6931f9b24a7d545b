"""A PostgreSQL outage, for real: the server stopped, then frozen, then brought back.

A throwaway cluster (tests/pgcluster.py) stands in for the database.  During the
outage every call must be answered within the store timeout with code 15
``isp.store-unavailable`` (which SDKs retry), ``/healthz`` must say 503 within
about a second, and once the server is back the first call must be acknowledged,
and the worker must deliver again, within a second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from iwork_mc.apps import App
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.config import Settings
from iwork_mc.messages import NewMessage
from iwork_mc.store import create_store
from iwork_mc.worker import Worker

from pgcluster import PgCluster, pg_cluster
from servers import GatewayThread
from topcalls import event_json, java_layout, signed

pytestmark = pytest.mark.slow

STORE_TIMEOUT_S = 2.0
#: Slack over the store timeout for HTTP, the event loop and a shared, busy machine.
SLACK_S = 0.75
#: The first acknowledgement after the server's return must come within this.
RESUME_S = 1.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with pg_cluster() as started:
        yield started


@pytest.fixture
def gateway(cluster: PgCluster, tmp_path: Path) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path, database_url=cluster.url, app_cache_ttl_s=0,
        store_timeout_s=STORE_TIMEOUT_S,
    )  # fmt: skip
    with GatewayThread(settings) as gw:
        yield gw


@pytest.fixture
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


def send(gateway: GatewayThread, app: App) -> tuple[float, dict[str, Any]]:
    """One TOP call with a new msg_key: (seconds it took, the JSON answer)."""
    event = event_json(msg_key=str(uuid.uuid4()))
    layout = java_layout(signed(app.app_key, app.secret, event=event, format="json"))
    started = time.monotonic()
    response = httpx.post(gateway.url, params=layout["params"], content=layout["content"],
                          headers=layout["headers"], timeout=30)  # fmt: skip
    return time.monotonic() - started, response.json()


def accepted(answer: dict[str, Any]) -> bool:
    result = answer.get("alibaba_iwork_mc_msg_sendmobile_response", {}).get("result", {})
    return result.get("success") is True


def health(gateway: GatewayThread) -> tuple[float, int]:
    started = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=30)
    return time.monotonic() - started, response.status_code


def first_acknowledgement(gateway: GatewayThread, app: App, *, within_s: float) -> float:
    """Seconds from now until a call is accepted; calls one after another, bounded."""
    back = time.monotonic()
    while time.monotonic() - back < within_s + STORE_TIMEOUT_S + SLACK_S:
        _, answer = send(gateway, app)
        if accepted(answer):
            return time.monotonic() - back
    raise AssertionError("no call was accepted after the server came back")


def assert_answered_unavailable(gateway: GatewayThread, app: App) -> None:
    for _ in range(3):
        took, answer = send(gateway, app)
        error = answer["error_response"]
        assert (15, "isp.store-unavailable") == (error["code"], error["sub_code"])
        assert took < STORE_TIMEOUT_S + SLACK_S, f"a call took {took:.2f} s during the outage"
    took, status = health(gateway)
    assert 503 == status
    assert took < 1.0 + SLACK_S, f"/healthz took {took:.2f} s to say 503"


@pytest.mark.parametrize(
    ("fault", "recovery"), [("stop", "start"), ("freeze", "thaw")], ids=["stopped", "frozen"]
)
def test_an_outage_is_answered_in_bounded_time_and_acknowledged_at_once_after_it(
    cluster: PgCluster, gateway: GatewayThread, app: App, fault: str, recovery: str
) -> None:
    """Stopped, or frozen (SIGSTOP: sockets open, nothing answers): 15 within the store
    timeout and /healthz 503 at once, never a hang; back: accepted within 1 s."""
    assert accepted(send(gateway, app)[1])
    getattr(cluster, fault)()
    try:
        assert_answered_unavailable(gateway, app)
    finally:
        getattr(cluster, recovery)()
    took = first_acknowledgement(gateway, app, within_s=RESUME_S)
    assert took < RESUME_S, f"the first acknowledgement came {took:.2f} s after the {recovery}"
    assert 200 == health(gateway)[1]


def delivered(channel: SandboxChannel) -> set[str]:
    """The msg_keys in the sandbox's deliveries.jsonl."""
    lines = channel.path.read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["msg_key"] for line in lines}


async def test_the_worker_delivers_within_a_second_of_the_return(
    cluster: PgCluster,
    tmp_path: Path,
    message_factory: Callable[..., NewMessage],
    app_factory: Callable[..., App],
) -> None:
    """A worker that met the outage delivers within a second of the server's return."""
    store = create_store(cluster.url, timeout=STORE_TIMEOUT_S)
    await store.open()
    channel = SandboxChannel(tmp_path / "sandbox")
    await channel.open()
    stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    try:
        await store.migrate()
        app = app_factory(app_key=f"w{uuid.uuid4().hex[:7]}")
        await store.insert_app(app)
        message = message_factory(app_key=app.app_key, msg_key=str(uuid.uuid4()))
        await store.accept(message)
        await asyncio.to_thread(cluster.stop)
        worker = Worker(store, channel, rng=random.Random(7), worker_id="w1", poll_interval=0.05)
        serving = asyncio.create_task(worker.serve(stop))
        await asyncio.sleep(STORE_TIMEOUT_S + 0.5)  # the worker fails a claim at least
        assert not delivered(channel)
        await asyncio.to_thread(cluster.start)
        back = time.monotonic()
        # The file is the handset: polling it is the only way to see the delivery.
        while time.monotonic() - back < 10 and message.event.msg_key not in delivered(channel):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        took = time.monotonic() - back
        assert message.event.msg_key in delivered(channel)
        assert took < RESUME_S, f"the worker delivered {took:.2f} s after the return"
    finally:
        stop.set()
        if serving is not None:
            await asyncio.wait_for(serving, 30)
        await channel.close()
        await store.close()


class _LosesTheDatabaseAfterSending(SandboxChannel):
    """The sandbox, but the database stops right after the handset got the message."""

    def __init__(self, path: Path, cluster: PgCluster) -> None:
        super().__init__(path)
        self.cluster = cluster
        self.stopped = asyncio.Event()

    async def send(self, message: Any, text: str) -> Any:
        result = await super().send(message, text)
        await asyncio.to_thread(self.cluster.stop)
        self.stopped.set()
        return result


async def test_a_result_learned_during_an_outage_is_recorded_on_return_not_sent_again(
    cluster: PgCluster,
    tmp_path: Path,
    message_factory: Callable[..., NewMessage],
    app_factory: Callable[..., App],
) -> None:
    """The worker keeps what the channel answered through the outage (while its lease lasts):
    the message is recorded delivered once the server is back, and never sent twice."""
    store = create_store(cluster.url, timeout=STORE_TIMEOUT_S)
    await store.open()
    channel = _LosesTheDatabaseAfterSending(tmp_path / "sandbox", cluster)
    await channel.open()
    stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    try:
        await store.migrate()
        app = app_factory(app_key=f"r{uuid.uuid4().hex[:7]}")
        await store.insert_app(app)
        message = message_factory(app_key=app.app_key, msg_key=str(uuid.uuid4()))
        await store.accept(message)
        # A short lease: without the fix the message is claimed again and resent within it.
        worker = Worker(store, channel, rng=random.Random(7), worker_id="w1", poll_interval=0.05,
                        lease_ms=8_000)  # fmt: skip
        serving = asyncio.create_task(worker.serve(stop))
        await asyncio.wait_for(channel.stopped.wait(), 10)
        deadline = time.monotonic()
        await asyncio.sleep(STORE_TIMEOUT_S + 1.0)  # the worker's record fails at least once
        await asyncio.to_thread(cluster.start)
        stored = None
        while time.monotonic() < deadline + 12:
            stored = await store.get_message(app.app_key, message.event.msg_key)
            if stored is not None and stored.status == "delivered":
                break
            await asyncio.sleep(0.1)
        assert stored is not None and "delivered" == stored.status
        await asyncio.sleep(8.5)  # past the lease: a dropped result would be resent by now
        lines = channel.path.read_text(encoding="utf-8").splitlines()
        assert 1 == sum(json.loads(line)["msg_key"] == message.event.msg_key for line in lines)
        timeline = await store.timeline(stored.id)
        claims = [entry.detail for entry in timeline if entry.kind == "claimed"]
        assert 1 == len(claims), claims  # a second claim would carry reclaimed_from
        assert "reclaimed_from" not in claims[0]
    finally:
        stop.set()
        if serving is not None:
            await asyncio.wait_for(serving, 30)
        await channel.close()
        await store.close()


def test_a_read_only_server_is_unavailable_not_an_error(
    cluster: PgCluster, gateway: GatewayThread, app: App
) -> None:
    """A primary turned read-only (a switchover) answers isp.store-unavailable, then recovers."""
    assert accepted(send(gateway, app)[1])
    cluster.sql("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the reload reaches every session within moments
            _, answer = send(gateway, app)
            if not accepted(answer):
                break
        error = answer["error_response"]
        assert (15, "isp.store-unavailable") == (error["code"], error["sub_code"])
    finally:
        cluster.sql("ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
    took = first_acknowledgement(gateway, app, within_s=RESUME_S)
    assert took < RESUME_S, f"the first acknowledgement came {took:.2f} s after the switch back"


def test_readyz_says_not_ready_while_the_server_reached_is_read_only(
    cluster: PgCluster, gateway: GatewayThread
) -> None:
    """A primary turned read-only (a switchover under way) is not ready, though it answers
    reads; /livez stays up; ready again once it takes writes."""

    def readyz() -> int:
        return httpx.get(f"http://127.0.0.1:{gateway.port}/readyz", timeout=5).status_code

    assert 200 == readyz()
    cluster.sql("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 5
        while readyz() == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 503 == readyz()
        live = httpx.get(f"http://127.0.0.1:{gateway.port}/livez", timeout=5)
        assert 200 == live.status_code
    finally:
        cluster.sql("ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
    deadline = time.monotonic() + 5
    while readyz() != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 200 == readyz()


def test_callers_of_one_app_waiting_on_a_flow_control_lease_are_answered_in_one_timeout(
    cluster: PgCluster, tmp_path: Path
) -> None:
    """Concurrent calls of one app share one flow-control lease: when the store is down,
    the lease's failure answers them all, each within one store timeout (not one per caller
    queued ahead of it)."""
    settings = Settings(
        data_dir=tmp_path, database_url=cluster.url, app_cache_ttl_s=60,
        store_timeout_s=STORE_TIMEOUT_S, app_rate_limit=10, app_rate_burst=1,
    )  # fmt: skip
    with GatewayThread(settings) as gateway:
        app = gateway.create_app()
        assert accepted(send(gateway, app)[1])  # the app is cached; each call needs a lease
        time.sleep(0.2)  # past the slice's refusal period
        cluster.stop()
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: send(gateway, app), range(4)))
        finally:
            cluster.start()
    for took, answer in answers:
        error = answer["error_response"]
        assert (15, "isp.store-unavailable") == (error["code"], error["sub_code"])
        assert took < STORE_TIMEOUT_S + SLACK_S, f"a call took {took:.2f} s during the outage"
