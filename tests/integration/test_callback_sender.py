"""The callback sender against a real store and a real HTTP receiver on 127.0.0.1.

The receiver checks every signature with the function printed in
docs/howto/callbacks.md (run from the page itself, not imported from iwork_mc).
Unit tests of the body, the signature and the schedule are in
tests/unit/test_callbacks.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import ssl
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from iwork_mc.apps import App
from iwork_mc.callback_sender import CallbackSender
from iwork_mc.callback_targets import AllowList, IPAddress
from iwork_mc.callbacks import check_callback_url
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store, create_store
from iwork_mc.store.base import StoreUnavailable
from iwork_mc.worker import Worker

T0 = 1_700_000_010.0
SECRET = "0123456789abcdef0123456789abcdef"  # the conftest app's
DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "callbacks.md"
FAST_RETRY = RetryPolicy(base_s=1.0, max_delay_s=1.0, max_attempts=5)
#: The receivers listen on 127.0.0.1: the operator's allow-list is how a sender may reach them.
LOOPBACK = AllowList.parse("127.0.0.1")


def documented_verify() -> Callable[..., bool]:
    """``verify_signature`` exactly as a receiver copies it from the how-to."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text[text.index("<!-- verify-snippet") :], re.DOTALL)
    assert block is not None
    namespace: dict[str, Any] = {"__name__": "receiver"}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify_signature"]
    return verify


VERIFY = documented_verify()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Received:
    event_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class Receiver:
    """A small HTTP/1.1 server: answers POSTs with scripted statuses, verifying each signature.

    ``answers`` are used in turn, then ``default``.  ``delay_s`` holds each
    answer back (while it is counted as in flight for its event id).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        secret: str = SECRET,
        answers: tuple[int, ...] = (),
        default: int = 200,
        delay_s: float = 0.0,
        extra_headers: str = "",
        port: int = 0,
    ) -> None:
        self.clock = clock
        self.secret = secret
        self.answers = list(answers)
        self.default = default
        self.delay_s = delay_s
        self.extra_headers = extra_headers
        self.port = port
        self.received: list[Received] = []
        self.arrived = asyncio.Event()
        self._in_flight: Counter[str] = Counter()
        self.max_in_flight_per_event = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        # A token in the query: it must never reach a log line or a body.
        return f"http://127.0.0.1:{self.port}/hooks/iwork?token=t0ps3cret"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()  # POST /hooks/iwork?token=… HTTP/1.1
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            event_id = headers.get("x-iwork-event-id", "")
            verified = VERIFY(
                self.secret,
                headers.get("x-iwork-timestamp", ""),
                body,
                headers.get("x-iwork-signature", ""),
                now_ms=int(self.clock() * 1000),
            )
            self.received.append(Received(event_id, headers, body, verified))
            self.arrived.set()
            self._in_flight[event_id] += 1
            self.max_in_flight_per_event = max(
                self.max_in_flight_per_event, self._in_flight[event_id]
            )
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self._in_flight[event_id] -= 1
            status = self.answers.pop(0) if self.answers else self.default
            writer.write(
                f"HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\nConnection: close\r\n"
                f"{self.extra_headers}\r\nok".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the sender gave up on us (a timeout test)
        finally:
            writer.close()


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sender_for(store: Store, clock: Callable[[], float], **kwargs: Any) -> CallbackSender:
    options: dict[str, Any] = {
        "worker_id": "cb1",
        "clock": clock,
        "rng": random.Random(7),
        "retry": FAST_RETRY,
        "app_cache_ttl_s": 0.0,
        "timeout_s": 5.0,
        "lease_ms": 30_000,
        "allow": LOOPBACK,
    }
    return CallbackSender(store, **(options | kwargs))


async def accept(store: Store, make: Callable[..., NewMessage], **fields: Any) -> int:
    return (await store.accept(make(**fields))).message_id


async def callback_entries(store: Store, message_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (entry.kind, entry.detail)
        for entry in await store.timeline(message_id)
        if entry.kind.startswith("callback_")
    ]


async def test_status_changes_are_posted_signed_and_recorded(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """A message delivered by the worker produces signed callbacks the receiver verifies."""
    clock = Clock()
    async with Receiver(clock) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        channel = SandboxChannel(tmp_path / "sandbox")
        await channel.open()
        worker = Worker(store, channel, clock=clock, worker_id="w1")
        assert 1 == await worker.run_once()
        sender = sender_for(store, clock)

        assert 2 == await sender.run_once()
        assert 0 == await sender.run_once()

    assert [True, True] == [r.verified for r in receiver.received]
    bodies = [r.json for r in receiver.received]
    # The sandbox confirms at once: sending → delivered, with no submitted in between.
    assert ["queued", "delivered"] == [b["status"] for b in bodies]
    assert [False, True] == [b["final"] for b in bodies]
    assert {(app.app_key, "visit-1", message_id)} == {
        (b["app_key"], b["msg_key"], b["message_id"]) for b in bodies
    }
    assert [r.event_id for r in receiver.received] == [str(b["event_id"]) for b in bodies]
    assert sorted(b["event_id"] for b in bodies) == [b["event_id"] for b in bodies]
    for r in receiver.received:
        assert b"13888888888" not in r.body and "张三".encode() not in r.body
        assert "1" == r.headers["x-iwork-attempt"]
        assert r.headers["user-agent"].startswith("iwork-mc/")
    entries = await callback_entries(store, message_id)
    assert ["callback_delivered"] * 2 == [kind for kind, _ in entries]
    assert [(1, 200)] * 2 == [(d["attempt"], d["status_code"]) for _, d in entries]


async def test_receiver_failing_twice_gets_it_on_the_third_try(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """500, 500, then 200: delivered once, with both failed tries on the timeline."""
    clock = Clock()
    async with Receiver(clock, answers=(500, 500)) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock)

        assert 1 == await sender.run_once()
        assert 0 == await sender.run_once(), "not due again before its retry time"
        for _ in range(2):
            clock.now += 1.0
            assert 1 == await sender.run_once()
        clock.now += 10.0
        assert 0 == await sender.run_once()

    assert 3 == len(receiver.received)
    assert {"1"} == {r.event_id for r in receiver.received}
    assert ["1", "2", "3"] == [r.headers["x-iwork-attempt"] for r in receiver.received]
    assert all(r.verified for r in receiver.received), "each try is signed afresh"
    entries = await callback_entries(store, message_id)
    assert [
        ("callback_failed", 1, "HTTP 500"),
        ("callback_failed", 2, "HTTP 500"),
        ("callback_delivered", 3, None),
    ] == [(kind, d["attempt"], d.get("error")) for kind, d in entries]
    assert all(d["retry_at_ms"] is not None for kind, d in entries if kind == "callback_failed")


async def test_receiver_down_then_up(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A refused connection is retried; once the receiver listens, the event arrives."""
    clock = Clock()
    port = free_port()
    receiver = Receiver(clock, port=port)
    await store.set_callback_url(app.app_key, receiver.url)
    message_id = await accept(store, message_factory)
    sender = sender_for(store, clock)

    assert 1 == await sender.run_once()
    async with receiver:
        clock.now += 1.0
        assert 1 == await sender.run_once()

    assert [("1", True)] == [(r.event_id, r.verified) for r in receiver.received]
    entries = await callback_entries(store, message_id)
    assert [
        ("callback_failed", "network error: ConnectError"),
        ("callback_delivered", None),
    ] == [(kind, d.get("error")) for kind, d in entries]


async def test_gives_up_after_max_attempts(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A receiver that always fails gets max_attempts tries, then none; the timeline says so."""
    clock = Clock()
    async with Receiver(clock, default=503) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(
            store, clock, retry=RetryPolicy(base_s=1, max_delay_s=1, max_attempts=3)
        )
        for _ in range(3):
            assert 1 == await sender.run_once()
            clock.now += 1.0
        clock.now += 86_400.0
        assert 0 == await sender.run_once()

    assert 3 == len(receiver.received)
    entries = await callback_entries(store, message_id)
    assert ["callback_failed"] * 3 == [kind for kind, _ in entries]
    last = entries[-1][1]
    assert (3, None) == (last["attempt"], last["retry_at_ms"])
    assert "HTTP 503; given up after 3 attempts" == last["error"]


async def test_gone_gives_up_at_once(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """410 Gone is the receiver's refusal for good: one try, given up."""
    clock = Clock()
    async with Receiver(clock, default=410) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock)
        assert 1 == await sender.run_once()
        clock.now += 3600.0
        assert 0 == await sender.run_once()

    assert 1 == len(receiver.received)
    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", None) == (kind, detail["retry_at_ms"])
    assert "410" in detail["error"]


async def test_redirect_is_not_followed(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A 302 is a failed try to retry; the Location is never requested."""
    clock = Clock()
    async with Receiver(
        clock, answers=(302,), extra_headers="Location: http://127.0.0.1:1/elsewhere\r\n"
    ) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock)
        assert 1 == await sender.run_once()

    assert 1 == len(receiver.received)
    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", "HTTP 302") == (kind, detail["error"])


async def test_slow_receiver_times_out(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A receiver that answers too late is a failed try, not a stuck sender."""
    clock = Clock()
    async with Receiver(clock, delay_s=2.0) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock, timeout_s=0.3, lease_ms=1_000)
        assert 1 == await asyncio.wait_for(sender.run_once(), 5)

    assert 1 == len(receiver.received)
    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", "timeout after 0.3 s") == (kind, detail["error"])


async def test_retry_after_pushes_the_next_try_later(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """429 with Retry-After: 120 is not tried again before two minutes."""
    clock = Clock()
    async with Receiver(clock, answers=(429,), extra_headers="Retry-After: 120\r\n") as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        await accept(store, message_factory)
        sender = sender_for(
            store, clock, retry=RetryPolicy(base_s=1, max_delay_s=600, max_attempts=5)
        )
        assert 1 == await sender.run_once()
        clock.now += 119.0
        assert 0 == await sender.run_once()
        clock.now += 1.0
        assert 1 == await sender.run_once()

    assert 2 == len(receiver.received)


async def test_no_callback_url_no_events(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Changes of an app without a callback URL (never set, or cleared) create no events."""
    clock = Clock()
    first = await accept(store, message_factory)
    await store.transition(first, to=MessageStatus.REJECTED, now_ms=int(T0 * 1000), kind="rejected")
    assert [] == await store.claim_status_events(
        worker_id="x", now_ms=int(T0 * 1000) + 10_000, lease_ms=1_000, limit=10
    )
    await store.set_callback_url(app.app_key, "http://127.0.0.1:1/unused")
    await store.set_callback_url(app.app_key, None)
    second = await accept(store, message_factory, msg_key="visit-2")
    await store.transition(second, to=MessageStatus.EXPIRED, now_ms=int(T0 * 1000), kind="expired")

    assert 0 == await sender_for(store, clock).run_once()
    assert [] == await callback_entries(store, first)
    assert [] == await callback_entries(store, second)


async def test_cleared_url_gives_pending_events_up(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """An event waiting for a retry is given up, unsent, once the app clears its URL."""
    clock = Clock()
    async with Receiver(clock, default=500) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock)
        assert 1 == await sender.run_once()
        await store.set_callback_url(app.app_key, None)
        clock.now += 1.0
        assert 1 == await sender.run_once()
        clock.now += 3600.0
        assert 0 == await sender.run_once()

    assert 1 == len(receiver.received)
    entries = await callback_entries(store, message_id)
    assert ("callback_failed", "callback URL removed: given up", None) == (
        entries[-1][0],
        entries[-1][1]["error"],
        entries[-1][1]["retry_at_ms"],
    )


async def test_url_change_redirects_the_backlog(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A retry goes to the app's current URL, not the one at the time of the change."""
    clock = Clock()
    async with Receiver(clock, default=404) as wrong, Receiver(clock) as right:
        await store.set_callback_url(app.app_key, wrong.url)
        await accept(store, message_factory)
        sender = sender_for(store, clock)
        assert 1 == await sender.run_once()
        await store.set_callback_url(app.app_key, right.url)
        clock.now += 1.0
        assert 1 == await sender.run_once()

    assert (1, 1) == (len(wrong.received), len(right.received))
    assert right.received[0].verified


async def test_rotated_secret_verifies_with_old_and_new(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """During a rotation's grace period, receivers holding either secret verify."""
    clock = Clock()
    new_secret = "fedcba9876543210fedcba9876543210"
    await store.rotate_secret(app.app_key, new_secret, int(T0 * 1000) + 3_600_000)
    async with Receiver(clock) as old_holder, Receiver(clock, secret=new_secret) as new_holder:
        for number, receiver in enumerate((old_holder, new_holder)):
            await store.set_callback_url(app.app_key, receiver.url)
            await accept(store, message_factory, msg_key=f"visit-{number}")
            assert 1 == await sender_for(store, clock).run_once()

    assert [True] == [r.verified for r in old_holder.received]
    assert [True] == [r.verified for r in new_holder.received]
    assert 2 == old_holder.received[0].headers["x-iwork-signature"].count("v1=")


async def test_a_receiver_holding_another_secret_cannot_verify(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """The receiver's check is real: a secret the app never had does not verify."""
    clock = Clock()
    async with Receiver(clock, secret="f" * 32) as stranger:
        await store.set_callback_url(app.app_key, stranger.url)
        await accept(store, message_factory)
        assert 1 == await sender_for(store, clock).run_once()

    assert [False] == [r.verified for r in stranger.received]


async def test_logs_hold_no_number_secret_or_url_token(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Delivered and failed tries are logged with ids and the host only."""
    clock = Clock()
    async with Receiver(clock, answers=(500,)) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        await accept(store, message_factory)
        sender = sender_for(store, clock)
        with capture_logs() as logs:
            await sender.run_once()
            clock.now += 1.0
            await sender.run_once()

    assert ["callback_failed", "callback_delivered"] == [log["event"] for log in logs]
    assert {"127.0.0.1"} == {log["host"] for log in logs}
    text = repr(logs)
    for secret in ("13888888888", "8888", SECRET, "t0ps3cret", "/hooks"):
        assert secret not in text


async def test_serve_drains_in_flight_callbacks(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Stopping waits for the POST in flight and records it; nothing is abandoned."""
    clock = Clock()
    async with Receiver(clock, delay_s=0.5) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        sender = sender_for(store, clock, poll_interval=0.05)
        stop = asyncio.Event()
        serving = asyncio.create_task(sender.serve(stop))
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        stop.set()
        await asyncio.wait_for(serving, 10)

    assert ["callback_delivered"] == [kind for kind, _ in await callback_entries(store, message_id)]


async def test_two_senders_never_post_one_event_at_once(
    database_url: str, app_factory: Callable[..., App], message_factory: Callable[..., NewMessage]
) -> None:
    """Two senders on one database, each with its own connection, share the events.

    Each event reaches the receiver exactly once and never twice at the same
    time (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the write lock).
    """
    stores = [create_store(database_url), create_store(database_url)]
    for opened in stores:
        await opened.open()
    try:
        await stores[0].migrate()
        app = app_factory()
        await stores[0].insert_app(app)
        clock = Clock()
        count = 24
        async with Receiver(clock, delay_s=0.05) as receiver:
            await stores[0].set_callback_url(app.app_key, receiver.url)
            for n in range(count):
                await accept(stores[0], message_factory, msg_key=f"visit-{n}")
            senders = [
                sender_for(opened, clock, worker_id=f"cb{n}", concurrency=4, poll_interval=0.02)
                for n, opened in enumerate(stores)
            ]
            stop = asyncio.Event()
            with capture_logs() as logs:
                serving = [asyncio.create_task(sender.serve(stop)) for sender in senders]
                async with asyncio.timeout(30):
                    # Counting requests, not waiting for one: an Event would not say more.
                    while len(receiver.received) < count:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # room for a wrongful second delivery to show
                stop.set()
                await asyncio.gather(*serving)

        ids = Counter(r.event_id for r in receiver.received)
        assert count == len(ids)
        assert {1} == set(ids.values())
        assert 1 == receiver.max_in_flight_per_event
        assert all(r.verified for r in receiver.received)
        delivered_by = Counter(
            log["worker_id"] for log in logs if log["event"] == "callback_delivered"
        )
        assert {"cb0", "cb1"} == set(delivered_by), "both senders took a share"
        for n in range(count):
            message = await stores[0].get_message(app.app_key, f"visit-{n}")
            assert message is not None
            entries = await callback_entries(stores[0], message.id)
            assert ["callback_delivered"] == [kind for kind, _ in entries]
    finally:
        for opened in stores:
            await opened.close()


class FailsOnce:
    """``inner``, except that the first call of ``method`` fails as a lost database would."""

    def __init__(self, inner: Store, method: str) -> None:
        self.inner = inner
        self.method = method
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name != self.method or self.failed:
            return real

        async def fail(*args: Any, **kwargs: Any) -> Any:
            self.failed = True
            raise StoreUnavailable("database is gone")

        return fail


async def test_store_outage_does_not_stop_serving(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A claim that fails is logged and retried; serve keeps running."""
    clock = Clock()
    async with Receiver(clock) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        await accept(store, message_factory)
        flaky = FailsOnce(store, "claim_status_events")
        sender = sender_for(flaky, clock, poll_interval=0.02)
        stop = asyncio.Event()
        serving = asyncio.create_task(sender.serve(stop))
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        stop.set()
        await asyncio.wait_for(serving, 10)

    assert 1 == len(receiver.received)
    assert flaky.failed, "the outage really happened"


@pytest.mark.parametrize(("lease_ms", "timeout_s"), [(1_000, 0.6), (10_000, 0.0)])
def test_lease_must_outlast_the_timeout(lease_ms: int, timeout_s: float) -> None:
    """A lease shorter than twice the timeout would let another sender POST the same event."""
    with pytest.raises(ValueError, match="lease_ms"):
        CallbackSender(object(), lease_ms=lease_ms, timeout_s=timeout_s)  # type: ignore[arg-type]


async def test_unrecorded_delivery_is_sent_again_with_the_same_id(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """At least once: if the store fails after the receiver answered, the event comes again."""
    clock = Clock()
    async with Receiver(clock) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        loses_first_done = FailsOnce(store, "status_event_done")
        sender = sender_for(loses_first_done, clock, lease_ms=10_000)
        assert 1 == await sender.run_once()
        assert 0 == await sender.run_once(), "still leased"
        clock.now += 10.0
        assert 1 == await sender.run_once()

    assert ["1", "1"] == [r.event_id for r in receiver.received]
    assert [("callback_delivered", 2)] == [
        (kind, d["attempt"]) for kind, d in await callback_entries(store, message_id)
    ]


async def test_event_that_no_longer_fits_its_lease_is_left_for_later(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Events of one message go in order, but none is POSTed past its lease."""
    clock = Clock()
    async with Receiver(clock, delay_s=0.5) as receiver:
        await store.set_callback_url(app.app_key, receiver.url)
        message_id = await accept(store, message_factory)
        await store.transition(
            message_id, to=MessageStatus.REJECTED, now_ms=int(T0 * 1000), kind="rejected"
        )
        # 0.5 s for the first leaves 0.58 s of a 1.08 s usable lease: less than the timeout.
        sender = sender_for(store, clock, timeout_s=0.6, lease_ms=1_200)
        assert 2 == await sender.run_once()
        assert ["queued"] == [r.json["status"] for r in receiver.received]
        clock.now += 2.0
        assert 1 == await sender.run_once()

    assert ["queued", "rejected"] == [r.json["status"] for r in receiver.received]
    assert [("callback_delivered", 1), ("callback_delivered", 2)] == [
        (kind, d["attempt"]) for kind, d in await callback_entries(store, message_id)
    ]


# -- where callbacks may go ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.1", "127.1 (127.0.0.1) is a loopback address"),
        ("2130706433", "2130706433 (127.0.0.1) is a loopback address"),
        ("[::ffff:127.0.0.1]", "is a loopback address"),
        ("localhost", "localhost names this machine"),
    ],
)
async def test_internal_url_stored_earlier_is_refused_alike_open_or_closed(
    store: Store, app: App, message_factory: Callable[..., NewMessage], host: str, why: str
) -> None:
    """A URL stored before the check (or by hand) is refused at connect time, given up.

    Nothing reaches the listening receiver, and the timeline says the same for
    an open port and a closed one: it cannot be used to scan ports.
    """
    clock = Clock()
    errors = []
    async with Receiver(clock) as receiver:
        for number, port in enumerate((receiver.port, free_port())):
            await store.set_callback_url(app.app_key, f"http://{host}:{port}/hooks")
            message_id = await accept(store, message_factory, msg_key=f"visit-{number}")
            with capture_logs() as logs:
                assert 1 == await sender_for(store, clock, allow=None).run_once()
            [(kind, detail)] = await callback_entries(store, message_id)
            assert ("callback_failed", None) == (kind, detail["retry_at_ms"])
            errors.append(detail["error"])
            assert ["callback_failed"] == [log["event"] for log in logs]
        clock.now += 3600.0
        assert 0 == await sender_for(store, clock, allow=None).run_once(), "given up"

    assert [] == receiver.received
    assert errors[0] == errors[1]
    assert errors[0].startswith("refused: ")
    assert why in errors[0]
    assert errors[0].endswith("; given up")


def resolver_mapping(names: dict[str, str]) -> Callable[[str, int], Any]:
    """A resolver that answers ``names`` (as DNS rebinding would) and nothing else."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address(address) for address in names[host].split(",")]

    return resolve


@pytest.mark.parametrize("answer", ["127.0.0.1", "93.184.215.14,127.0.0.1"])
async def test_name_that_resolves_to_loopback_is_refused_at_connect_time(
    store: Store, app: App, message_factory: Callable[..., NewMessage], answer: str
) -> None:
    """A public-looking name accepted when set, resolving to 127.0.0.1 when sent, is refused.

    The refusal does not reveal the address the name resolved to.
    """
    clock = Clock()
    async with Receiver(clock) as receiver:
        url = check_callback_url(f"http://hooks.example.com:{receiver.port}/hooks")
        await store.set_callback_url(app.app_key, url)
        message_id = await accept(store, message_factory)
        resolver = resolver_mapping({"hooks.example.com": answer})
        sender = sender_for(store, clock, allow=None, resolver=resolver)
        assert 1 == await sender.run_once()

    assert [] == receiver.received
    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", None) == (kind, detail["retry_at_ms"])
    assert detail["error"].startswith(
        "refused: hooks.example.com resolves to an address that is not public"
    )
    assert "127.0.0.1" not in detail["error"]


async def test_allow_list_lets_a_name_resolved_to_loopback_through(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Allowed, the name is connected to at the address it resolved to, Host header kept."""
    clock = Clock()
    async with Receiver(clock) as receiver:
        await store.set_callback_url(app.app_key, f"http://hooks.example.com:{receiver.port}/h")
        message_id = await accept(store, message_factory)
        resolver = resolver_mapping({"hooks.example.com": "127.0.0.1"})
        sender = sender_for(store, clock, allow=LOOPBACK, resolver=resolver)
        assert 1 == await sender.run_once()

    [received] = receiver.received
    assert received.verified
    assert f"hooks.example.com:{receiver.port}" == received.headers["host"]
    assert ["callback_delivered"] == [kind for kind, _ in await callback_entries(store, message_id)]


async def test_a_name_that_does_not_resolve_is_a_network_error_retried(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """DNS failing is not a refusal: the try is retried like any network error."""
    clock = Clock()
    await store.set_callback_url(app.app_key, "http://hooks.example.com/h")
    message_id = await accept(store, message_factory)
    sender = sender_for(store, clock, allow=None, resolver=resolver_mapping({}))
    assert 1 == await sender.run_once()

    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", "network error: ConnectError") == (kind, detail["error"])
    assert detail["retry_at_ms"] is not None


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for hooks.example.com, made by openssl."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=hooks.example.com"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return key, cert


async def test_https_to_a_resolved_address_still_names_the_host(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    self_signed: tuple[Path, Path],
) -> None:
    """TLS sends the URL's name as SNI and checks the certificate, not the address connected to.

    The receiver's self-signed certificate is not trusted, so the try fails
    after the handshake started: certificate checks stay on.
    """
    key, cert = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)

    async def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    clock = Clock()
    try:
        await store.set_callback_url(app.app_key, f"https://hooks.example.com:{port}/h")
        message_id = await accept(store, message_factory)
        resolver = resolver_mapping({"hooks.example.com": "127.0.0.1"})
        assert 1 == await sender_for(store, clock, resolver=resolver).run_once()
    finally:
        server.close()
        await server.wait_closed()

    assert ["hooks.example.com"] == names
    [(kind, detail)] = await callback_entries(store, message_id)
    assert ("callback_failed", "network error: ConnectError") == (kind, detail["error"])
