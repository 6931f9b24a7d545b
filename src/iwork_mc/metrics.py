"""Prometheus metrics: what the gateway, the store, the worker and the channels count.

Every label takes its values from a small, closed set (TOP codes, business
error codes, operator-named channels, timeline kinds): never a phone number, a
msg_key or anything else a caller chooses freely.

Several processes on one host (``serve --processes N``, separate ``worker``
processes) share one directory of memory-mapped files, prometheus-client's
multiprocess mode: each process writes its own files and ``/metrics`` on any
gateway adds them all up.  :func:`share_directory` switches a process to that
mode; without it (tests, embedding) the values stay in this process's memory.

What is better read than counted (messages by status, the due queue) is read
from the store when ``/metrics`` is scraped, so every gateway reports the
same numbers however many processes there are.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# prometheus_client's multiprocess helpers are not annotated: the ignores below say so.
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the store counts its commits here: no import cycle at run time
    from iwork_mc.segments import ReceiptOutcome
    from iwork_mc.store.base import QueueSnapshot

__all__ = [
    "CALLBACKS",
    "CALLS",
    "CALL_SECONDS",
    "CONTENT_TYPE",
    "DECLINES",
    "DELIVERY_STEPS",
    "GROUP_COMMIT_JOBS",
    "GROUP_COMMIT_SECONDS",
    "RECEIPTS",
    "RECEIPT_SECONDS",
    "SMPP_EVENTS",
    "SMPP_WINDOW_IN_USE",
    "count_call",
    "count_receipt",
    "exposition",
    "share_directory",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Answers of /router/rest: ``code`` is ``200`` (accepted), a business error_code
#: (``MSG_KEY_CONFLICT``, ``RECEIVER_OPTED_OUT``…) or a TOP platform code (``25``, ``15``…).
CALLS = Counter(
    "iwork_mc_top_calls",
    "TOP calls answered, by method and outcome code",
    ["method", "code"],
)
CALL_SECONDS = Histogram(
    "iwork_mc_top_call_seconds",
    "Time from the first byte read to the answer of a TOP call (accepts are durable)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
#: Calls a receiver policy or another business rule declined, by their error_code.
DECLINES = Counter(
    "iwork_mc_policy_declines",
    "Valid calls declined on business grounds, by reason (error_code)",
    ["reason"],
)
GROUP_COMMIT_JOBS = Histogram(
    "iwork_mc_store_group_commit_jobs",
    "Store operations written by one commit (one fsync)",
    ["backend"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
GROUP_COMMIT_SECONDS = Histogram(
    "iwork_mc_store_group_commit_seconds",
    "Time one group commit takes, fsync included",
    ["backend"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
#: What a worker recorded for a message: the timeline kind of each outcome
#: (submitted, delivered, retry_scheduled, fallback, in_doubt, failed, expired, rejected).
DELIVERY_STEPS = Counter(
    "iwork_mc_delivery_steps",
    "Worker outcomes by channel and timeline kind",
    ["channel", "kind"],
)
#: SMPP session events: submitted, throttled, in_doubt, receipts, unmatched_receipts,
#: duplicate_receipts, possible_duplicates, late_answers, duplicates.
SMPP_EVENTS = Counter(
    "iwork_mc_smpp_events",
    "SMPP submits, throttles, in-doubt submits and receipts, by channel",
    ["channel", "event"],
)
SMPP_WINDOW_IN_USE = Gauge(
    "iwork_mc_smpp_window_in_use",
    "submit_sm sent and not yet answered, by channel (summed over live processes)",
    ["channel"],
    multiprocess_mode="livesum",
)
#: Receipts by channel: matched (the first for its segment), duplicate, unmatched.
RECEIPTS = Counter(
    "iwork_mc_receipts",
    "Delivery receipts recorded, by channel and result",
    ["channel", "result"],
)
RECEIPT_SECONDS = Histogram(
    "iwork_mc_receipt_seconds",
    "Time from a segment's submission (or interim receipt) to its receipt, by channel",
    ["channel"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
#: Status callbacks: delivered, retry (will be sent again), given_up.
CALLBACKS = Counter(
    "iwork_mc_callbacks",
    "Status callback attempts by outcome",
    ["outcome"],
)


def count_receipt(channel: str, outcome: ReceiptOutcome, now_ms: int) -> None:
    """Count one recorded receipt, and its latency when it is the first for its segment."""
    if not outcome.matched:
        RECEIPTS.labels(channel, "unmatched").inc()
    elif outcome.duplicate:
        RECEIPTS.labels(channel, "duplicate").inc()
    else:
        RECEIPTS.labels(channel, "matched").inc()
        if outcome.since_ms is not None:
            RECEIPT_SECONDS.labels(channel).observe(max(0, now_ms - outcome.since_ms) / 1000)


def count_call(method: str, code: str, seconds: float) -> None:
    """Count one answered TOP call: the hot path's only metrics work."""
    calls, duration = _call_children(method, code)
    calls.inc()
    duration.observe(seconds)


# Looking a labelled child up costs about as much as counting into it; the
# (method, code) pairs are few, so each pair's children are looked up once.
@functools.cache
def _call_children(method: str, code: str) -> tuple[Counter, Histogram]:
    return CALLS.labels(method, code), CALL_SECONDS.labels(method)


class _StoreGauges(Collector):
    """The store's view at scrape time, as gauges."""

    def __init__(self, snapshot: QueueSnapshot | None, now_ms: int) -> None:
        self._snapshot = snapshot
        self._now_ms = now_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "iwork_mc_store_up", "1 if the store answered the scrape's query in time"
        )
        up.add_metric([], 0 if self._snapshot is None else 1)
        yield up
        if self._snapshot is None:
            return
        messages = GaugeMetricFamily(
            "iwork_mc_messages",
            "Messages in the store by status and last channel",
            labels=["status", "channel"],
        )
        for (status, channel), count in sorted(self._snapshot.by_status_channel.items()):
            messages.add_metric([status, channel], count)
        yield messages
        yield GaugeMetricFamily(
            "iwork_mc_queue_due", "Messages due for a worker now", value=self._snapshot.due
        )
        oldest = self._snapshot.oldest_due_at_ms
        age = 0.0 if oldest is None else max(0.0, (self._now_ms - oldest) / 1000)
        yield GaugeMetricFamily(
            "iwork_mc_queue_oldest_due_age_seconds",
            "How long the oldest due message has waited past its due time",
            value=age,
        )


def exposition(snapshot: QueueSnapshot | None, now_ms: int) -> bytes:
    """The text format: this host's counters (every process's, if shared) and the store's gauges."""
    registry = CollectorRegistry()
    if _shared_directory() is not None:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        collected = generate_latest(registry)
    else:
        collected = generate_latest(REGISTRY)
    store_registry = CollectorRegistry()
    store_registry.register(_StoreGauges(snapshot, now_ms))
    return collected + generate_latest(store_registry)


def _shared_directory() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def share_directory(path: Path) -> None:
    """Count into files under ``path``, shared with the host's other iwork-mc processes.

    Call it once, early, before anything is counted.  A process that finds no
    live process using the directory empties it first (a fresh start: counters
    begin at zero); otherwise it only drops the live gauges of dead processes
    (their counters stay, so totals never go backwards).  At exit the
    process's live gauges are removed.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path / ".lock"):
        owners = _file_owners(path)
        live = {pid for pid in owners if pid != os.getpid() and _alive(pid)}
        for pid in owners - live:
            if live:
                multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
            else:
                for stale in path.glob(f"*_{pid}.db"):
                    stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # prometheus-client picks its value class when it is first imported, from this
    # same variable; the directory is only known once settings are read, so the
    # multiprocess class is put in place here, before any labelled child exists.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    pid = os.getpid()
    atexit.register(multiprocess.mark_process_dead, pid, str(path))


def _file_owners(path: Path) -> set[int]:
    owners = set()
    for file in path.glob("*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit():
            owners.add(int(pid))
    return owners


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # Two processes starting together must not both decide the directory is theirs.
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
