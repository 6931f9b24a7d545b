"""What the web console needs from the store, on SQLite and PostgreSQL: operators and
their lock-out, the activity buckets of the overview, search by msg_key and channel."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iwork_mc.apps import App
from iwork_mc.messages import Activity, MessageQuery, MessageStatus, NewMessage
from iwork_mc.operators import LockOut, Operator
from iwork_mc.store import Store
from iwork_mc.store.base import OperatorExists

LOCK = LockOut(max_failures=3, duration_ms=60_000)
T0 = 1_700_000_000_000


def operator(name: str = "alice") -> Operator:
    return Operator(name=name, password_hash="$argon2id$v=19$m=1,t=1,p=1$x$y", created_at_ms=T0)


async def test_insert_get_and_list_operators(store: Store) -> None:
    """An operator is stored once; a second of the same name is refused."""
    await store.insert_operator(operator("bob"))
    await store.insert_operator(operator("alice"))
    with pytest.raises(OperatorExists):
        await store.insert_operator(operator("alice"))

    assert operator("alice") == await store.get_operator("alice")
    assert None is await store.get_operator("carol")
    assert ["alice", "bob"] == [o.name for o in await store.list_operators()]


async def test_failures_in_a_row_lock_the_operator_out(store: Store) -> None:
    """The third failure in a row locks for the lock-out's duration and restarts the count."""
    await store.insert_operator(operator())
    for n in (1, 2):
        await store.sign_in_failed("alice", now_ms=T0 + n, lock_out=LOCK)
        found = await store.get_operator("alice")
        assert found is not None
        assert (n, False) == (found.failed_sign_ins, found.locked(T0 + n))

    await store.sign_in_failed("alice", now_ms=T0 + 3, lock_out=LOCK)

    locked = await store.get_operator("alice")
    assert locked is not None
    assert (0, T0 + 3 + 60_000) == (locked.failed_sign_ins, locked.locked_until_ms)
    assert locked.locked(T0 + 60_002)
    assert not locked.locked(T0 + 60_003)


async def test_a_success_clears_failures_and_lock(store: Store) -> None:
    """Signing in resets the count, so failures must be in a row to lock."""
    await store.insert_operator(operator())
    for n in (1, 2):
        await store.sign_in_failed("alice", now_ms=T0 + n, lock_out=LOCK)
    await store.sign_in_succeeded("alice", now_ms=T0 + 10)
    await store.sign_in_failed("alice", now_ms=T0 + 11, lock_out=LOCK)

    found = await store.get_operator("alice")
    assert found is not None
    assert (1, 0, T0 + 10) == (found.failed_sign_ins, found.locked_until_ms, found.last_sign_in_ms)


async def test_failures_of_an_unknown_operator_change_nothing(store: Store) -> None:
    """No row appears for a name nobody has."""
    await store.sign_in_failed("nobody", now_ms=T0, lock_out=LOCK)
    assert [] == await store.list_operators()


async def test_activity_counts_accepts_and_deliveries_per_bucket(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """Accepts fall in their acceptance bucket, deliveries in their last change's bucket."""
    hour = 3_600_000
    ids = []
    for n, at in enumerate((T0 + 10, T0 + 20, T0 + hour + 5, T0 - 1)):
        message = message_factory(msg_key=f"m{n}", accepted_at_ms=at, request_id=f"r{n}")
        ids.append((await store.accept(message)).message_id)
    claims = await store.claim_due(worker_id="w", now_ms=T0 + 30, lease_ms=1000, limit=10)
    [claimed] = [m for m in claims if m.id == ids[0]]
    assert await store.transition(
        claimed.id, to=MessageStatus.DELIVERED, now_ms=T0 + 2 * hour, kind="delivered"
    )

    found = await store.activity(since_ms=T0, bucket_ms=hour)

    assert [
        Activity(start_ms=T0, accepted=2, delivered=0),
        Activity(start_ms=T0 + hour, accepted=1, delivered=0),
        Activity(start_ms=T0 + 2 * hour, accepted=0, delivered=1),
    ] == found


async def test_find_messages_by_msg_key_and_channel_across_apps(
    store: Store, app_factory: Callable[..., App], message_factory: Callable[..., NewMessage]
) -> None:
    """msg_key and channel are exact filters; without app_key every app is searched."""
    for key in ("11111111", "22222222"):
        await store.insert_app(app_factory(app_key=key))
    first = await store.accept(message_factory(app_key="11111111", msg_key="same"))
    second = await store.accept(message_factory(app_key="22222222", msg_key="same"))
    await store.accept(message_factory(app_key="22222222", msg_key="other"))
    [claimed] = await store.claim_due(worker_id="w", now_ms=T0 + 10**6, lease_ms=1000, limit=1)
    await store.transition(
        claimed.id,
        to=MessageStatus.SUBMITTED,
        now_ms=T0 + 10**6,
        kind="submitted",
        channel="smsc-a",
    )

    by_key = await store.find_messages(MessageQuery(msg_key="same"))
    by_channel = await store.find_messages(MessageQuery(channel="smsc-a"))
    both = await store.find_messages(MessageQuery(msg_key="same", channel="smsc-a"))

    assert [second.message_id, first.message_id] == [m.id for m in by_key]
    assert [claimed.id] == [m.id for m in by_channel]
    assert ([claimed.id] if claimed.msg_key == "same" else []) == [m.id for m in both]
