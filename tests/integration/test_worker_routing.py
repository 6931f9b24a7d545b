"""The worker's delivery rules on a real store: validity, late opt-outs, routes and fallback."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from iwork_mc.apps import App
from iwork_mc.channels.base import (
    Delivered,
    PermanentChannelError,
    SendResult,
    Submitted,
    TransientChannelError,
)
from iwork_mc.messages import Message, MessageStatus, NewMessage
from iwork_mc.policies import OptOut, QuietHours
from iwork_mc.retry import RetryPolicy
from iwork_mc.routing import Route
from iwork_mc.store import Store
from iwork_mc.worker import Worker

T0 = 1_700_000_010.0
T0_MS = int(T0 * 1000)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Carrier:
    """A named channel answering each send with the next scripted outcome (default: delivered)."""

    def __init__(self, name: str, *outcomes: Exception) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.sent: list[int] = []

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, str]:
        return {"channel": self.name}

    def ready(self) -> bool:
        return True

    async def send(self, message: Message, text: str) -> SendResult:
        self.sent.append(message.id)
        if self.outcomes:
            raise self.outcomes.pop(0)
        return Delivered(f"{self.name}-{message.id}")


def worker(store: Store, clock: Clock, *carriers: Carrier, **kwargs: object) -> Worker:
    return Worker(
        store, {c.name: c for c in carriers}, clock=clock, rng=random.Random(1), worker_id="w",
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def accepted(store: Store, message: NewMessage) -> int:
    return (await store.accept(message)).message_id


async def status_of(store: Store, message_id: int) -> Message:
    message = await store.get_message_by_id(message_id)
    assert message is not None
    return message


async def kinds(store: Store, message_id: int) -> list[str]:
    return [entry.kind for entry in await store.timeline(message_id)]


async def test_a_message_past_its_validity_expires_instead_of_being_sent(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, replace(message_factory(), expires_at_ms=T0_MS - 1))
    carrier = Carrier("sms")
    await worker(store, Clock(), carrier).run_once()
    message = await status_of(store, message_id)
    assert (MessageStatus.EXPIRED, "the validity period ended before delivery") == (
        message.status, message.last_error,
    )  # fmt: skip
    assert [] == carrier.sent


async def test_a_retry_that_would_fall_after_the_validity_expires_the_message_now(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, replace(message_factory(), expires_at_ms=T0_MS + 500))
    carrier = Carrier("sms", TransientChannelError("busy"))
    await worker(store, Clock(), carrier, retry=RetryPolicy(base_s=10)).run_once()
    message = await status_of(store, message_id)
    assert MessageStatus.EXPIRED is message.status
    assert "the validity period ends before the next attempt: busy" == message.last_error


async def test_a_receiver_who_opted_out_after_acceptance_gets_nothing(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, message_factory(app_key=app.app_key))
    await store.add_opt_out(
        OptOut(app_key=app.app_key, receiver="+8613888888888", reason="", created_at_ms=T0_MS)
    )
    carrier = Carrier("sms")
    await worker(store, Clock(), carrier).run_once()
    assert MessageStatus.REJECTED is (await status_of(store, message_id)).status
    assert [] == carrier.sent


async def test_a_permanent_failure_falls_back_to_the_next_channel_of_the_route(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, message_factory())
    primary, backup = Carrier("primary", PermanentChannelError("refused")), Carrier("backup")
    route = Route(name="cn", channels=("primary", "backup"))
    work = worker(store, Clock(), primary, backup, routes=[route])
    await work.run_once()
    message = await status_of(store, message_id)
    assert (MessageStatus.QUEUED, 1) == (message.status, message.route_step)
    await work.run_once()
    message = await status_of(store, message_id)
    assert (MessageStatus.DELIVERED, "backup", 2, 1) == (
        message.status, message.channel, message.attempts, message.step_attempts,
    )  # fmt: skip
    timeline = await store.timeline(message_id)
    fallback = next(entry for entry in timeline if entry.kind == "fallback")
    assert {
        "channel": "primary",
        "route": "cn",
        "to_channel": "backup",
        "error": "refused",
    }.items() <= fallback.detail.items()
    delivered = next(entry for entry in timeline if entry.kind == "delivered")
    assert {"channel": "backup", "route": "cn", "step": 1}.items() <= delivered.detail.items()


async def test_retries_are_counted_per_channel_before_falling_back(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, message_factory())
    primary = Carrier("primary", *[TransientChannelError("busy")] * 2)
    backup = Carrier("backup", TransientChannelError("busy"))
    clock = Clock()
    route = Route(name="r", channels=("primary", "backup"))
    work = worker(store, clock, primary, backup, routes=[route], retry=RetryPolicy(max_attempts=2))
    for _ in range(4):
        await work.run_once()
        clock.now += 600
    assert [message_id] * 2 == primary.sent
    assert [message_id] * 2 == backup.sent  # one failure, then delivered: a fresh count
    assert MessageStatus.DELIVERED is (await status_of(store, message_id)).status
    assert ["retry_scheduled", "fallback", "retry_scheduled"] == [
        kind for kind in await kinds(store, message_id) if kind in ("retry_scheduled", "fallback")
    ]


async def test_the_last_channel_failing_fails_the_message_with_its_reason(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    message_id = await accepted(store, message_factory())
    primary = Carrier("primary", PermanentChannelError("unknown subscriber"))
    backup = Carrier("backup", PermanentChannelError("barred"))
    work = worker(
        store, Clock(), primary, backup, routes=[Route(name="r", channels=("primary", "backup"))]
    )
    await work.run_once()
    await work.run_once()
    message = await status_of(store, message_id)
    assert (MessageStatus.FAILED, "barred") == (message.status, message.last_error)


async def test_routes_choose_channels_by_template_and_prefix(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    alarm_id = await accepted(store, replace(message_factory(msg_key="a"), template="alarm-fire"))
    plain_id = await accepted(store, message_factory(msg_key="b", mobile_receiver="+8613900000001"))
    fast, cheap = Carrier("fast"), Carrier("cheap")
    routes = [
        Route(name="alarms", channels=("fast",), templates=("alarm-*",)),
        Route(name="rest", channels=("cheap",), prefixes=("+86139",)),
    ]
    await worker(store, Clock(), fast, cheap, routes=routes).run_once()
    assert ([alarm_id], [plain_id]) == (fast.sent, cheap.sent)


@pytest.mark.parametrize(
    ("route", "route_name"),
    [
        (Route(name="us", channels=("sms",), prefixes=("+1",)), None),
        (Route(name="cn", channels=("gone",)), "cn"),
    ],
    ids=["no-route-matches", "route-names-an-unknown-channel"],
)
async def test_a_message_the_routes_cannot_send_fails_without_a_send(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    route: Route,
    route_name: str | None,
) -> None:
    """When the configuration changed after acceptance, the message fails and says why."""
    message_id = await accepted(store, message_factory())
    carrier = Carrier("sms")
    await worker(store, Clock(), carrier, routes=[route]).run_once()
    message = await status_of(store, message_id)
    assert (MessageStatus.FAILED, "no route or channel for this message (the configuration changed?)") == (
        message.status, message.last_error,
    )  # fmt: skip
    assert [] == carrier.sent
    failed = (await store.timeline(message_id))[-1]
    assert ("failed", route_name) == (failed.kind, failed.detail["route"])


class SilentCarrier(Carrier):
    """Takes every message and confirms nothing (a receipt would come later)."""

    async def send(self, message: Message, text: str) -> SendResult:
        self.sent.append(message.id)
        return Submitted(f"{self.name}-{message.id}")


async def test_a_submitted_message_whose_receipt_never_comes_expires(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    overdue = await accepted(
        store, replace(message_factory(msg_key="a"), expires_at_ms=T0_MS + 1_000)
    )
    waiting = await accepted(
        store, replace(message_factory(msg_key="b"), expires_at_ms=T0_MS + 9_000)
    )
    clock = Clock()
    work = worker(store, clock, SilentCarrier("sms"), receipt_wait_ms=5_000)
    await work.run_once()
    clock.now += 7  # a's validity ended 6 s ago (> 5 s wait); b's is not over yet
    assert 1 == await work.expire_overdue()
    expired = await status_of(store, overdue)
    assert (MessageStatus.EXPIRED, "no delivery receipt within the validity period") == (
        expired.status, expired.last_error,
    )  # fmt: skip
    assert "expired" == (await store.timeline(overdue))[-1].kind
    assert MessageStatus.SUBMITTED is (await status_of(store, waiting)).status
    assert 0 == await work.expire_overdue()  # nothing is expired twice


async def test_a_retry_that_would_fall_in_quiet_hours_waits_for_their_end(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    # T0 is 2023-11-14 22:13:30 UTC = 06:13:30 in Shanghai, inside 22:00-07:00.
    quiet = QuietHours.parse("22:00-07:00", "Asia/Shanghai")
    seven = int(datetime(2023, 11, 15, 7, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    plain = await accepted(store, message_factory(msg_key="plain"))
    urgent = await accepted(store, replace(message_factory(msg_key="urgent"), urgent=True))
    carrier = Carrier("sms", TransientChannelError("busy"), TransientChannelError("busy"))
    await worker(store, Clock(), carrier, quiet=quiet).run_once()

    retried = {m: (await store.timeline(m))[-1] for m in (plain, urgent)}
    assert ("retry_scheduled", seven) == (retried[plain].kind, retried[plain].detail["due_at_ms"])
    assert "quiet_hours" == retried[plain].detail["deferred"]
    assert retried[urgent].detail["due_at_ms"] < seven
    assert "deferred" not in retried[urgent].detail
