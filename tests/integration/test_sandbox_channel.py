"""The sandbox channel's magic numbers, end to end through the real Worker and store.

Each magic receiver (``iwork_mc.channels.sandbox.MAGIC_NUMBERS``) is accepted,
delivered by a :class:`~iwork_mc.worker.Worker` on a fake clock, and judged by
its final status, attempt count and timeline, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from prometheus_client import REGISTRY

from iwork_mc.apps import App
from iwork_mc.channels.sandbox import (
    MAGIC_NUMBERS,
    RECEIPT_BEHAVIOURS,
    TRANSIENT_FAILURES,
    Behaviour,
    SandboxChannel,
)
from iwork_mc.events import EventLimits, parse_event
from iwork_mc.messages import Message, MessageStatus, NewMessage, TimelineEntry
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import Store
from iwork_mc.worker import Worker

T0 = 1_700_000_010.0
NUMBER = {behaviour: number for number, behaviour in MAGIC_NUMBERS.items()}
ORDINARY = "+8613888888888"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "howto" / "sandbox.md"
#: Real seconds before a receipt arrives: long enough for the worker to record "submitted".
RECEIPT_DELAY_S = 0.2


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def channel(store: Store, tmp_path: Path, clock: Clock) -> Any:
    """A sandbox channel recording receipts in ``store``, closed afterwards."""
    opened = SandboxChannel(
        tmp_path / "sandbox", store=store, receipt_delay_s=RECEIPT_DELAY_S, clock=clock
    )
    await opened.open()
    yield opened
    await opened.close()


def worker_for(store: Store, channel: SandboxChannel, clock: Clock, **kwargs: Any) -> Worker:
    kwargs.setdefault("retry", RetryPolicy(base_s=1, max_delay_s=4, max_attempts=5))
    return Worker(store, channel, clock=clock, rng=random.Random(7), worker_id="w1", **kwargs)


async def run_until_idle(worker: Worker, clock: Clock, *, max_rounds: int = 20) -> int:
    """Run rounds, moving the clock past every retry, until nothing is due; return the rounds."""
    for rounds in range(max_rounds):
        if await worker.run_once() == 0:
            return rounds
        clock.now += 60
    raise AssertionError(f"still claiming after {max_rounds} rounds")


async def accept_to(store: Store, make: Callable[..., NewMessage], number: str) -> int:
    result = await store.accept(make(mobile_receiver=number))
    return result.message_id


async def stored(store: Store, message_id: int) -> Message:
    message = await store.get_message_by_id(message_id)
    assert message is not None
    return message


async def timeline(store: Store, message_id: int) -> list[TimelineEntry]:
    return await store.timeline(message_id)


async def kinds(store: Store, message_id: int) -> list[str]:
    return [entry.kind for entry in await timeline(store, message_id)]


def deliveries(channel: SandboxChannel) -> list[dict[str, Any]]:
    lines = channel.path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- the table itself --------------------------------------------------------


@pytest.mark.parametrize("number", sorted(MAGIC_NUMBERS))
def test_every_magic_number_is_a_valid_chinese_mobile_number(number: str) -> None:
    """Each magic number is a valid CN mobile number, so the gateway accepts it."""
    parsed = phonenumbers.parse(number)
    assert phonenumbers.is_valid_number(parsed)
    assert "CN" == phonenumbers.region_code_for_number(parsed)
    assert phonenumbers.PhoneNumberType.MOBILE == phonenumbers.number_type(parsed)


@pytest.mark.parametrize("number", sorted(MAGIC_NUMBERS))
def test_a_national_magic_number_normalises_to_its_key(number: str) -> None:
    """A caller writing 138000000NN reaches the sandbox as the E.164 key of the table."""
    raw = json.dumps(
        {
            "msg_key": "k",
            "event_time_millis": 1,
            "source": "s",
            "action": "a",
            "mobile_receiver": number.removeprefix("+86"),
            "event_type": "t",
            "json_data": "{}",
            "sender": 1,
        }
    )
    assert number == parse_event(raw, EventLimits()).mobile_receiver


def test_every_behaviour_has_exactly_one_number() -> None:
    """The table maps one number to each behaviour, none left out."""
    assert sorted(Behaviour) == sorted(MAGIC_NUMBERS.values())


def test_the_howto_documents_every_magic_number() -> None:
    """docs/howto/sandbox.md has a table row for each number, naming its behaviour."""
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(
            r"^\|\s*`(\+86\d{11})`\s*\|\s*`(\w+)`", DOCS.read_text(encoding="utf-8"), re.M
        )
    }
    assert {number: behaviour.value for number, behaviour in MAGIC_NUMBERS.items()} == rows


# -- each number, end to end ---------------------------------------------------


async def test_an_ordinary_number_is_delivered_at_once(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """Any number outside the table is delivered on the first attempt, with no receipt."""
    message_id = await accept_to(store, message_factory, ORDINARY)
    await run_until_idle(worker_for(store, channel, clock), clock)
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, 1) == (message.status, message.attempts)
    assert ["accepted", "claimed", "delivered"] == await kinds(store, message_id)
    assert [(ORDINARY, "delivered")] == [(d["to"], d["outcome"]) for d in deliveries(channel)]


async def test_the_delivered_number_behaves_like_an_ordinary_one(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """The documented "delivered" number is delivered on the first attempt."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.DELIVERED])
    await run_until_idle(worker_for(store, channel, clock), clock)
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, 1) == (message.status, message.attempts)
    assert ["accepted", "claimed", "delivered"] == await kinds(store, message_id)


async def test_the_permanent_failure_number_fails_at_once(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """The permanent-failure number fails on attempt 1 with a reason naming the number."""
    number = NUMBER[Behaviour.PERMANENT_FAILURE]
    message_id = await accept_to(store, message_factory, number)
    await run_until_idle(worker_for(store, channel, clock), clock)
    message = await stored(store, message_id)
    assert (MessageStatus.FAILED, 1) == (message.status, message.attempts)
    assert message.last_error is not None
    assert "permanent failure" in message.last_error
    assert number in message.last_error
    assert ["accepted", "claimed", "failed"] == await kinds(store, message_id)
    assert [] == deliveries(channel)


async def test_the_transient_number_fails_twice_then_is_delivered(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """Attempts 1 and 2 are retried later from the store; attempt 3 is delivered."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.TRANSIENT_THEN_DELIVERED])
    await run_until_idle(worker_for(store, channel, clock), clock)
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, TRANSIENT_FAILURES + 1) == (message.status, message.attempts)
    assert [
        "accepted",
        "claimed",
        "retry_scheduled",
        "claimed",
        "retry_scheduled",
        "claimed",
        "delivered",
    ] == await kinds(store, message_id)
    retries = [e for e in await timeline(store, message_id) if e.kind == "retry_scheduled"]
    assert [1, 2] == [entry.detail["attempt"] for entry in retries]
    assert all("simulated transient failure" in entry.detail["error"] for entry in retries)
    assert 1 == len(deliveries(channel))


async def test_the_always_transient_number_fails_when_retries_run_out(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """Every attempt fails transiently; after max_attempts the message fails for good."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.ALWAYS_TRANSIENT])
    worker = worker_for(store, channel, clock, retry=RetryPolicy(base_s=1, max_attempts=3))
    await run_until_idle(worker, clock)
    message = await stored(store, message_id)
    assert (MessageStatus.FAILED, 3) == (message.status, message.attempts)
    assert message.last_error is not None
    assert message.last_error.startswith("retries exhausted: ")
    assert [
        "accepted",
        "claimed",
        "retry_scheduled",
        "claimed",
        "retry_scheduled",
        "claimed",
        "failed",
    ] == await kinds(store, message_id)
    assert [] == deliveries(channel)


def receipt_counts() -> tuple[float, float, float]:
    """This process's matched and duplicate sandbox receipts, and the latencies observed."""

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"channel": "sandbox", **labels}) or 0.0

    return (
        value("iwork_mc_receipts_total", result="matched"),
        value("iwork_mc_receipts_total", result="duplicate"),
        value("iwork_mc_receipt_seconds_count"),
    )


async def test_the_slow_number_is_submitted_then_delivered_by_a_later_receipt(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """The message waits in submitted until the sandbox's delivered receipt arrives."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.SLOW_RECEIPT])
    await run_until_idle(worker_for(store, channel, clock), clock)
    waiting = await stored(store, message_id)
    assert (MessageStatus.SUBMITTED, f"sandbox-{message_id}-1") == (
        waiting.status,
        waiting.channel_ref,
    )
    await channel.wait_for_receipts()
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, 1) == (message.status, message.attempts)
    assert ["accepted", "claimed", "submitted", "receipt", "delivered"] == await kinds(
        store, message_id
    )
    [segment] = await store.segments(message_id)
    assert ("sandbox", f"sandbox-{message_id}-1", "delivered") == (
        segment.channel,
        segment.carrier_id,
        segment.state.value,
    )
    assert [("submitted", f"sandbox-{message_id}-1")] == [
        (d["outcome"], d["ref"]) for d in deliveries(channel)
    ]


@pytest.mark.parametrize(
    ("behaviour", "late_state"),
    [(Behaviour.DUPLICATE_RECEIPTS, "delivered"), (Behaviour.OUT_OF_ORDER_RECEIPTS, "enroute")],
    ids=["same-receipt-twice", "enroute-after-delivered"],
)
async def test_a_receipt_after_delivery_is_a_duplicate_and_changes_nothing(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
    behaviour: Behaviour,
    late_state: str,
) -> None:
    """A repeated delivered receipt, or a late enroute one, is recorded as duplicate_receipt;
    the message and its segment stay delivered (never downgraded).  /metrics counts one
    matched receipt (with its latency) and one duplicate."""
    before = receipt_counts()
    message_id = await accept_to(store, message_factory, NUMBER[behaviour])
    await run_until_idle(worker_for(store, channel, clock), clock)
    await channel.wait_for_receipts()
    assert (1, 1, 1) == tuple(a - b for a, b in zip(receipt_counts(), before, strict=True))
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, 1) == (message.status, message.attempts)
    entries = await timeline(store, message_id)
    assert [
        "accepted",
        "claimed",
        "submitted",
        "receipt",
        "delivered",
        "duplicate_receipt",
    ] == [entry.kind for entry in entries]
    assert late_state == entries[-1].detail["state"]
    assert MessageStatus.DELIVERED == entries[-1].status
    [segment] = await store.segments(message_id)
    assert "delivered" == segment.state.value


async def test_the_undeliverable_number_fails_by_receipt(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """Submitted, then an undeliverable receipt fails the message with the receipt's error."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.UNDELIVERABLE_RECEIPT])
    await run_until_idle(worker_for(store, channel, clock), clock)
    assert MessageStatus.SUBMITTED == (await stored(store, message_id)).status
    await channel.wait_for_receipts()
    message = await stored(store, message_id)
    assert (MessageStatus.FAILED, 1) == (message.status, message.attempts)
    assert "sandbox: undeliverable (simulated)" == message.last_error
    assert ["accepted", "claimed", "submitted", "receipt", "failed"] == await kinds(
        store, message_id
    )


async def test_the_in_doubt_number_is_resent_after_a_short_wait_and_delivered(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """Attempt 1 is in doubt (not a retry); the resend is marked and delivered."""
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.IN_DOUBT_THEN_DELIVERED])
    worker = worker_for(store, channel, clock)
    assert 1 == await worker.run_once()
    entries = await timeline(store, message_id)
    assert "in_doubt" == entries[-1].kind
    assert int((T0 + channel.in_doubt_retry_s) * 1000) == entries[-1].detail["due_at_ms"]
    assert 0 == await worker.run_once()  # not before retry_after_s
    clock.now += channel.in_doubt_retry_s
    await run_until_idle(worker, clock)
    message = await stored(store, message_id)
    assert (MessageStatus.DELIVERED, 2) == (message.status, message.attempts)
    assert [
        "accepted",
        "claimed",
        "in_doubt",
        "claimed",
        "possible_duplicate",
        "delivered",
    ] == await kinds(store, message_id)
    # The carrier had the first submission: the "handset" shows the message twice.
    assert ["in_doubt", "delivered"] == [d["outcome"] for d in deliveries(channel)]


# -- without a store, and closing ----------------------------------------------


@pytest.mark.parametrize("behaviour", sorted(RECEIPT_BEHAVIOURS))
async def test_receipt_numbers_fail_clearly_without_a_store(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    tmp_path: Path,
    clock: Clock,
    behaviour: Behaviour,
) -> None:
    """A sandbox built without a store refuses the receipt numbers, saying it needs one."""
    bare = SandboxChannel(tmp_path / "sandbox", clock=clock)
    await bare.open()
    message_id = await accept_to(store, message_factory, NUMBER[behaviour])
    await run_until_idle(worker_for(store, bare, clock), clock)
    message = await stored(store, message_id)
    assert (MessageStatus.FAILED, 1) == (message.status, message.attempts)
    assert message.last_error is not None
    assert "needs the sandbox channel to be given the store" in message.last_error
    assert [] == deliveries(bare)
    await bare.close()


async def test_close_records_pending_receipts_at_once(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    tmp_path: Path,
    clock: Clock,
) -> None:
    """Closing does not wait out receipt_delay_s, and drops no pending receipt."""
    slow = SandboxChannel(tmp_path / "sandbox", store=store, receipt_delay_s=3600, clock=clock)
    await slow.open()
    message_id = await accept_to(store, message_factory, NUMBER[Behaviour.SLOW_RECEIPT])
    await run_until_idle(worker_for(store, slow, clock), clock)
    assert 1 == slow.health()["pending_receipts"]
    await slow.close()
    assert 0 == slow.health()["pending_receipts"]
    assert MessageStatus.DELIVERED == (await stored(store, message_id)).status


async def test_the_deliveries_file_is_private(channel: SandboxChannel) -> None:
    """deliveries.jsonl holds numbers and texts: mode 0600, in a 0700 directory."""
    assert 0o600 == channel.path.stat().st_mode & 0o777
    assert 0o700 == channel.path.parent.stat().st_mode & 0o777


async def test_the_always_transient_number_expires_when_its_validity_ends_first(
    store: Store,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """A message whose next retry would fall after its validity expires instead of waiting."""
    expires_at_ms = int(T0 * 1000) + 5_000
    new = dataclasses.replace(
        message_factory(mobile_receiver=NUMBER[Behaviour.ALWAYS_TRANSIENT]),
        expires_at_ms=expires_at_ms,
    )
    message_id = (await store.accept(new)).message_id
    worker = worker_for(store, channel, clock, retry=RetryPolicy(base_s=10, max_attempts=10))
    await run_until_idle(worker, clock)
    message = await stored(store, message_id)
    assert (MessageStatus.EXPIRED, 1) == (message.status, message.attempts)
    assert message.last_error is not None
    assert "simulated transient failure" in message.last_error
    assert ["accepted", "claimed", "expired"] == await kinds(store, message_id)


# -- a full disk ----------------------------------------------------------------

#: Runs one worker round with the file size limit just past the end of deliveries.jsonl,
#: so the line of the message crosses it: the write stops mid-line (EFBIG), as on a
#: full disk.  argv: database URL, sandbox directory, clock (epoch seconds).
_FULL_DISK_ROUND = """
import asyncio, random, resource, signal, sys
from pathlib import Path
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.retry import RetryPolicy
from iwork_mc.store import create_store
from iwork_mc.worker import Worker

url, directory, now = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
size = (directory / "deliveries.jsonl").stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, resource.RLIM_INFINITY))

async def main() -> None:
    store = create_store(url)
    await store.open()
    channel = SandboxChannel(directory, store=store, clock=lambda: now)
    await channel.open()
    worker = Worker(store, channel, clock=lambda: now, rng=random.Random(7), worker_id="w1",
                    retry=RetryPolicy(base_s=1, max_delay_s=4, max_attempts=5))
    print(await worker.run_once())
    await channel.close()
    await store.close()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_full_disk_tears_no_line_and_the_message_is_retried(
    store: Store,
    database_url: str,
    app: App,
    message_factory: Callable[..., NewMessage],
    channel: SandboxChannel,
    clock: Clock,
) -> None:
    """A line that does not fit is cut off whole; the message is retried, then delivered."""
    # Earlier deliveries, more bytes than the database files will grow to, so the
    # limit just past their end stops only the sandbox's write.
    padding = json.dumps({"ref": "earlier", "outcome": "delivered", "text": "x" * 200})
    with channel.path.open("a", encoding="utf-8") as handle:
        handle.write((padding + "\n") * 20_000)
    before = channel.path.read_bytes()
    message_id = await accept_to(store, message_factory, ORDINARY)

    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _FULL_DISK_ROUND, database_url, str(channel.path.parent),
         str(clock.now)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert 0 == child.returncode, child.stderr
    assert "1" == child.stdout.strip().splitlines()[-1]  # one message claimed

    assert before == channel.path.read_bytes()  # no partial line left behind
    message = await stored(store, message_id)
    assert MessageStatus.QUEUED == message.status
    assert message.last_error is not None
    assert "deliveries.jsonl" in message.last_error
    assert "delivered" not in await kinds(store, message_id)

    clock.now += 60
    await run_until_idle(worker_for(store, channel, clock), clock)
    assert MessageStatus.DELIVERED == (await stored(store, message_id)).status
    written = deliveries(channel)  # every line is whole JSON
    assert [ORDINARY] == [d["to"] for d in written if d["ref"] != "earlier"]
