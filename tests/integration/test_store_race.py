"""Two OS processes accepting the same messages at the same instant, on both backends.

Run as a script, this file is one racer (see the ``race`` fixture): it opens a
store, says ``ready``, waits for the common start time, then accepts one key
every ``GAP_S`` seconds so that both racers hit each key together.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iwork_mc.apps import App
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import AcceptOutcome, MessageStatus, NewMessage
from iwork_mc.store import create_store

KEYS = 20
GAP_S = 0.05
APP_KEY = "12345678"


def racing_message(key: str) -> NewMessage:
    event = MobileReceiverMessageEvent(
        msg_key=key,
        event_time_millis=1_700_000_000_000,
        source="visitor",
        action="arrived",
        mobile_receiver="+8613888888888",
        event_type="notice",
        json_data="{}",
        sender=1,
    )
    return NewMessage(
        app_key=APP_KEY,
        event=event,
        fingerprint=event.fingerprint(),
        request_id=f"req-{key}",
        accepted_at_ms=1_700_000_001_000,
    )


async def test_processes_racing_to_accept(
    database_url: str, race: Callable[..., list[Any]]
) -> None:
    """Each key raced by two processes is stored once: one ACCEPTED, one DUPLICATE."""
    store = create_store(database_url)
    await store.open()
    try:
        await store.migrate()
        await store.insert_app(
            App(app_key=APP_KEY, name="race", secret="s" * 32, enabled=True, created_at_ms=0)
        )

        results = await asyncio.to_thread(race, Path(__file__), database_url)
        counts = await store.count_by_status()
    finally:
        await store.close()

    by_key: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for racer in results:
        for key, outcome, message_id in racer:
            by_key[key].append((outcome, message_id))
    assert KEYS == len(by_key)
    for key, answers in by_key.items():
        assert [AcceptOutcome.ACCEPTED, AcceptOutcome.DUPLICATE] == sorted(
            outcome for outcome, _ in answers
        ), key
        assert 1 == len({message_id for _, message_id in answers}), key
    assert KEYS == counts[MessageStatus.QUEUED]


async def _racer(database_url: str) -> list[tuple[str, str, int]]:
    store = create_store(database_url)
    await store.open()
    try:
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
        answers = []
        for n in range(KEYS):
            await asyncio.sleep(max(0.0, start_at + n * GAP_S - time.time()))
            key = f"race-{n}"
            result = await store.accept(racing_message(key))
            answers.append((key, result.outcome.value, result.message_id))
        return answers
    finally:
        await store.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_racer(sys.argv[1]))))
