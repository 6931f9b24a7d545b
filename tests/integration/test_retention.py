"""Retention on SQLite and PostgreSQL: the store's redact/delete rules and the worker's sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.audit import AuditAction, AuditQuery, messages_purged
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.messages import AcceptOutcome, MessageStatus, NewMessage
from iwork_mc.retention import EndedSelection, RetentionPolicy
from iwork_mc.segments import SegmentState
from iwork_mc.store import Store, create_store
from iwork_mc.worker import Worker

MessageFactory = Callable[..., NewMessage]

T0 = 1_700_000_001_000  # message_factory's accepted_at_ms
DAY_MS = 86_400_000


async def ended(store: Store, make: MessageFactory, msg_key: str, *, at_ms: int,
                status: MessageStatus = MessageStatus.DELIVERED) -> int:  # fmt: skip
    """A message accepted at T0 that reached ``status`` at ``at_ms``."""
    result = await store.accept(make(msg_key=msg_key, request_id=msg_key))
    assert AcceptOutcome.ACCEPTED == result.outcome
    [claimed] = await store.claim_due(worker_id="w", now_ms=T0, lease_ms=60_000, limit=1)
    assert await store.transition(
        claimed.id, to=status, now_ms=at_ms, kind=status.value, worker_id="w"
    )
    return result.message_id


async def in_flight(store: Store, make: MessageFactory, msg_key: str) -> int:
    """A message accepted at T0 and still queued."""
    result = await store.accept(make(msg_key=msg_key, request_id=msg_key))
    return result.message_id


async def test_redact_ended_takes_personal_data_of_old_ended_messages_only(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Ended before the cutoff: receiver masked, json_data {} and text emptied, a
    ``redacted`` entry; a later one and one in flight keep everything."""
    old = await ended(store, message_factory, "old", at_ms=T0 + 1_000,
                      status=MessageStatus.FAILED)  # fmt: skip
    recent = await ended(store, message_factory, "recent", at_ms=T0 + 10 * DAY_MS)
    waiting = await in_flight(store, message_factory, "waiting")

    cutoff = T0 + DAY_MS
    assert 1 == await store.redact_ended(
        ended_before_ms=cutoff, now_ms=T0 + 20 * DAY_MS, limit=10, by="retention"
    )

    redacted = await store.get_message_by_id(old)
    assert redacted is not None
    assert ("138****8888", "{}", "", T0 + 20 * DAY_MS, T0 + 1_000, MessageStatus.FAILED) == (
        redacted.event.mobile_receiver, redacted.event.json_data, redacted.text,
        redacted.redacted_at_ms, redacted.updated_at_ms, redacted.status,
    )  # fmt: skip
    last = (await store.timeline(old))[-1]
    assert ("redacted", MessageStatus.FAILED) == (last.kind, last.status)
    assert {"fields": ["mobile_receiver", "json_data", "text"], "by": "retention"} == last.detail
    for kept in (recent, waiting):
        message = await store.get_message_by_id(kept)
        assert message is not None
        assert ("+8613888888888", '{"name": "张三"}', None) == (
            message.event.mobile_receiver,
            message.event.json_data,
            message.redacted_at_ms,
        )
    # Redacted once: a second sweep finds nothing to do and writes nothing.
    assert 0 == await store.redact_ended(
        ended_before_ms=cutoff, now_ms=T0 + 21 * DAY_MS, limit=10, by="retention"
    )
    assert 1 == [e.kind for e in await store.timeline(old)].count("redacted")


async def test_redact_and_delete_are_bounded_by_the_batch(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Each call takes at most ``limit`` messages, the longest ended first."""
    ids = [
        await ended(store, message_factory, f"m{n}", at_ms=T0 + (5 - n) * 1_000) for n in range(5)
    ]
    later = T0 + DAY_MS
    assert 2 == await store.redact_ended(ended_before_ms=later, now_ms=later, limit=2, by="x")
    redacted = [
        m.id for m in [await store.get_message_by_id(i) for i in ids] if m and m.redacted_at_ms
    ]
    assert sorted(ids[3:]) == sorted(redacted)  # m4 and m3 ended first
    selection = EndedSelection(ended_before_ms=later)
    assert 2 == await store.delete_ended(selection, limit=2)
    assert [None, None] == [await store.get_message_by_id(i) for i in ids[3:]]
    assert 3 == await store.delete_ended(selection, limit=10)
    assert (0, 0) == await store.count_ended(selection)


async def test_delete_ended_never_takes_a_message_in_flight(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """By app or by msg_key, only ended messages go; their timelines and segments with them."""
    done = await ended(store, message_factory, "done", at_ms=T0 + 1_000)
    await store.add_segments(done, attempt=1, channel="sms", total=1, now_ms=T0)
    waiting = await in_flight(store, message_factory, "waiting")
    by_app = EndedSelection(app_key=app.app_key)
    assert (1, 1) == await store.count_ended(by_app)
    in_flight_only = EndedSelection(app_key=app.app_key, msg_key="waiting")
    assert (0, 1) == await store.count_ended(in_flight_only)
    assert 0 == await store.delete_ended(in_flight_only, limit=10)

    record = messages_purged("operator:ops", T0 + 2_000, selection=by_app.as_params())
    assert 1 == await store.delete_ended(by_app, limit=10, audit=record)

    assert None is await store.get_message_by_id(done)
    assert [] == await store.timeline(done)
    assert [] == await store.segments(done)
    waiting_message = await store.get_message_by_id(waiting)
    assert waiting_message is not None and MessageStatus.QUEUED == waiting_message.status
    [audited] = await store.list_audit(AuditQuery(action=AuditAction.MESSAGE_PURGE))
    assert ("operator:ops", f"messages:app_key={app.app_key}") == (audited.actor, audited.target)
    assert {"app_key": app.app_key, "msg_key": None, "ended_before_ms": None,
            "deleted": 1} == audited.detail  # fmt: skip
    # Nothing deleted: no audit record.
    assert 0 == await store.delete_ended(by_app, limit=10, audit=record)
    assert 1 == len(await store.list_audit(AuditQuery()))


async def test_a_redacted_message_cannot_be_retried(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Requeue refuses a failed message once redacted: there is no receiver left to send to."""
    failed = await ended(store, message_factory, "f", at_ms=T0, status=MessageStatus.FAILED)
    await store.redact_ended(ended_before_ms=T0 + 1, now_ms=T0 + 5, limit=10, by="retention")
    assert not await store.requeue(failed, now_ms=T0 + 10, expires_at_ms=T0 + DAY_MS, by="cli")
    message = await store.get_message_by_id(failed)
    assert message is not None and MessageStatus.FAILED == message.status


async def test_worker_sweep_redacts_then_deletes(
    store: Store, app: App, message_factory: MessageFactory, tmp_path: Path
) -> None:
    """The worker's retention step redacts after personal_data_s and deletes after messages_s."""
    old = await ended(store, message_factory, "old", at_ms=T0)
    newer = await ended(store, message_factory, "newer", at_ms=T0 + 5 * DAY_MS)
    policy = RetentionPolicy(personal_data_s=86_400, messages_s=7 * 86_400, batch=1)
    now_s = (T0 + 8 * DAY_MS) / 1000
    worker = Worker(
        store, SandboxChannel(tmp_path / "sandbox"), retention=policy, clock=lambda: now_s
    )

    # Both ended over a day ago (redacted, batch by batch), the old one over a week ago.
    assert (2, 1) == await worker.apply_retention()

    assert None is await store.get_message_by_id(old)
    kept = await store.get_message_by_id(newer)
    assert kept is not None and "138****8888" == kept.event.mobile_receiver
    assert (0, 0) == await worker.apply_retention()


async def test_worker_sweep_does_nothing_without_a_policy(
    store: Store, app: App, message_factory: MessageFactory, tmp_path: Path
) -> None:
    """0 keeps forever: the default policy touches nothing, however old."""
    old = await ended(store, message_factory, "old", at_ms=T0)
    worker = Worker(
        store, SandboxChannel(tmp_path / "sandbox"), retention=RetentionPolicy(),
        clock=lambda: (T0 + 3_650 * DAY_MS) / 1000,
    )  # fmt: skip
    assert (0, 0) == await worker.apply_retention()
    message = await store.get_message_by_id(old)
    assert message is not None and message.redacted_at_ms is None


async def test_worker_sweep_drops_old_unmatched_receipts(
    store: Store, app: App, tmp_path: Path
) -> None:
    """Receipts that never matched (they name a handset) go after retention_messages_s too."""
    for n, at_ms in enumerate([T0, T0 + 8 * DAY_MS]):
        outcome = await store.apply_receipt(
            channel="sms", carrier_id=f"c{n}", state=SegmentState.DELIVERED, error=None,
            now_ms=at_ms, destination="8613888888888",
        )  # fmt: skip
        assert not outcome.matched
    policy = RetentionPolicy(messages_s=7 * 86_400, batch=1)
    now_s = (T0 + 9 * DAY_MS) / 1000
    worker = Worker(
        store, SandboxChannel(tmp_path / "sandbox"), retention=policy, clock=lambda: now_s
    )
    await worker.apply_retention()
    assert 1 == await store.unmatched_receipts("sms")


async def test_two_sweeps_at_once_redact_each_message_once(
    database_url: str, store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Two stores (two worker processes) sweeping together redact every message exactly once."""
    ids = [await ended(store, message_factory, f"m{n}", at_ms=T0 + n) for n in range(30)]
    other = create_store(database_url)
    await other.open()
    try:
        counts = await asyncio.gather(*(
            sweeper.redact_ended(ended_before_ms=T0 + DAY_MS, now_ms=T0 + DAY_MS, limit=7, by=who)
            for _ in range(3) for sweeper, who in ((store, "a"), (other, "b"))
        ))  # fmt: skip
        counts += [await store.redact_ended(
            ended_before_ms=T0 + DAY_MS, now_ms=T0 + DAY_MS, limit=30, by="c")]  # fmt: skip
    finally:
        await other.close()
    assert 30 == sum(counts)
    for message_id in ids:
        assert 1 == [e.kind for e in await store.timeline(message_id)].count("redacted")


@pytest.mark.parametrize("name", ["personal_data_s", "messages_s"])
def test_negative_periods_are_refused(name: str) -> None:
    """A negative period is a clear error naming it, not a sweep that deletes everything."""
    with pytest.raises(ValueError, match=rf"retention {name} must be 0 .*\(got -1\)"):
        RetentionPolicy(**{name: -1})  # type: ignore[arg-type]
