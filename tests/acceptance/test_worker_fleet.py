"""Several `iwork-mc worker` processes on one store: shared work, and a worker killed with -9.

Each worker runs with its own data directory, so its sandbox outbox
(``<data_dir>/sandbox/deliveries.jsonl``) tells exactly what that worker sent.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import (
    AcceptOutcome,
    Message,
    MessageQuery,
    MessageStatus,
    NewMessage,
    TimelineEntry,
)
from iwork_mc.store import Store, create_store

from processes import Server, sandbox_deliveries, start

APP_KEY = "12345678"

FLEET_MESSAGES = 5_000
FLEET_SIZE = 3

KILL_MESSAGES = 1_000
KILL_CONCURRENCY = 100
SHORT_LEASE = {
    "IWORK_MC_LEASE_S": "2",
    "IWORK_MC_WORKER_CONCURRENCY": str(KILL_CONCURRENCY),
    "IWORK_MC_POLL_INTERVAL_S": "0.05",
}


def receiver(n: int) -> str:
    """A valid CN mobile number per ``n``, outside the sandbox's magic block +86 138 0000 00NN."""
    return f"+861391{n:07d}"


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Store]:
    store = create_store(database_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def seed(store: Store, count: int) -> list[int]:
    """Migrate, add an app and accept ``count`` messages to distinct receivers; their ids."""
    await store.migrate()
    await store.insert_app(
        App(app_key=APP_KEY, name="fleet", secret="s" * 32, enabled=True, created_at_ms=0)
    )
    now_ms = int(time.time() * 1000)

    async def accept(n: int) -> int:
        event = MobileReceiverMessageEvent(
            msg_key=f"fleet-{n}", event_time_millis=now_ms, source="park", action="visit",
            mobile_receiver=receiver(n), event_type="notice", json_data=f'{{"n":{n}}}', sender=1,
        )  # fmt: skip
        message = NewMessage(
            app_key=APP_KEY, event=event, fingerprint=event.fingerprint(),
            request_id=f"req-{n}", accepted_at_ms=now_ms,
        )  # fmt: skip
        result = await store.accept(message)
        assert AcceptOutcome.ACCEPTED == result.outcome
        return result.message_id

    ids: list[int] = []
    for first in range(0, count, 100):  # one transaction per accept: 100 at a time
        ids += await asyncio.gather(*(accept(n) for n in range(first, min(count, first + 100))))
    return ids


async def wait_until_all_delivered(store: Store, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    counts: dict[MessageStatus, int] = {}
    while time.monotonic() < deadline:
        counts = await store.count_by_status()
        if counts[MessageStatus.DELIVERED] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all {count} messages delivered within {within} s: {counts}")


async def wait_until_worked_off(store: Store, within: float) -> None:
    """Wait until no message is waiting for a worker or leased to one."""
    deadline = time.monotonic() + within
    counts: dict[MessageStatus, int] = {}
    while time.monotonic() < deadline:
        counts = await store.count_by_status()
        if counts[MessageStatus.QUEUED] == counts[MessageStatus.SENDING] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"messages still queued or sending after {within} s: {counts}")


async def messages_in(store: Store, *statuses: MessageStatus) -> list[Message]:
    return await store.find_messages(
        MessageQuery(statuses=frozenset(statuses), limit=FLEET_MESSAGES)
    )


async def wait_until_sent(data_dir: Path, at_least: int, within: float) -> None:
    deadline = time.monotonic() + within
    while len(sandbox_deliveries(data_dir)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {at_least} deliveries within {within} s")
        await asyncio.sleep(0.01)


async def timelines(store: Store, ids: list[int] | set[int]) -> dict[int, list[TimelineEntry]]:
    ordered = sorted(ids)
    found: dict[int, list[TimelineEntry]] = {}
    for first in range(0, len(ordered), 100):
        batch = ordered[first : first + 100]
        for message_id, entries in zip(
            batch, await asyncio.gather(*(store.timeline(i) for i in batch)), strict=True
        ):
            found[message_id] = entries
    return found


def start_worker(data_dir: Path, database_url: str, env: dict[str, str] | None = None) -> Server:
    """Start `iwork-mc worker` on the sandbox channel (the default), writing under ``data_dir``."""
    return start(data_dir, "--database-url", database_url, "worker", env=env)


def started(worker: Server) -> str:
    """Wait for the worker's start line; the id it claims messages under."""
    return worker.read_until(r"worker_started.*worker_id=(\S+)").group(1)


def stop(worker: Server) -> None:
    worker.kill(signal.SIGTERM)
    assert 0 == worker.process.returncode, worker.text()[-3000:]


@pytest.mark.slow
@pytest.mark.postgres
async def test_three_workers_on_one_postgres_share_the_backlog_and_send_each_message_once(
    tmp_path: Path, pg_url: str, servers: list[Server]
) -> None:
    """5,000 queued messages, three workers: all delivered, each sent once, by all three."""
    async with opened(pg_url) as store:
        ids = await seed(store, FLEET_MESSAGES)
        data_dirs = [tmp_path / f"worker-{n}" for n in range(1, FLEET_SIZE + 1)]
        begun = time.monotonic()
        fleet = [start_worker(data_dir, pg_url) for data_dir in data_dirs]
        servers.extend(fleet)
        for worker in fleet:
            started(worker)
        await wait_until_all_delivered(store, FLEET_MESSAGES, within=50)
        wall_s = time.monotonic() - begun
        history = await timelines(store, ids)
    for worker in fleet:
        stop(worker)

    sent_by = [sandbox_deliveries(data_dir) for data_dir in data_dirs]
    times_sent = Counter(line["message_id"] for lines in sent_by for line in lines)
    assert set(ids) == set(times_sent)
    assert {1} == set(times_sent.values())
    assert all(len(lines) > 0 for lines in sent_by), [len(lines) for lines in sent_by]
    late = [i for i, entries in history.items()
            if any(e.kind == "late_result_after_lease_lost" for e in entries)]  # fmt: skip
    assert [] == late

    # The drain, from the store's own clock: first claim to last delivery.
    first_claim = min(e.at_ms for entries in history.values() for e in entries
                      if e.kind == "claimed")  # fmt: skip
    last_delivery = max(e.at_ms for entries in history.values() for e in entries
                        if e.kind == "delivered")  # fmt: skip
    drain_s = (last_delivery - first_claim) / 1000
    print(json.dumps({
        "messages": FLEET_MESSAGES, "workers": FLEET_SIZE,
        "sent_per_worker": [len(lines) for lines in sent_by],
        "drain_s": round(drain_s, 2), "messages_per_s": round(FLEET_MESSAGES / drain_s),
        "wall_s_with_startup": round(wall_s, 2),
    }))  # fmt: skip


@pytest.mark.slow
async def test_worker_killed_mid_batch_loses_nothing_and_each_resend_is_in_the_timeline(
    tmp_path: Path, database_url: str, servers: list[Server]
) -> None:
    """kill -9 while a worker holds leased messages: a successor delivers every message;
    only the dead worker's in-flight ones can be sent twice, each after a visible reclaim."""
    async with opened(database_url) as store:
        ids = await seed(store, KILL_MESSAGES)
        killed_dir, successor_dir = tmp_path / "killed", tmp_path / "successor"
        killed = start_worker(killed_dir, database_url, env=SHORT_LEASE)
        servers.append(killed)
        killed_id = started(killed)
        await wait_until_sent(killed_dir, at_least=KILL_MESSAGES // 5, within=30)
        killed.kill(signal.SIGKILL)
        sent_before_kill = sandbox_deliveries(killed_dir)
        assert 0 < len(sent_before_kill) < KILL_MESSAGES
        in_flight = {message.id for message in await messages_in(store, MessageStatus.SENDING)}
        assert 0 < len(in_flight) <= KILL_CONCURRENCY

        successor = start_worker(successor_dir, database_url, env=SHORT_LEASE)
        servers.append(successor)
        await wait_until_worked_off(store, within=40)
        history = await timelines(store, ids)
        not_delivered = {
            message.id: message.status
            for message in await messages_in(
                store, *(set(MessageStatus) - {MessageStatus.DELIVERED})
            )
        }
    stop(successor)

    times_sent = Counter(
        line["message_id"] for line in sent_before_kill + sandbox_deliveries(successor_dir)
    )
    sent_twice = {message_id for message_id, n in times_sent.items() if n > 1}
    print(json.dumps({
        "backend": database_url.split(":", 1)[0], "messages": KILL_MESSAGES,
        "sent_before_kill": len(sent_before_kill), "in_flight_at_kill": len(in_flight),
        "duplicates": len(sent_twice), "not_delivered": len(not_delivered),
    }))  # fmt: skip
    # Every message reached the sandbox; only the dead worker's in-flight ones twice, and
    # each of those after a claim that names the dead worker it was reclaimed from.
    assert set(ids) == set(times_sent)
    assert max(times_sent.values()) <= 2
    assert sent_twice <= in_flight
    for message_id in sent_twice:
        reclaims = [e for e in history[message_id]
                    if e.kind == "claimed" and e.detail.get("reclaimed_from") == killed_id]  # fmt: skip
        assert reclaims, history[message_id]
    # And the store says so: every message ends delivered, none stranded on the way.
    assert {} == {
        message_id: (str(status), [e.kind for e in history[message_id]])
        for message_id, status in not_delivered.items()
    }
