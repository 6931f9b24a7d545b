"""The Store contract, on SQLite and on PostgreSQL (one suite, both backends)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.messages import AcceptOutcome, MessageStatus, NewMessage, TimelineEntry
from iwork_mc.store import (
    AppExists,
    MessageNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    create_store,
)
from iwork_mc.store.postgres import PostgresStore
from iwork_mc.store.sqlite import SQLiteStore

MessageFactory = Callable[..., NewMessage]

T0 = 1_700_000_001_000  # message_factory's accepted_at_ms
LEASE_MS = 30_000


async def accepted_id(store: Store, message: NewMessage) -> int:
    result = await store.accept(message)
    assert AcceptOutcome.ACCEPTED == result.outcome
    return result.message_id


async def status_of(store: Store, message_id: int) -> MessageStatus:
    message = await store.get_message_by_id(message_id)
    assert message is not None
    return message.status


# -- apps ------------------------------------------------------------------


async def test_insert_app_then_get_app(store: Store, app_factory: Callable[..., App]) -> None:
    """A stored app reads back field for field."""
    app = app_factory(previous_secret="old", previous_secret_expires_at_ms=5)

    await store.insert_app(app)

    assert app == await store.get_app(app.app_key)


async def test_insert_app_twice(store: Store, app: App, app_factory: Callable[..., App]) -> None:
    """A second app with a taken app_key raises AppExists and changes nothing."""
    with pytest.raises(AppExists):
        await store.insert_app(app_factory(name="Impostor"))

    assert app == await store.get_app(app.app_key)


async def test_get_app_unknown(store: Store) -> None:
    """An unknown app_key reads as None."""
    assert None is await store.get_app("99999999")


async def test_list_apps_oldest_first(store: Store, app_factory: Callable[..., App]) -> None:
    """list_apps returns every app, oldest first."""
    newer = app_factory(app_key="22222222", created_at_ms=2)
    older = app_factory(app_key="11111111", created_at_ms=1)
    await store.insert_app(newer)
    await store.insert_app(older)

    assert [older, newer] == await store.list_apps()


async def test_set_app_enabled(store: Store, app: App) -> None:
    """Disabling an app is stored and returned; an unknown app gives None."""
    disabled = await store.set_app_enabled(app.app_key, False)

    assert dataclasses.replace(app, enabled=False) == disabled
    assert disabled == await store.get_app(app.app_key)
    assert None is await store.set_app_enabled("99999999", True)


async def test_rotate_secret(store: Store, app: App) -> None:
    """Rotation makes the new secret current and keeps the old one until the deadline."""
    rotated = await store.rotate_secret(app.app_key, "f" * 32, 10_000)

    assert rotated is not None
    assert ("f" * 32, app.secret) == rotated.valid_secrets(9_999)
    assert ("f" * 32,) == rotated.valid_secrets(10_000)
    assert rotated == await store.get_app(app.app_key)
    assert None is await store.rotate_secret("99999999", "f" * 32, 1)


# -- accepting ---------------------------------------------------------------


async def test_accept_stores_the_message(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """An accepted message reads back queued, with every event field intact."""
    new = message_factory(resource_id="r-1", resource_url="https://example.com/v/1")

    result = await store.accept(new)
    message = await store.get_message(app.app_key, new.event.msg_key)

    assert AcceptOutcome.ACCEPTED == result.outcome
    assert message is not None
    assert result.message_id == message.id
    assert message == await store.get_message_by_id(result.message_id)
    assert (new.event, new.fingerprint, new.request_id) == (
        message.event,
        message.fingerprint,
        message.request_id,
    )
    assert (MessageStatus.QUEUED, 0, T0, T0) == (
        message.status,
        message.attempts,
        message.accepted_at_ms,
        message.updated_at_ms,
    )
    assert (None, None, None) == (message.channel, message.channel_ref, message.last_error)


async def test_accept_keeps_extreme_values(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Absent optional fields, a 64-bit sender and non-ASCII JSON survive the round trip."""
    new = message_factory(sender=2**63 - 1, json_data='{"名字": "李四", "n": 1}')

    message_id = await accepted_id(store, new)
    message = await store.get_message_by_id(message_id)

    assert message is not None
    assert new.event == message.event


async def test_accept_writes_the_first_timeline_entry(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """Accepting writes one timeline entry: accepted, queued, with the request id."""
    message_id = await accepted_id(store, message_factory(request_id="req-9"))

    expected = [
        TimelineEntry(
            at_ms=T0, kind="accepted", status=MessageStatus.QUEUED, detail={"request_id": "req-9"}
        )
    ]
    assert expected == await store.timeline(message_id)


async def test_accept_duplicate(store: Store, app: App, message_factory: MessageFactory) -> None:
    """A repeat with the same fingerprint answers DUPLICATE with the same id and writes nothing."""
    first = await store.accept(message_factory())

    again = await store.accept(message_factory(request_id="req-2", accepted_at_ms=T0 + 5))

    assert AcceptOutcome.DUPLICATE == again.outcome
    assert first.message_id == again.message_id
    assert 1 == sum((await store.count_by_status()).values())
    assert 1 == len(await store.timeline(first.message_id))
    message = await store.get_message_by_id(first.message_id)
    assert message is not None
    assert ("req-1", T0) == (message.request_id, message.updated_at_ms)


async def test_accept_conflict(store: Store, app: App, message_factory: MessageFactory) -> None:
    """The same msg_key with a different event answers CONFLICT and changes nothing."""
    first = await store.accept(message_factory(action="arrived"))

    other = await store.accept(message_factory(action="left"))

    assert AcceptOutcome.CONFLICT == other.outcome
    assert first.message_id == other.message_id
    message = await store.get_message_by_id(first.message_id)
    assert message is not None
    assert "arrived" == message.event.action
    assert 1 == sum((await store.count_by_status()).values())
    assert 1 == len(await store.timeline(first.message_id))


async def test_accept_scopes_msg_key_per_app(
    store: Store, app: App, app_factory: Callable[..., App], message_factory: MessageFactory
) -> None:
    """The same msg_key under two apps makes two messages."""
    await store.insert_app(app_factory(app_key="87654321"))

    first = await store.accept(message_factory())
    second = await store.accept(message_factory(app_key="87654321"))

    assert (AcceptOutcome.ACCEPTED, AcceptOutcome.ACCEPTED) == (first.outcome, second.outcome)
    assert first.message_id != second.message_id


async def test_accept_unknown_app(store: Store, message_factory: MessageFactory) -> None:
    """A message for an app that does not exist is refused by the schema."""
    with pytest.raises(StoreError):
        await store.accept(message_factory(app_key="99999999"))

    assert 0 == sum((await store.count_by_status()).values())


async def test_get_message_unknown(store: Store, app: App) -> None:
    """Unknown keys and ids read as None."""
    assert None is await store.get_message(app.app_key, "nope")
    assert None is await store.get_message_by_id(123_456)


# -- counting ------------------------------------------------------------------


async def test_count_by_status_empty(store: Store) -> None:
    """Every status is counted, zero when there is none."""
    assert dict.fromkeys(MessageStatus, 0) == await store.count_by_status()


async def test_count_by_status_per_app(
    store: Store, app: App, app_factory: Callable[..., App], message_factory: MessageFactory
) -> None:
    """Counting for one app ignores the other apps' messages."""
    await store.insert_app(app_factory(app_key="87654321"))
    for key in ("a", "b", "c"):
        await accepted_id(store, message_factory(msg_key=key))
    other_id = await accepted_id(store, message_factory(app_key="87654321"))
    await store.transition(other_id, to=MessageStatus.REJECTED, now_ms=T0, kind="rejected")

    counts = await store.count_by_status(app.app_key)
    everything = await store.count_by_status()

    assert dict.fromkeys(MessageStatus, 0) | {MessageStatus.QUEUED: 3} == counts
    assert {MessageStatus.QUEUED: 3, MessageStatus.REJECTED: 1} == {
        status: n for status, n in everything.items() if n
    }


# -- claiming ------------------------------------------------------------------


async def test_claim_due(store: Store, app: App, message_factory: MessageFactory) -> None:
    """A due message is leased: sending, one attempt, and a claimed entry in its timeline."""
    message_id = await accepted_id(store, message_factory())

    claimed = await store.claim_due(worker_id="w1", now_ms=T0 + 1, lease_ms=LEASE_MS, limit=10)

    assert [message_id] == [message.id for message in claimed]
    assert (MessageStatus.SENDING, 1, T0 + 1) == (
        claimed[0].status,
        claimed[0].attempts,
        claimed[0].updated_at_ms,
    )
    assert claimed[0] == await store.get_message_by_id(message_id)
    last = (await store.timeline(message_id))[-1]
    expected = TimelineEntry(
        at_ms=T0 + 1,
        kind="claimed",
        status=MessageStatus.SENDING,
        detail={"worker_id": "w1", "attempt": 1},
    )
    assert expected == last


async def test_claim_due_limit_and_order(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """At most ``limit`` messages are claimed, the one due first first."""
    ids = [
        await accepted_id(store, message_factory(msg_key=f"m{i}", accepted_at_ms=T0 + 10 - i))
        for i in range(5)
    ]

    first = await store.claim_due(worker_id="w", now_ms=T0 + 100, lease_ms=LEASE_MS, limit=2)
    rest = await store.claim_due(worker_id="w", now_ms=T0 + 100, lease_ms=LEASE_MS, limit=10)

    assert [ids[4], ids[3]] == [message.id for message in first]
    assert [ids[2], ids[1], ids[0]] == [message.id for message in rest]


async def test_claim_due_skips_what_is_not_due(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A message is not claimed before it is due, nor twice while leased."""
    await accepted_id(store, message_factory())

    early = await store.claim_due(worker_id="w1", now_ms=T0 - 1, lease_ms=LEASE_MS, limit=10)
    claimed = await store.claim_due(worker_id="w1", now_ms=T0, lease_ms=LEASE_MS, limit=10)
    leased = await store.claim_due(
        worker_id="w2", now_ms=T0 + LEASE_MS - 1, lease_ms=LEASE_MS, limit=10
    )

    assert ([], 1, []) == (early, len(claimed), leased)


async def test_expired_lease_is_reclaimed(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """After a lease runs out another worker claims the message and the old one is locked out."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="old", now_ms=T0, lease_ms=LEASE_MS, limit=10)

    reclaimed = await store.claim_due(
        worker_id="new", now_ms=T0 + LEASE_MS, lease_ms=LEASE_MS, limit=10
    )
    late = await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + LEASE_MS + 1,
        kind="submitted",
        worker_id="old",
    )

    assert [(message_id, 2)] == [(message.id, message.attempts) for message in reclaimed]
    assert False is late
    assert MessageStatus.SENDING == await status_of(store, message_id)
    last = (await store.timeline(message_id))[-1]
    assert {"worker_id": "new", "attempt": 2, "reclaimed_from": "old"} == last.detail
    assert True is await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + LEASE_MS + 2,
        kind="submitted",
        worker_id="new",
    )


async def test_expired_lease_nobody_took_is_still_held(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A worker whose lease ran out may still finish while no other worker took the message."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="slow", now_ms=T0, lease_ms=LEASE_MS, limit=10)

    moved = await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + 2 * LEASE_MS,
        kind="submitted",
        worker_id="slow",
    )

    assert True is moved


async def test_concurrent_claims_never_share(
    store: Store, database_url: str, app: App, message_factory: MessageFactory
) -> None:
    """Workers claiming at the same time, through two stores, never get the same message."""
    ids = set(
        await asyncio.gather(
            *(accepted_id(store, message_factory(msg_key=f"m{i}")) for i in range(60))
        )
    )
    other = create_store(database_url)
    await other.open()
    try:
        batches = await asyncio.gather(
            *(
                claimer.claim_due(worker_id=f"w{n}", now_ms=T0, lease_ms=LEASE_MS, limit=7)
                for n in range(12)
                for claimer in (store, other)
            )
        )
    finally:
        await other.close()

    claimed = [message.id for batch in batches for message in batch]
    assert len(claimed) == len(set(claimed))
    assert ids == set(claimed)


# -- transitions ---------------------------------------------------------------


async def test_delivery_path(store: Store, app: App, message_factory: MessageFactory) -> None:
    """queued → sending → submitted → delivered records channel, reference and every step."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="w", now_ms=T0 + 1, lease_ms=LEASE_MS, limit=1)

    submitted = await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + 2,
        kind="submitted",
        detail={"ref": "abc"},
        worker_id="w",
        channel="smpp",
        channel_ref="abc",
    )
    delivered = await store.transition(
        message_id, to=MessageStatus.DELIVERED, now_ms=T0 + 3, kind="receipt"
    )

    message = await store.get_message_by_id(message_id)
    assert (True, True) == (submitted, delivered)
    assert message is not None
    assert (MessageStatus.DELIVERED, "smpp", "abc", T0 + 3) == (
        message.status,
        message.channel,
        message.channel_ref,
        message.updated_at_ms,
    )
    timeline = await store.timeline(message_id)
    assert [
        ("accepted", MessageStatus.QUEUED),
        ("claimed", MessageStatus.SENDING),
        ("submitted", MessageStatus.SUBMITTED),
        ("receipt", MessageStatus.DELIVERED),
    ] == [(entry.kind, entry.status) for entry in timeline]
    assert {"ref": "abc"} == timeline[2].detail
    # The outbox row is gone: nothing is ever due again.
    assert [] == await store.claim_due(worker_id="w", now_ms=T0 * 2, lease_ms=1, limit=10)


async def test_final_status_is_never_left(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A late receipt cannot move delivered to failed, and the refusal writes nothing."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="w", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    await store.transition(message_id, to=MessageStatus.SUBMITTED, now_ms=T0 + 1, kind="s")
    await store.transition(message_id, to=MessageStatus.DELIVERED, now_ms=T0 + 2, kind="d")
    before = (await store.get_message_by_id(message_id), await store.timeline(message_id))

    moved = await store.transition(
        message_id, to=MessageStatus.FAILED, now_ms=T0 + 3, kind="receipt", error="UNDELIV"
    )

    assert False is moved
    assert before == (await store.get_message_by_id(message_id), await store.timeline(message_id))


async def test_transition_outside_the_table(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """queued → submitted is not in TRANSITIONS and is refused."""
    message_id = await accepted_id(store, message_factory())

    moved = await store.transition(message_id, to=MessageStatus.SUBMITTED, now_ms=T0, kind="s")

    assert False is moved
    assert MessageStatus.QUEUED == await status_of(store, message_id)


async def test_transition_unknown_message(store: Store) -> None:
    """A transition of a message that does not exist is refused."""
    assert False is await store.transition(
        123_456, to=MessageStatus.EXPIRED, now_ms=T0, kind="expired"
    )


async def test_transition_by_a_worker_without_the_lease(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A worker that does not hold the lease cannot move the message."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="owner", now_ms=T0, lease_ms=LEASE_MS, limit=1)

    moved = await store.transition(
        message_id, to=MessageStatus.FAILED, now_ms=T0 + 1, kind="failed", worker_id="stranger"
    )

    assert False is moved
    assert MessageStatus.SENDING == await status_of(store, message_id)


async def test_retry_reschedules(store: Store, app: App, message_factory: MessageFactory) -> None:
    """Back to queued: the lease is released and the message is due again at due_at_ms."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="w1", now_ms=T0, lease_ms=LEASE_MS, limit=1)

    moved = await store.transition(
        message_id,
        to=MessageStatus.QUEUED,
        now_ms=T0 + 1,
        kind="retry_scheduled",
        worker_id="w1",
        due_at_ms=T0 + 1_000,
        error="throttled",
    )
    early = await store.claim_due(worker_id="w2", now_ms=T0 + 999, lease_ms=LEASE_MS, limit=1)
    due = await store.claim_due(worker_id="w2", now_ms=T0 + 1_000, lease_ms=LEASE_MS, limit=1)

    assert (True, []) == (moved, early)
    assert [(message_id, 2, "throttled")] == [(m.id, m.attempts, m.last_error) for m in due]
    # A fresh claim after a retry is not a reclaim.
    assert {"worker_id": "w2", "attempt": 2} == (await store.timeline(message_id))[-1].detail


async def test_transition_keeps_unset_fields(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """channel, channel_ref and last_error keep their value when a transition omits them."""
    message_id = await accepted_id(store, message_factory())
    await store.claim_due(worker_id="w", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    await store.transition(
        message_id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + 1,
        kind="submitted",
        channel="webhook",
        channel_ref="r1",
        error="first try timed out",
    )

    await store.transition(message_id, to=MessageStatus.EXPIRED, now_ms=T0 + 2, kind="expired")

    message = await store.get_message_by_id(message_id)
    assert message is not None
    assert (MessageStatus.EXPIRED, "webhook", "r1", "first try timed out") == (
        message.status,
        message.channel,
        message.channel_ref,
        message.last_error,
    )


async def test_expire_while_queued_releases_the_outbox(
    store: Store, app: App, message_factory: MessageFactory
) -> None:
    """A message expired before any worker took it is never claimed."""
    message_id = await accepted_id(store, message_factory())

    moved = await store.transition(message_id, to=MessageStatus.EXPIRED, now_ms=T0, kind="exp")

    assert True is moved
    assert [] == await store.claim_due(worker_id="w", now_ms=T0 + 1, lease_ms=1, limit=10)


# -- notes ----------------------------------------------------------------------


async def test_note(store: Store, app: App, message_factory: MessageFactory) -> None:
    """A note appends a timeline entry with the current status and changes nothing else."""
    message_id = await accepted_id(store, message_factory())
    before = await store.get_message_by_id(message_id)

    await store.note(message_id, now_ms=T0 + 5, kind="attempt", detail={"channel": "sandbox"})

    assert before == await store.get_message_by_id(message_id)
    expected = TimelineEntry(
        at_ms=T0 + 5, kind="attempt", status=MessageStatus.QUEUED, detail={"channel": "sandbox"}
    )
    assert expected == (await store.timeline(message_id))[-1]


async def test_note_unknown_message(store: Store) -> None:
    """A note on a message that does not exist raises MessageNotFound."""
    with pytest.raises(MessageNotFound):
        await store.note(123_456, now_ms=T0, kind="attempt")


async def test_closed_store_refuses_work(database_url: str) -> None:
    """A store that is not open raises StoreError instead of hanging."""
    closed = create_store(database_url)

    with pytest.raises(StoreError):
        await closed.get_app("12345678")


# -- SQLite only ----------------------------------------------------------------


async def test_sqlite_file_is_private_and_durable(tmp_path: Path) -> None:
    """The database file and its directory are created, the file 0600, in WAL mode."""
    path = tmp_path / "new" / "dir" / "mc.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.migrate()
        mode = stat.S_IMODE(path.stat().st_mode)
        wal_mode = stat.S_IMODE(path.with_name("mc.db-wal").stat().st_mode)
    finally:
        await store.close()

    assert (0o600, 0o600) == (mode, wal_mode)
    with sqlite3.connect(path) as conn:
        assert ("wal",) == conn.execute("PRAGMA journal_mode").fetchone()


async def test_sqlite_group_commit(
    sqlite_url: str, app_factory: Callable[..., App], message_factory: MessageFactory
) -> None:
    """500 concurrent accepts all succeed in a handful of commits."""
    store = create_store(sqlite_url)
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        await store.migrate()
        await store.insert_app(app_factory())
        commits_before = store.commits

        results = await asyncio.gather(
            *(store.accept(message_factory(msg_key=f"k{i}")) for i in range(500))
        )
        commits = store.commits - commits_before
    finally:
        await store.close()

    assert {AcceptOutcome.ACCEPTED} == {result.outcome for result in results}
    assert 500 == len({result.message_id for result in results})
    assert commits <= 20, f"{commits} commits for 500 accepts"


async def test_sqlite_failing_job_fails_alone(
    sqlite_url: str, app_factory: Callable[..., App], message_factory: MessageFactory
) -> None:
    """A job that fails inside a batch rolls back only itself; its batch mates commit."""
    store = SQLiteStore(sqlite_url.removeprefix("sqlite:///"))
    await store.open()
    try:
        await store.migrate()
        await store.insert_app(app_factory())
        commits_before = store.commits
        messages = [message_factory(msg_key=f"k{i}") for i in range(20)]
        messages[7] = message_factory(msg_key="orphan", app_key="99999999")

        results = await asyncio.gather(
            *(store.accept(message) for message in messages), return_exceptions=True
        )
        commits = store.commits - commits_before
        counts = await store.count_by_status()
    finally:
        await store.close()

    assert isinstance(results[7], StoreError)
    assert isinstance(results[7].__cause__, sqlite3.IntegrityError)
    assert 19 == sum(1 for result in results if not isinstance(result, BaseException))
    assert 19 == counts[MessageStatus.QUEUED]
    assert commits < 20


async def test_sqlite_close_drains_pending_jobs(
    sqlite_url: str, app_factory: Callable[..., App], message_factory: MessageFactory
) -> None:
    """close() finishes every job submitted before it, durably."""
    store = create_store(sqlite_url)
    await store.open()
    await store.migrate()
    await store.insert_app(app_factory())
    tasks = [asyncio.create_task(store.accept(message_factory(msg_key=f"k{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # Let every task put its job on the queue.

    await store.close()

    assert {AcceptOutcome.ACCEPTED} == {(await task).outcome for task in tasks}
    reopened = create_store(sqlite_url)
    await reopened.open()
    try:
        assert 50 == (await reopened.count_by_status())[MessageStatus.QUEUED]
    finally:
        await reopened.close()


async def test_sqlite_locked_database_is_unavailable(sqlite_url: str) -> None:
    """A write lock held by another process past busy_timeout raises StoreUnavailable."""
    path = sqlite_url.removeprefix("sqlite:///")
    store = SQLiteStore(path, busy_timeout_ms=50)
    await store.open()
    await store.migrate()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.set_app_enabled("12345678", True)
        blocker.execute("ROLLBACK")
        # The store works again once the lock is gone.
        assert None is await store.set_app_enabled("12345678", True)
    finally:
        blocker.close()
        await store.close()


async def test_sqlite_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    """A path SQLite cannot open raises StoreUnavailable."""
    store = SQLiteStore(tmp_path)  # A directory, not a file.

    with pytest.raises(StoreUnavailable):
        await store.open()


# -- PostgreSQL only ------------------------------------------------------------


async def test_postgres_unreachable_is_unavailable() -> None:
    """A server that does not answer raises StoreUnavailable from open()."""
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", timeout=0.5)

    with pytest.raises(StoreUnavailable):
        await store.open()


# -- create_store ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/mc.db", "var/mc.db"),
        ("sqlite:////srv/iwork mc/mc.db", "/srv/iwork mc/mc.db"),
        ("sqlite:////srv/iwork%20mc/mc.db", "/srv/iwork mc/mc.db"),
    ],
)
def test_create_store_sqlite(url: str, path: str) -> None:
    """A sqlite:/// URL gives a SQLiteStore on the relative or absolute path it names."""
    store = create_store(url)

    assert isinstance(store, SQLiteStore)
    assert Path(path) == store.path


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h:5433/db?sslmode=require"])
def test_create_store_postgres(url: str) -> None:
    """postgresql:// and postgres:// URLs give a PostgresStore with the URL as its DSN."""
    store = create_store(url, max_size=3)

    assert isinstance(store, PostgresStore)
    assert (url, 3) == (store.dsn, store.max_size)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "mc.db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///mc.db?mode=ro",
        "postgresql://u@h/db?no_such_option=1",
    ],
)
def test_create_store_rejects(url: str) -> None:
    """Unknown schemes, malformed DSNs and SQLite URLs naming no durable file raise ValueError."""
    with pytest.raises(ValueError, match=r"\S"):
        create_store(url)


async def test_queue_snapshot(store: Store, app: App, message_factory: MessageFactory) -> None:
    """/metrics' view: messages by status and last channel, and the due, unleased outbox rows."""
    ids = [
        await accepted_id(store, message_factory(msg_key=f"q-{n}", accepted_at_ms=T0 + n))
        for n in range(4)
    ]
    empty = await store.queue_snapshot(T0 - 1)
    assert ({("queued", ""): 4}, 0, None) == (
        dict(empty.by_status_channel), empty.due, empty.oldest_due_at_ms
    )  # fmt: skip
    (claimed,) = await store.claim_due(worker_id="w", now_ms=T0 + 10, lease_ms=LEASE_MS, limit=1)
    assert ids[0] == claimed.id
    delivered = await store.transition(
        ids[0], to=MessageStatus.DELIVERED, now_ms=T0 + 20, kind="delivered", worker_id="w",
        channel="sandbox",
    )  # fmt: skip
    assert delivered
    await store.claim_due(worker_id="w", now_ms=T0 + 30, lease_ms=LEASE_MS, limit=1)
    snapshot = await store.queue_snapshot(T0 + 40)
    assert {("delivered", "sandbox"): 1, ("sending", ""): 1, ("queued", ""): 2} == dict(
        snapshot.by_status_channel
    )
    # ids[1] is leased; ids[2] and ids[3] are due, the older since T0 + 2.
    assert (2, T0 + 2) == (snapshot.due, snapshot.oldest_due_at_ms)
