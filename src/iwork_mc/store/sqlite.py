"""SQLiteStore: the embedded default, one database file in WAL mode.

Theory of operation
-------------------

*One thread owns the connection.*  ``sqlite3`` is blocking, so every piece of
database work is a plain function (a *job*) handed to a dedicated thread; the
async methods put a job on the thread's queue and await a future that the
thread resolves with ``loop.call_soon_threadsafe``.  The event loop never
blocks on the disk.

*Group commit.*  An acknowledged accept must survive kill -9 and power loss,
so commits are durable (``synchronous=FULL``: the WAL is fsynced on every
commit).  An fsync costs milliseconds, which would cap a one-commit-per-accept
store at a few hundred accepts per second.  Instead the thread takes every job
waiting in its queue (up to ``max_batch``) and runs them all in ONE
``BEGIN IMMEDIATE … COMMIT``: one fsync for the whole batch.  Each job runs
inside its own ``SAVEPOINT``, so a job that fails rolls back only its own
writes and gets its own error.  Futures are resolved only after the COMMIT
returns, so nobody is told "done" before the data is on disk; if the COMMIT
fails, every job of the batch fails.  Under load batches grow by themselves
(jobs pile up while the previous fsync runs); when idle a batch is one job and
latency is one commit.

*Several processes* (a gateway and a worker, or the CLI) may share the file:
``BEGIN IMMEDIATE`` takes SQLite's single write lock up front, and
``busy_timeout`` makes the others wait for it instead of failing at once.
A batch made only of reads uses a plain (deferred) ``BEGIN``, which in WAL
mode never waits for a writer.

*Leases* live in the ``outbox`` table (see ``sql/sqlite/migrations``): a
claim sets ``lease_owner``/``lease_expires_at_ms`` under the write lock, so
two stores on the same file never lease one message twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, LiteralString, TypeVar, cast

from iwork_mc import metrics
from iwork_mc.apps import App
from iwork_mc.audit import AuditQuery, AuditRecord
from iwork_mc.breaker import ChannelOpening
from iwork_mc.messages import (
    AcceptOutcome,
    AcceptResult,
    Activity,
    Message,
    MessageQuery,
    MessageStatus,
    NewMessage,
    StatusEvent,
    TimelineEntry,
)
from iwork_mc.operators import LockOut, Operator
from iwork_mc.policies import AcceptChecks, OptOut, ReceiverFacts
from iwork_mc.ratelimits import Grant, Rate
from iwork_mc.retention import EndedSelection
from iwork_mc.segments import (
    FINAL_SEGMENT_STATES,
    AwaitingReceipt,
    ReceiptOutcome,
    Segment,
    SegmentState,
)
from iwork_mc.store import migrations, rows, sql
from iwork_mc.store.base import (
    AppExists,
    Audit,
    MessageNotFound,
    OperatorExists,
    QueueSnapshot,
    Store,
    StoreError,
    StoreUnavailable,
    TemplateExists,
)
from iwork_mc.store.outage import OutageLog
from iwork_mc.templates import Template

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")
_JobKind = Literal["read", "write", "raw"]


@dataclass(frozen=True, slots=True)
class _Queries:
    insert_app: LiteralString
    writable: LiteralString
    get_app: LiteralString
    list_apps: LiteralString
    set_app_enabled: LiteralString
    rotate_secret: LiteralString
    set_callback_url: LiteralString
    set_app_rate: LiteralString
    seed_bucket: LiteralString
    lock_bucket: LiteralString
    save_bucket: LiteralString
    insert_message: LiteralString
    insert_outbox: LiteralString
    insert_entries: LiteralString
    insert_timeline: LiteralString
    existing_fingerprint: LiteralString
    get_message: LiteralString
    get_message_by_id: LiteralString
    timeline: LiteralString
    count_by_status: LiteralString
    count_by_status_for_app: LiteralString
    count_by_status_and_channel: LiteralString
    due_queue: LiteralString
    find_messages: LiteralString
    find_messages_for_app: LiteralString
    receiver_facts: LiteralString
    count_to_receiver: LiteralString
    requeue_message: LiteralString
    note: LiteralString
    claim_candidates: LiteralString
    lease_outbox: LiteralString
    claim_message: LiteralString
    lease_held: LiteralString
    transition_message: LiteralString
    schedule_outbox: LiteralString
    release_outbox: LiteralString
    insert_status_event: LiteralString
    claim_status_event_candidates: LiteralString
    lease_status_event: LiteralString
    status_event_done: LiteralString
    status_event_failed: LiteralString
    insert_template: LiteralString
    update_template: LiteralString
    delete_template: LiteralString
    get_template: LiteralString
    list_templates: LiteralString
    add_opt_out: LiteralString
    remove_opt_out: LiteralString
    list_opt_outs: LiteralString
    is_opted_out: LiteralString
    insert_segments: LiteralString
    segments: LiteralString
    segment: LiteralString
    submit_segment: LiteralString
    refuse_segment: LiteralString
    release_carrier_id: LiteralString
    segment_by_carrier: LiteralString
    set_segment_state: LiteralString
    insert_unmatched_receipt: LiteralString
    kept_receipts: LiteralString
    drop_kept_receipt: LiteralString
    count_unmatched_receipts: LiteralString
    overdue_submissions: LiteralString
    redact_candidates: LiteralString
    redact_message: LiteralString
    delete_ended: LiteralString
    drop_unmatched_receipts: LiteralString
    count_ended: LiteralString
    insert_audit: LiteralString
    list_audit: LiteralString
    awaiting_receipts: LiteralString
    insert_operator: LiteralString
    get_operator: LiteralString
    list_operators: LiteralString
    sign_in_failed: LiteralString
    sign_in_succeeded: LiteralString
    activity: LiteralString
    open_channel: LiteralString
    close_channel: LiteralString
    open_channels: LiteralString


_Q = sql.load("sqlite", _Queries)


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    #: ``read``/``write`` jobs share a batch transaction; a ``raw`` job runs
    #: alone, outside any transaction (migrations manage their own).
    kind: _JobKind
    #: Resolved on its own loop (``future.get_loop()``) once the job is committed.
    future: asyncio.Future[Any]


class _Stop:
    """Queued by close(): everything queued before it is still done."""


_STOP = _Stop()
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class SQLiteStore:
    """The :class:`~iwork_mc.store.base.Store` on one SQLite file.

    Args:
        path: The database file; it and its directory are created if missing,
            the file with mode 0600 (it holds app secrets).
        busy_timeout_ms: How long to wait for another process's write lock
            before failing with :class:`StoreUnavailable`.
        max_batch: The most jobs one group commit carries.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 10_000, max_batch: int = 256
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.max_batch = max_batch
        #: Write transactions committed, and the jobs they carried (for tests and metrics).
        self.commits = 0
        self.committed_jobs = 0
        self._outage = OutageLog("sqlite")
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: concurrent.futures.Future[None] | None = None
        self._accepting = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            raise StoreError("the store is already open")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped = concurrent.futures.Future()
        # A daemon: a program that forgets close() still exits.  That loses only
        # jobs nobody was told are done; SQLite itself is crash-safe.
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(ready, self._stopped),
            name="iwork-mc-sqlite",
            daemon=True,
        )
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException as exc:
            self._thread.join()
            self._thread = None
            if isinstance(exc, sqlite3.Error | OSError):
                raise _store_error(exc) from exc
            raise
        self._accepting = True

    async def close(self) -> None:
        if self._thread is None or self._stopped is None:
            return
        self._accepting = False
        self._queue.put(_STOP)
        await asyncio.wrap_future(self._stopped)
        self._thread = None

    async def migrate(self) -> list[str]:
        return await self._submit("raw", migrations.migrate_sqlite)

    async def pending_migrations(self) -> list[str]:
        return await self._submit("raw", migrations.pending_sqlite)

    # -- apps ---------------------------------------------------------------

    async def insert_app(self, app: App, *, audit: Audit = None) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if _one(conn, _Q.insert_app, rows.params_of(app)) is None:
                raise AppExists(f"app_key {app.app_key} is taken")
            _audit(conn, audit)

        await self._submit("write", job)

    async def check_writable(self) -> None:
        await self._submit("read", _fetch_one(_Q.writable, {}))

    async def get_app(self, app_key: str) -> App | None:
        row = await self._submit("read", _fetch_one(_Q.get_app, {"app_key": app_key}))
        return None if row is None else rows.app_from_row(row)

    async def list_apps(self) -> list[App]:
        found = await self._submit("read", _fetch_all(_Q.list_apps, {}))
        return [rows.app_from_row(row) for row in found]

    async def set_app_enabled(
        self, app_key: str, enabled: bool, *, audit: Audit = None
    ) -> App | None:
        params = {"app_key": app_key, "enabled": enabled}
        row = await self._submit("write", _audited(_Q.set_app_enabled, params, audit))
        return None if row is None else rows.app_from_row(row)

    async def rotate_secret(
        self, app_key: str, new_secret: str, previous_valid_until_ms: int, *, audit: Audit = None
    ) -> App | None:
        params = {
            "app_key": app_key,
            "new_secret": new_secret,
            "previous_valid_until_ms": previous_valid_until_ms,
        }
        row = await self._submit("write", _audited(_Q.rotate_secret, params, audit))
        return None if row is None else rows.app_from_row(row)

    async def set_callback_url(
        self, app_key: str, url: str | None, *, audit: Audit = None
    ) -> App | None:
        params = {"app_key": app_key, "url": url}
        row = await self._submit("write", _audited(_Q.set_callback_url, params, audit))
        return None if row is None else rows.app_from_row(row)

    async def set_app_rate(
        self, app_key: str, rate_limit: float | None, rate_burst: int | None,
        *, audit: Audit = None,
    ) -> App | None:  # fmt: skip
        params = {"app_key": app_key, "rate_limit": rate_limit, "rate_burst": rate_burst}
        row = await self._submit("write", _audited(_Q.set_app_rate, params, audit))
        return None if row is None else rows.app_from_row(row)

    async def take_tokens(self, app_key: str, want: int, rate: Rate, now_ms: int) -> Grant:
        # One write job: BEGIN IMMEDIATE holds the file's write lock, so the
        # read and the update are atomic across processes.
        def job(conn: sqlite3.Connection) -> Grant:
            conn.execute(_Q.seed_bucket, rows.seed_bucket_params(app_key, rate, now_ms))
            found = _one(conn, _Q.lock_bucket, {"app_key": app_key})
            assert found is not None  # seeded just above
            grant = rows.lease(found, want, rate, now_ms)
            conn.execute(_Q.save_bucket, rows.bucket_params(app_key, grant))
            return grant

        return await self._submit("write", job)

    # -- templates ----------------------------------------------------------

    async def insert_template(self, template: Template, *, audit: Audit = None) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if _one(conn, _Q.insert_template, rows.params_of(template)) is None:
                raise TemplateExists(_template_taken(template))
            _audit(conn, audit)

        await self._submit("write", job)

    async def update_template(self, template: Template, *, audit: Audit = None) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            try:
                updated = _one(conn, _Q.update_template, rows.params_of(template))
            except sqlite3.IntegrityError as exc:
                raise TemplateExists(_template_taken(template)) from exc
            if updated is not None:
                _audit(conn, audit)
            return updated is not None

        return await self._submit("write", job)

    async def delete_template(self, name: str, *, audit: Audit = None) -> bool:
        row = await self._submit("write", _audited(_Q.delete_template, {"name": name}, audit))
        return row is not None

    async def get_template(self, name: str) -> Template | None:
        row = await self._submit("read", _fetch_one(_Q.get_template, {"name": name}))
        return None if row is None else rows.template_from_row(row)

    async def list_templates(self) -> list[Template]:
        found = await self._submit("read", _fetch_all(_Q.list_templates, {}))
        return [rows.template_from_row(row) for row in found]

    # -- opt-outs -----------------------------------------------------------

    async def add_opt_out(self, opt_out: OptOut, *, audit: Audit = None) -> bool:
        params = rows.params_of(opt_out)
        return await self._submit("write", _audited(_Q.add_opt_out, params, audit)) is not None

    async def remove_opt_out(self, app_key: str, receiver: str, *, audit: Audit = None) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._submit("write", _audited(_Q.remove_opt_out, params, audit)) is not None

    async def list_opt_outs(self, app_key: str | None = None) -> list[OptOut]:
        found = await self._submit("read", _fetch_all(_Q.list_opt_outs, {"app_key": app_key}))
        return [rows.opt_out_from_row(row) for row in found]

    async def is_opted_out(self, app_key: str, receiver: str) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._submit("read", _fetch_one(_Q.is_opted_out, params)) is not None

    # -- operators ----------------------------------------------------------

    async def insert_operator(self, operator: Operator) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if _one(conn, _Q.insert_operator, rows.params_of(operator)) is None:
                raise OperatorExists(f"an operator named {operator.name} exists")

        await self._submit("write", job)

    async def get_operator(self, name: str) -> Operator | None:
        row = await self._submit("read", _fetch_one(_Q.get_operator, {"name": name}))
        return None if row is None else rows.operator_from_row(row)

    async def list_operators(self) -> list[Operator]:
        found = await self._submit("read", _fetch_all(_Q.list_operators, {}))
        return [rows.operator_from_row(row) for row in found]

    async def sign_in_failed(self, name: str, *, now_ms: int, lock_out: LockOut) -> None:
        params = rows.lock_out_params(name, now_ms, lock_out)
        await self._submit("write", _fetch_one(_Q.sign_in_failed, params))

    async def sign_in_succeeded(self, name: str, *, now_ms: int) -> None:
        params = {"name": name, "now_ms": now_ms}
        await self._submit("write", lambda conn: conn.execute(_Q.sign_in_succeeded, params))

    # -- accepting ----------------------------------------------------------

    async def accept(self, message: NewMessage, checks: AcceptChecks | None = None) -> AcceptResult:
        params = rows.accept_params(message, checks)

        def job(conn: sqlite3.Connection) -> AcceptResult:
            # The batch holds the write lock: nothing changes between these statements,
            # so two accepts can neither both store one msg_key nor both pass a cap.
            if checks is not None and checks.counts_anything:
                # A repeat stays DUPLICATE (or CONFLICT), never REJECTED by a full cap.
                existing = _one(conn, _Q.existing_fingerprint, params)
                if existing is not None:
                    return rows.repeat(message, existing)
                rejection = checks.decide(_receiver_facts(conn, message, checks))
                if rejection is not None:
                    return rows.rejected(rejection)
            inserted = _one(conn, _Q.insert_message, params)
            if inserted is None:
                existing = _one(conn, _Q.existing_fingerprint, params)
                return rows.not_inserted(message, checks, existing)
            stored = {**params, "message_id": inserted["id"]}
            conn.execute(_Q.insert_outbox, stored)
            conn.execute(_Q.insert_entries, stored)
            _emit(conn, stored)
            return AcceptResult(outcome=AcceptOutcome.ACCEPTED, message_id=inserted["id"])

        return await self._submit("write", job)

    # -- reading ------------------------------------------------------------

    async def get_message(self, app_key: str, msg_key: str) -> Message | None:
        params = {"app_key": app_key, "msg_key": msg_key}
        row = await self._submit("read", _fetch_one(_Q.get_message, params))
        return None if row is None else rows.message_from_row(row)

    async def get_message_by_id(self, message_id: int) -> Message | None:
        params = {"message_id": message_id}
        row = await self._submit("read", _fetch_one(_Q.get_message_by_id, params))
        return None if row is None else rows.message_from_row(row)

    async def timeline(self, message_id: int) -> list[TimelineEntry]:
        found = await self._submit("read", _fetch_all(_Q.timeline, {"message_id": message_id}))
        return [rows.timeline_entry_from_row(row) for row in found]

    async def count_by_status(
        self,
        app_key: str | None = None,
        *,
        accepted_from_ms: int | None = None,
        accepted_until_ms: int | None = None,
    ) -> dict[MessageStatus, int]:
        params = rows.count_params(app_key, accepted_from_ms, accepted_until_ms)
        query = _Q.count_by_status if app_key is None else _Q.count_by_status_for_app
        found = await self._submit("read", _fetch_all(query, params))
        counts = dict.fromkeys(MessageStatus, 0)
        counts.update({MessageStatus(row["status"]): row["n"] for row in found})
        return counts

    async def activity(self, *, since_ms: int, bucket_ms: int) -> list[Activity]:
        params = {"since_ms": since_ms, "bucket_ms": bucket_ms}
        found = await self._submit("read", _fetch_all(_Q.activity, params))
        return rows.activity_from_rows(found, since_ms=since_ms, bucket_ms=bucket_ms)

    async def queue_snapshot(self, now_ms: int) -> QueueSnapshot:
        def job(conn: sqlite3.Connection) -> QueueSnapshot:
            counts = conn.execute(_Q.count_by_status_and_channel).fetchall()
            due = _one(conn, _Q.due_queue, {"now_ms": now_ms})
            return rows.queue_snapshot(counts, due)

        return await self._submit("read", job)

    async def find_messages(self, query: MessageQuery) -> list[Message]:
        params = rows.find_params(query)
        if params["statuses"] is not None:
            params["statuses"] = json.dumps(params["statuses"])
        sql_text = _Q.find_messages if query.app_key is None else _Q.find_messages_for_app
        found = await self._submit("read", _fetch_all(sql_text, params))
        return [rows.message_from_row(row) for row in found]

    async def requeue(
        self, message_id: int, *, now_ms: int, expires_at_ms: int, by: str, audit: Audit = None
    ) -> bool:
        params = rows.requeue_params(message_id, now_ms=now_ms, expires_at_ms=expires_at_ms)
        params["sources"] = json.dumps(params["sources"])

        def job(conn: sqlite3.Connection) -> bool:
            # Read first: RETURNING would show the new status and error, not the old.
            previous = _one(conn, _Q.get_message_by_id, params)
            if previous is None or _one(conn, _Q.requeue_message, params) is None:
                return False
            conn.execute(_Q.schedule_outbox, params)
            entry = {**params, "detail": rows.detail_json(rows.requeue_detail(by, previous))}
            conn.execute(_Q.insert_timeline, entry)
            _emit(conn, entry)
            _audit(conn, audit)
            return True

        return await self._submit("write", job)

    # -- retention ----------------------------------------------------------

    async def redact_ended(self, *, ended_before_ms: int, now_ms: int, limit: int, by: str) -> int:
        params = rows.redact_candidates_params(ended_before_ms=ended_before_ms, limit=limit)
        params["final"] = json.dumps(params["final"])

        def job(conn: sqlite3.Connection) -> int:
            redacted = 0
            for candidate in conn.execute(_Q.redact_candidates, params).fetchall():
                change = rows.redact_params(candidate, now_ms=now_ms, by=by)
                if _one(conn, _Q.redact_message, change) is not None:
                    conn.execute(_Q.note, change)  # the ``redacted`` timeline entry
                    redacted += 1
            return redacted

        return await self._submit("write", job)

    async def delete_ended(
        self, selection: EndedSelection, *, limit: int, audit: Audit = None
    ) -> int:
        params = _ended_params(selection, limit)

        def job(conn: sqlite3.Connection) -> int:
            deleted = len(conn.execute(_Q.delete_ended, params).fetchall())
            if deleted:
                _audit(conn, audit, deleted=deleted)
            return deleted

        return await self._submit("write", job)

    async def drop_unmatched_receipts(self, *, received_before_ms: int, limit: int) -> int:
        params = {"received_before_ms": received_before_ms, "limit": limit}
        return len(await self._submit("write", _fetch_all(_Q.drop_unmatched_receipts, params)))

    async def count_ended(self, selection: EndedSelection) -> tuple[int, int]:
        row = await self._submit("read", _fetch_one(_Q.count_ended, _ended_params(selection)))
        return (0, 0) if row is None else (int(row["ended"]), int(row["in_flight"]))

    # -- the audit trail ----------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        await self._submit("write", lambda conn: _audit(conn, record))

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        params = rows.audit_query_params(query)
        found = await self._submit("read", _fetch_all(_Q.list_audit, params))
        return [rows.audit_from_row(row) for row in found]

    # -- delivering ---------------------------------------------------------

    async def note(
        self, message_id: int, *, now_ms: int, kind: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        await self._submit(
            "write", lambda conn: _note(conn, message_id, now_ms=now_ms, kind=kind, detail=detail)
        )

    async def claim_due(
        self, *, worker_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> list[Message]:
        def job(conn: sqlite3.Connection) -> list[Message]:
            due = conn.execute(_Q.claim_candidates, {"now_ms": now_ms, "limit": limit}).fetchall()
            claimed: list[Message] = []
            for candidate in due:
                params: dict[str, Any] = {
                    "message_id": candidate["message_id"],
                    "worker_id": worker_id,
                    "now_ms": now_ms,
                    "lease_expires_at_ms": now_ms + lease_ms,
                }
                conn.execute(_Q.lease_outbox, params)
                row = _one(conn, _Q.claim_message, params)
                if row is None:
                    raise StoreError(f"outbox row {candidate['message_id']} has no message")
                detail: dict[str, Any] = {"worker_id": worker_id, "attempt": row["attempts"]}
                if candidate["lease_owner"] is not None:
                    # Claimable while leased means the lease ran out: its worker died or hung.
                    detail["reclaimed_from"] = candidate["lease_owner"]
                entry = {
                    **params,
                    "kind": "claimed",
                    "status": MessageStatus.SENDING.value,
                    "detail": rows.detail_json(detail),
                }
                conn.execute(_Q.insert_timeline, entry)
                claimed.append(rows.message_from_row(row))
            return claimed

        return await self._submit("write", job)

    async def transition(
        self,
        message_id: int,
        *,
        to: MessageStatus,
        now_ms: int,
        kind: str,
        detail: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        due_at_ms: int | None = None,
        channel: str | None = None,
        channel_ref: str | None = None,
        error: str | None = None,
        route_step: int | None = None,
        attempt_not_made: bool = False,
    ) -> bool:
        params = rows.transition_params(
            message_id,
            to=to,
            now_ms=now_ms,
            kind=kind,
            detail=detail,
            worker_id=worker_id,
            due_at_ms=due_at_ms,
            channel=channel,
            channel_ref=channel_ref,
            error=error,
            route_step=route_step,
            attempt_not_made=attempt_not_made,
        )
        return await self._submit("write", lambda conn: _transition(conn, params))

    # -- segments and receipts ----------------------------------------------

    async def add_segments(
        self,
        message_id: int,
        *,
        attempt: int,
        channel: str,
        total: int,
        now_ms: int,
        parts: Sequence[int] | None = None,
    ) -> None:
        params = {
            **rows.parts_param(total, parts, as_json=True),
            "message_id": message_id,
            "attempt": attempt,
            "channel": channel,
            "total": total,
            "now_ms": now_ms,
        }

        def job(conn: sqlite3.Connection) -> None:
            if _one(conn, _Q.get_message_by_id, params) is None:
                raise MessageNotFound(f"no message {message_id}")
            conn.execute(_Q.insert_segments, params)

        await self._submit("write", job)

    async def segment_submitted(
        self, message_id: int, *, attempt: int, part: int, carrier_id: str, now_ms: int
    ) -> ReceiptOutcome | None:
        key = {"message_id": message_id, "attempt": attempt, "part": part}

        def job(conn: sqlite3.Connection) -> ReceiptOutcome | None:
            params = {**key, "carrier_id": carrier_id, "now_ms": now_ms}
            current = _segment(conn, key)  # Raises if there is no such segment.
            message = _one(conn, _Q.get_message_by_id, key)
            conn.execute(_Q.release_carrier_id, {**params, "channel": current.channel})
            row = _one(conn, _Q.submit_segment, params)
            if row is None or message is None:
                return None  # Named already: a repeat changes nothing.
            segment = rows.segment_from_row(row)
            taken = {"channel": segment.channel, "carrier_id": carrier_id}
            kept = map(rows.kept_receipt_from_row, conn.execute(_Q.kept_receipts, taken))
            # Receipts of another message with the same id (before an SMSC restart) stay kept.
            fitting = rows.fitting_receipts(list(kept), current, message["mobile_receiver"])
            outcome = None
            for receipt in fitting:
                conn.execute(_Q.drop_kept_receipt, {"id": receipt.id})
                outcome = _apply_receipt(
                    conn,
                    segment,
                    state=receipt.state,
                    error=receipt.error,
                    now_ms=now_ms,
                    detail={**receipt.detail, "received_at_ms": receipt.received_at_ms},
                )
                # The next kept receipt meets the segment as this one left it.
                segment = _segment(conn, key)
            return outcome

        return await self._submit("write", job)

    async def segment_refused(
        self, message_id: int, *, attempt: int, part: int, error: str, now_ms: int
    ) -> None:
        params = {"message_id": message_id, "attempt": attempt, "part": part,
                  "error": error, "now_ms": now_ms}  # fmt: skip

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(_Q.refuse_segment, params)

        await self._submit("write", job)

    async def segments(self, message_id: int) -> list[Segment]:
        found = await self._submit("read", _fetch_all(_Q.segments, {"message_id": message_id}))
        return [rows.segment_from_row(row) for row in found]

    async def apply_receipt(
        self,
        *,
        channel: str,
        carrier_id: str,
        state: SegmentState,
        error: str | None,
        now_ms: int,
        detail: Mapping[str, Any] | None = None,
        destination: str = "",
    ) -> ReceiptOutcome:
        params = rows.unmatched_receipt_params(
            channel=channel,
            carrier_id=carrier_id,
            state=state,
            error=error,
            now_ms=now_ms,
            detail=detail,
            destination=destination,
        )

        def job(conn: sqlite3.Connection) -> ReceiptOutcome:
            # The batch holds the write lock: matching and keeping cannot race a submit.
            row = _one(conn, _Q.segment_by_carrier, params)
            if row is None or not rows.receipt_fits_segment(row, destination):
                conn.execute(_Q.insert_unmatched_receipt, params)
                return ReceiptOutcome(matched=False)
            segment = rows.segment_from_row(row)
            return _apply_receipt(
                conn, segment, state=state, error=error, now_ms=now_ms, detail=detail
            )

        return await self._submit("write", job)

    async def settle(self, message_id: int, *, now_ms: int) -> MessageStatus | None:
        return await self._submit("write", lambda conn: _conclude(conn, message_id, now_ms))

    async def unmatched_receipts(self, channel: str) -> int:
        params = {"channel": channel}
        row = await self._submit("read", _fetch_one(_Q.count_unmatched_receipts, params))
        return 0 if row is None else int(row["n"])

    async def awaiting_receipts(
        self, channel: str, *, after: tuple[int, int, int], limit: int
    ) -> list[AwaitingReceipt]:
        after_ms, after_id, after_attempt = after
        params = {
            "channel": channel,
            "after_ms": after_ms,
            "after_id": after_id,
            "after_attempt": after_attempt,
            "limit": limit,
        }
        found = await self._submit("read", _fetch_all(_Q.awaiting_receipts, params))
        return [
            AwaitingReceipt(
                message_id=int(row["message_id"]),
                attempt=int(row["attempt"]),
                carrier_id=str(row["carrier_id"]),
                receiver=str(row["mobile_receiver"]),
                updated_at_ms=int(row["updated_at_ms"]),
            )
            for row in found
        ]

    async def overdue_submissions(self, *, before_ms: int, limit: int) -> list[int]:
        params = {"before_ms": before_ms, "limit": limit}
        found = await self._submit("read", _fetch_all(_Q.overdue_submissions, params))
        return [int(row["id"]) for row in found]

    # -- status callbacks ------------------------------------------------------

    async def claim_status_events(
        self, *, worker_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> list[StatusEvent]:
        params = {
            "worker_id": worker_id,
            "now_ms": now_ms,
            "lease_expires_at_ms": now_ms + lease_ms,
            "limit": limit,
        }

        def job(conn: sqlite3.Connection) -> list[StatusEvent]:
            # Under the write lock: two stores on one file never lease one event twice.
            due = conn.execute(_Q.claim_status_event_candidates, params).fetchall()
            claimed = []
            for candidate in due:
                row = _one(conn, _Q.lease_status_event, {**params, "event_id": candidate["id"]})
                if row is None:
                    raise StoreError(f"status event {candidate['id']} vanished")
                claimed.append(rows.status_event_from_row(row))
            return claimed

        return await self._submit("write", job)

    async def status_event_done(
        self, event_id: int, *, now_ms: int, worker_id: str, status_code: int
    ) -> None:
        params = {"event_id": event_id, "now_ms": now_ms, "worker_id": worker_id}

        def job(conn: sqlite3.Connection) -> None:
            row = _one(conn, _Q.status_event_done, params)
            if row is None:
                return  # Another sender holds it now, or it is settled already.
            detail = rows.callback_detail(row, status_code=status_code)
            _note(conn, row["message_id"], now_ms=now_ms, kind="callback_delivered", detail=detail)

        await self._submit("write", job)

    async def open_channel(self, opening: ChannelOpening) -> None:
        await self._submit("write", _fetch_one(_Q.open_channel, rows.params_of(opening)))

    async def close_channel(self, channel: str, *, closed_at_ms: int) -> None:
        params = {"channel": channel, "closed_at_ms": closed_at_ms}
        await self._submit("write", _fetch_one(_Q.close_channel, params))

    async def open_channels(self, *, now_ms: int) -> list[ChannelOpening]:
        found = await self._submit("read", _fetch_all(_Q.open_channels, {"now_ms": now_ms}))
        return [rows.opening_from_row(row) for row in found]

    async def status_event_failed(
        self,
        event_id: int,
        *,
        now_ms: int,
        worker_id: str,
        error: str,
        retry_at_ms: int | None,
    ) -> None:
        params = {
            "event_id": event_id,
            "now_ms": now_ms,
            "worker_id": worker_id,
            "error": error,
            "retry_at_ms": retry_at_ms,
        }

        def job(conn: sqlite3.Connection) -> None:
            row = _one(conn, _Q.status_event_failed, params)
            if row is None:
                return  # Another sender holds it now, or it is settled already.
            detail = rows.callback_detail(row, error=error, retry_at_ms=retry_at_ms)
            _note(conn, row["message_id"], now_ms=now_ms, kind="callback_failed", detail=detail)

        await self._submit("write", job)

    # -- the database thread -------------------------------------------------

    async def _submit(self, kind: _JobKind, run: Callable[[sqlite3.Connection], _T]) -> _T:
        if not self._accepting:
            raise StoreError("the store is not open")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Job(run, kind, future))
        try:
            result = await future
        except sqlite3.Error as exc:
            error = _store_error(exc)
            if isinstance(error, StoreUnavailable):
                self._outage.failed(error)
            raise error from exc
        if kind == "write":
            # Readers go on while another process holds the write lock: only a
            # write that went through ends an outage.
            self._outage.succeeded()
        return result

    def _thread_main(
        self, ready: concurrent.futures.Future[None], stopped: concurrent.futures.Future[None]
    ) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.set_exception(exc)
            stopped.set_result(None)
            return
        ready.set_result(None)
        try:
            self._serve(conn)
        finally:
            self._accepting = False
            conn.close()
            # Nothing can be queued after _STOP, but never leave a caller hanging.
            self._fail_leftovers(StoreError("the store was closed"))
            stopped.set_result(None)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file 0600 before SQLite opens it; the -wal and -shm files
        # SQLite creates later copy the database file's permissions.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path,
            # Sets SQLite's busy_timeout: wait for another process's write lock.
            timeout=self.busy_timeout_ms / 1000,
            # Autocommit at the driver level: this module writes BEGIN/COMMIT itself.
            isolation_level=None,
        )
        try:
            conn.row_factory = _dict_row
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
            if mode != "wal":
                raise StoreError(f"{self.path} cannot use WAL (journal_mode is {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _serve(self, conn: sqlite3.Connection) -> None:
        held: _Job | _Stop | None = None
        while True:
            item = held if held is not None else self._queue.get()
            held = None
            if isinstance(item, _Stop):
                return
            if item.kind == "raw":
                self._settle(self._run_raw(conn, item))
                continue
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, _Stop) or more.kind == "raw":
                    held = more
                    break
                batch.append(more)
            self._settle(self._run_batch(conn, batch))

    def _run_raw(self, conn: sqlite3.Connection, job: _Job) -> list[_Outcome]:
        try:
            return [(job.future, job.run(conn), None)]
        except Exception as exc:
            return [(job.future, None, exc)]

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        writes = any(job.kind == "write" for job in batch)
        outcomes: list[_Outcome] = []
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.run(conn)
                except Exception as exc:
                    outcomes.append((job.future, None, exc))
                    # Undo this job only; if the error ended the whole transaction
                    # this fails too and the batch fails below.
                    conn.execute("ROLLBACK TO job")
                else:
                    outcomes.append((job.future, result, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                # If even this fails the connection is broken, and exc says why.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            # Nothing of this batch is committed: a job's own error still explains
            # it best, every other job gets the batch's error.
            own = {id(future): error for future, _, error in outcomes if error is not None}
            return [(job.future, None, own.get(id(job.future), exc)) for job in batch]
        if writes:
            self.commits += 1
            self.committed_jobs += len(batch)
            metrics.GROUP_COMMIT_JOBS.labels("sqlite").observe(len(batch))
            metrics.GROUP_COMMIT_SECONDS.labels("sqlite").observe(time.perf_counter() - started)
        return outcomes

    def _settle(self, outcomes: list[_Outcome]) -> None:
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[_Outcome]] = defaultdict(list)
        for outcome in outcomes:
            by_loop[outcome[0].get_loop()].append(outcome)
        for loop, settled in by_loop.items():
            # RuntimeError: that loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, settled)

    def _fail_leftovers(self, error: StoreError) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job):
                self._settle([(item.future, None, error)])


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue  # The caller was cancelled; the write itself stands.
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
    if isinstance(exc, OSError) or (
        isinstance(exc, sqlite3.OperationalError)
        and ("locked" in text or "busy" in text or "unable to open" in text)
    ):
        return StoreUnavailable(f"SQLite database unavailable: {exc}")
    return StoreError(f"SQLite error: {exc}")


def _transition(conn: sqlite3.Connection, params: Mapping[str, Any]) -> bool:
    """The guarded status change of :meth:`SQLiteStore.transition`, inside a job."""
    params = {**params, "sources": json.dumps(params["sources"])}
    # The batch holds the write lock: nothing can change between these statements.
    if params["worker_id"] is not None and _one(conn, _Q.lease_held, params) is None:
        return False
    if _one(conn, _Q.transition_message, params) is None:
        return False
    if params["status"] == MessageStatus.QUEUED:
        conn.execute(_Q.schedule_outbox, params)
    elif params["status"] != MessageStatus.SENDING:
        conn.execute(_Q.release_outbox, params)
    conn.execute(_Q.insert_timeline, params)
    if rows.emits_status_event(params["status"]):
        _emit(conn, params)
    if params["status"] == MessageStatus.SUBMITTED:
        # Receipts that arrived while the message was still "sending" decide it now,
        # in this transaction: a crash cannot leave it waiting for receipts it has.
        _conclude(conn, params["message_id"], params["now_ms"])
    return True


def _audit(conn: sqlite3.Connection, record: Audit, **extra_detail: Any) -> None:
    """Write the audit record of the change this job just made (nothing for ``None``)."""
    if record is not None:
        conn.execute(_Q.insert_audit, rows.audit_params(record, **extra_detail))


def _audited(
    query: str, params: Mapping[str, Any], audit: Audit
) -> Callable[[sqlite3.Connection], rows.Row | None]:
    """Run a one-row change; if it changed a row, write ``audit`` in the same transaction."""

    def job(conn: sqlite3.Connection) -> rows.Row | None:
        row = _one(conn, query, params)
        if row is not None:
            _audit(conn, audit)
        return row

    return job


def _ended_params(selection: EndedSelection, limit: int | None = None) -> dict[str, Any]:
    params = rows.ended_params(selection, limit=limit)
    return {**params, "final": json.dumps(params["final"])}


def _emit(conn: sqlite3.Connection, params: Mapping[str, Any]) -> None:
    """Queue a status event for the message's app, if it has a callback URL.

    ``params``: message_id, status, now_ms and the timeline entry's detail (JSON).
    """
    conn.execute(_Q.insert_status_event, params)


def _receiver_facts(
    conn: sqlite3.Connection, message: NewMessage, checks: AcceptChecks
) -> ReceiverFacts:
    """What the receiver policies ask about the message's receiver (under the write lock)."""
    found = _one(conn, _Q.receiver_facts, rows.receiver_facts_params(message, checks))
    if found is None:
        raise StoreError("the receiver facts query returned nothing")
    counts = []
    for query in checks.count_queries:
        counted = _one(conn, _Q.count_to_receiver, rows.count_query_params(message, query))
        counts.append(0 if counted is None else int(counted["n"]))
    return rows.receiver_facts(found, counts)


def _template_taken(template: Template) -> str:
    key = (template.app_key, template.source, template.action, template.event_type)
    return f"template {template.name!r} or one selected by {key} exists"


def _apply_receipt(
    conn: sqlite3.Connection,
    segment: Segment,
    *,
    state: SegmentState,
    error: str | None,
    now_ms: int,
    detail: Mapping[str, Any] | None,
) -> ReceiptOutcome:
    """Record a receipt for a known segment, then aggregate (see Store.apply_receipt)."""
    message_id = segment.message_id
    if segment.state in FINAL_SEGMENT_STATES:
        entry = rows.duplicate_receipt_detail(segment, state=state, detail=detail)
        _note(conn, message_id, now_ms=now_ms, kind="duplicate_receipt", detail=entry)
        return ReceiptOutcome(matched=True, duplicate=True, message_id=message_id)
    changed = {
        **rows.segment_key(segment),
        "state": rows.recorded_state(state).value,
        "error": error,
        "now_ms": now_ms,
    }
    conn.execute(_Q.set_segment_state, changed)
    entry = rows.receipt_detail(segment, state=state, error=error, detail=detail)
    _note(conn, message_id, now_ms=now_ms, kind="receipt", detail=entry)
    status = _conclude(conn, message_id, now_ms)
    return ReceiptOutcome(
        matched=True, message_id=message_id, message_status=status, since_ms=segment.updated_at_ms
    )


def _segment(conn: sqlite3.Connection, key: Mapping[str, Any]) -> Segment:
    row = _one(conn, _Q.segment, key)
    if row is None:
        raise StoreError(
            f"message {key['message_id']} has no segment {key['part']} in attempt {key['attempt']}"
        )
    return rows.segment_from_row(row)


def _conclude(conn: sqlite3.Connection, message_id: int, now_ms: int) -> MessageStatus | None:
    """Move a submitted message to what its parts add up to (every copy counts), if final."""
    key = {"message_id": message_id}
    message = _one(conn, _Q.get_message_by_id, key)
    if message is None or message["status"] != MessageStatus.SUBMITTED:
        return None  # Still sending (settle comes later), or final: never downgraded.
    copies = conn.execute(_Q.segments, key).fetchall()
    concluded = rows.conclusion([rows.segment_from_row(row) for row in copies])
    if concluded is None:
        return None
    params = rows.transition_params(
        message_id,
        to=concluded.status,
        now_ms=now_ms,
        kind=concluded.status.value,
        detail=concluded.detail,
        error=concluded.error,
    )
    return concluded.status if _transition(conn, params) else None


def _note(
    conn: sqlite3.Connection,
    message_id: int,
    *,
    now_ms: int,
    kind: str,
    detail: Mapping[str, Any] | None,
) -> None:
    """Append a timeline entry carrying the message's current status."""
    params = {
        "message_id": message_id,
        "now_ms": now_ms,
        "kind": kind,
        "detail": rows.detail_json(detail),
    }
    if _one(conn, _Q.note, params) is None:
        raise MessageNotFound(f"no message {message_id}")


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _one(conn: sqlite3.Connection, query: str, params: Mapping[str, Any]) -> rows.Row | None:
    # fetchall: a RETURNING statement is finished only once all its rows are read.
    found = conn.execute(query, params).fetchall()
    return cast(rows.Row, found[0]) if found else None


def _fetch_one(
    query: str, params: Mapping[str, Any]
) -> Callable[[sqlite3.Connection], rows.Row | None]:
    return lambda conn: _one(conn, query, params)


def _fetch_all(
    query: str, params: Mapping[str, Any]
) -> Callable[[sqlite3.Connection], list[rows.Row]]:
    return lambda conn: cast(list[rows.Row], conn.execute(query, params).fetchall())


if TYPE_CHECKING:
    # mypy proves the class implements the Protocol.
    _conforms: type[Store] = SQLiteStore
