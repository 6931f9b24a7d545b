"""PostgresStore: many gateway and worker processes on many hosts, one database.

Theory of operation
-------------------

psycopg 3 in async mode, through a :class:`psycopg_pool.AsyncConnectionPool`
opened explicitly by :meth:`PostgresStore.open`.  Pooled
connections are in autocommit mode and every write is ONE statement: the
queries in ``sql/postgres/queries.sql`` chain their steps with data-modifying
CTEs, so an accept (message + outbox row + timeline entry) is one atomic round
trip, and PostgreSQL's own group commit takes care of concurrent fsyncs.
Recording segments and receipts is the exception: its steps depend on what the
previous ones found, so those methods run explicit transactions (see there).
So do an accept with receiver policies (below) and a status event's outcome
(the event row, then a note on the message's timeline).

*Receiver policies.*  ``accept(message, checks)`` takes a transaction-scoped
advisory lock on the receiver before it counts the receiver's messages, so two
gateways accepting for one receiver are serialised and cannot both pass a cap;
it then checks the msg_key again (a repeat stays DUPLICATE, never REJECTED).

*Status events* are written by the same statement as the status change they
report (accept, transition, requeue), and leased with ``SKIP LOCKED`` like the
outbox.

*Idempotent accept.*  ``INSERT … ON CONFLICT (app_key, msg_key) DO NOTHING``:
when two sessions insert the same key at once, the unique index makes the
second wait for the first to commit and then insert nothing; it then reads
the winner's fingerprint (read committed sees it) to answer DUPLICATE or
CONFLICT.

*Leases.*  ``claim_due`` picks due outbox rows with ``FOR UPDATE SKIP LOCKED``:
a row another worker is claiming is skipped, not waited for, so workers never
lease the same message and never queue behind each other.  ``transition``
locks the message's outbox row before its ``messages`` row, the same order
as a claim, so a late worker's transition and a reclaim by another worker
serialise (the loser sees the new ``lease_owner`` and is refused) and cannot
deadlock.

*Outages.*  Every call is bounded by ``timeout`` (``store_timeout_s``): the wait
for a connection, its check and the statements together.  Past it the call
fails with :class:`StoreUnavailable` (the gateway answers 15
``isp.store-unavailable``, which clients retry).  Three habits of the pool
would stretch an outage far beyond that, so none is used: a failed reconnect
is not retried with backoff (1, 2, 4, 8 s…) but left to the next call that
needs a connection; a call waiting for one asks the pool to connect again
every ``_CONNECT_AGAIN_S``, so the first call after the server's return gets a
fresh connection at once; and a connection found dead (or read-only, after a
switchover) drains the whole pool at once, since its siblings died with it,
instead of each being tried in turn.  A server that stops answering (frozen,
or cut off by the network) is not waited for either: at the deadline the
connection's socket is shut down, so the statement fails at once, where
cancelling it would first wait up to 10 s for psycopg's cancel request.  New
connections resolve the DSN again, so a multi-host DSN
(``postgresql://h1,h2/db?target_session_attrs=read-write``) finds the new
primary after a failover.

Nothing names a schema: the DSN's ``options=-csearch_path=…`` decides where
the tables are, which is how the tests give every test its own schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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

__all__ = ["PostgresStore"]

#: What a server says when it answers but rejects the login: nothing to wait for.
_LOGIN_REFUSALS = (
    "password authentication failed",
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
)


def _login_refusal(error: str) -> str | None:
    """The server's reason (``role "x" does not exist``) if ``error`` is a refused login."""
    _, fatal, reason = error.partition("FATAL:")
    reason = reason.strip().splitlines()[0].strip() if fatal and reason.strip() else ""
    return reason if any(words in reason for words in _LOGIN_REFUSALS) else None


_Connection = psycopg.AsyncConnection[DictRow]

#: A call waiting for a connection asks the pool to connect again this often.
_CONNECT_AGAIN_S = 0.25
#: How long open() waits for the first connection, at least.
_OPEN_TIMEOUT_S = 10.0


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
    accept: LiteralString
    receiver_lock: LiteralString
    receiver_facts: LiteralString
    count_to_receiver: LiteralString
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
    requeue: LiteralString
    note: LiteralString
    claim_due: LiteralString
    transition: LiteralString
    claim_status_events: LiteralString
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
    add_segments: LiteralString
    segments: LiteralString
    segment: LiteralString
    receipt_lock: LiteralString
    lock_message: LiteralString
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


_Q = sql.load("postgres", _Queries)


class PostgresStore:
    """The :class:`~iwork_mc.store.base.Store` on a PostgreSQL database.

    Args:
        dsn: A libpq connection string or ``postgresql://`` URL; its
            ``search_path`` chooses the schema.
        min_size: Connections the pool keeps open.
        max_size: The most connections the pool opens.
        timeout: Seconds one call may take, from waiting for a connection to
            its last statement, before failing with :class:`StoreUnavailable`.
        connect_timeout: Seconds libpq waits for the server to answer a connect.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 2.0,
        connect_timeout: int = 5,
    ) -> None:
        try:
            # Fail now on a malformed DSN, not after a pool timeout at open().
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"invalid PostgreSQL DSN: {exc}") from exc
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[_Connection] | None = None
        self._outage = OutageLog("postgres")

    def __repr__(self) -> str:
        # The DSN may hold a password: never print it.
        return f"PostgresStore(min_size={self.min_size}, max_size={self.max_size})"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("the store is already open")
        await self._check_login()
        # Built here, not in __init__: a closed pool cannot be reopened, and a
        # failed open() must leave the store ready for another try.
        pool = AsyncConnectionPool(
            self.dsn,
            connection_class=_Connection,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": self.connect_timeout,
            },
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.timeout,
            # No backoff: a failed connect is tried once more, then left to the
            # next call that needs a connection (see _checkout).
            reconnect_timeout=0.0,
            name="iwork-mc",
            open=False,
        )
        await pool.open()
        loop = asyncio.get_running_loop()
        try:
            conn = await _checkout(pool, loop.time() + max(self.timeout, _OPEN_TIMEOUT_S))
        except (StoreUnavailable, psycopg.Error) as exc:
            await pool.close()
            raise StoreUnavailable(f"PostgreSQL unreachable: {exc}") from exc
        await pool.putconn(conn)
        self._pool = pool

    async def _check_login(self) -> None:
        """Refuse at once a login the server rejects (role, password, database).

        The pool would retry such a login until its timeout and then call the
        server "unreachable"; only a server that does not answer is worth waiting for.
        """
        try:
            probe = await psycopg.AsyncConnection.connect(
                self.dsn, connect_timeout=self.connect_timeout
            )
        except psycopg.OperationalError as exc:
            refusal = _login_refusal(str(exc))
            if refusal is not None:
                raise StoreError(f"PostgreSQL refused the login: {refusal}") from exc
            return  # not answering (yet): the pool waits for it
        await probe.close()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def migrate(self) -> list[str]:
        async with self._connection() as conn:
            return await migrations.migrate_postgres(conn)

    async def pending_migrations(self) -> list[str]:
        async with self._connection() as conn:
            return await migrations.pending_postgres(conn)

    # -- apps ---------------------------------------------------------------

    async def insert_app(self, app: App, *, audit: Audit = None) -> None:
        if await self._audited(_Q.insert_app, rows.params_of(app), audit) is None:
            raise AppExists(f"app_key {app.app_key} is taken")

    async def check_writable(self) -> None:
        async with self._connection() as conn:
            row = await (await conn.execute(_Q.writable)).fetchone()
            if row is None or not row["writable"]:
                # As a write would fail on it: the pool drains and the next
                # connection looks for the writable host of the URL again.
                raise psycopg.errors.ReadOnlySqlTransaction("the server reached is read-only")

    async def get_app(self, app_key: str) -> App | None:
        row = await self._fetch_one(_Q.get_app, {"app_key": app_key})
        return None if row is None else rows.app_from_row(row)

    async def list_apps(self) -> list[App]:
        return [rows.app_from_row(row) for row in await self._fetch_all(_Q.list_apps, {})]

    async def set_app_enabled(
        self, app_key: str, enabled: bool, *, audit: Audit = None
    ) -> App | None:
        params = {"app_key": app_key, "enabled": enabled}
        row = await self._audited(_Q.set_app_enabled, params, audit)
        return None if row is None else rows.app_from_row(row)

    async def rotate_secret(
        self, app_key: str, new_secret: str, previous_valid_until_ms: int, *, audit: Audit = None
    ) -> App | None:
        params = {
            "app_key": app_key,
            "new_secret": new_secret,
            "previous_valid_until_ms": previous_valid_until_ms,
        }
        row = await self._audited(_Q.rotate_secret, params, audit)
        return None if row is None else rows.app_from_row(row)

    async def set_callback_url(
        self, app_key: str, url: str | None, *, audit: Audit = None
    ) -> App | None:
        row = await self._audited(_Q.set_callback_url, {"app_key": app_key, "url": url}, audit)
        return None if row is None else rows.app_from_row(row)

    async def set_app_rate(
        self, app_key: str, rate_limit: float | None, rate_burst: int | None,
        *, audit: Audit = None,
    ) -> App | None:  # fmt: skip
        params = {"app_key": app_key, "rate_limit": rate_limit, "rate_burst": rate_burst}
        row = await self._audited(_Q.set_app_rate, params, audit)
        return None if row is None else rows.app_from_row(row)

    async def take_tokens(self, app_key: str, want: int, rate: Rate, now_ms: int) -> Grant:
        # Seeded first, so that the row exists for FOR UPDATE to serialise
        # every process's lease of this app.
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_Q.seed_bucket, rows.seed_bucket_params(app_key, rate, now_ms))
            found = await (await conn.execute(_Q.lock_bucket, {"app_key": app_key})).fetchone()
            assert found is not None  # seeded just above
            grant = rows.lease(found, want, rate, now_ms)
            await conn.execute(_Q.save_bucket, rows.bucket_params(app_key, grant))
            return grant

    # -- templates ----------------------------------------------------------

    async def insert_template(self, template: Template, *, audit: Audit = None) -> None:
        if await self._audited(_Q.insert_template, rows.params_of(template), audit) is None:
            raise TemplateExists(_template_taken(template))

    async def update_template(self, template: Template, *, audit: Audit = None) -> bool:
        try:
            row = await self._audited(_Q.update_template, rows.params_of(template), audit)
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise TemplateExists(_template_taken(template)) from exc.__cause__
            raise
        return row is not None

    async def delete_template(self, name: str, *, audit: Audit = None) -> bool:
        return await self._audited(_Q.delete_template, {"name": name}, audit) is not None

    async def get_template(self, name: str) -> Template | None:
        row = await self._fetch_one(_Q.get_template, {"name": name})
        return None if row is None else rows.template_from_row(row)

    async def list_templates(self) -> list[Template]:
        return [rows.template_from_row(row) for row in await self._fetch_all(_Q.list_templates, {})]

    # -- opt-outs -----------------------------------------------------------

    async def add_opt_out(self, opt_out: OptOut, *, audit: Audit = None) -> bool:
        return await self._audited(_Q.add_opt_out, rows.params_of(opt_out), audit) is not None

    async def remove_opt_out(self, app_key: str, receiver: str, *, audit: Audit = None) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._audited(_Q.remove_opt_out, params, audit) is not None

    async def list_opt_outs(self, app_key: str | None = None) -> list[OptOut]:
        found = await self._fetch_all(_Q.list_opt_outs, {"app_key": app_key})
        return [rows.opt_out_from_row(row) for row in found]

    async def is_opted_out(self, app_key: str, receiver: str) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._fetch_one(_Q.is_opted_out, params) is not None

    # -- operators ----------------------------------------------------------

    async def insert_operator(self, operator: Operator) -> None:
        if await self._fetch_one(_Q.insert_operator, rows.params_of(operator)) is None:
            raise OperatorExists(f"an operator named {operator.name} exists")

    async def get_operator(self, name: str) -> Operator | None:
        row = await self._fetch_one(_Q.get_operator, {"name": name})
        return None if row is None else rows.operator_from_row(row)

    async def list_operators(self) -> list[Operator]:
        return [rows.operator_from_row(row) for row in await self._fetch_all(_Q.list_operators, {})]

    async def sign_in_failed(self, name: str, *, now_ms: int, lock_out: LockOut) -> None:
        await self._fetch_one(_Q.sign_in_failed, rows.lock_out_params(name, now_ms, lock_out))

    async def sign_in_succeeded(self, name: str, *, now_ms: int) -> None:
        async with self._connection() as conn:
            await conn.execute(_Q.sign_in_succeeded, {"name": name, "now_ms": now_ms})

    # -- accepting ----------------------------------------------------------

    async def accept(self, message: NewMessage, checks: AcceptChecks | None = None) -> AcceptResult:
        params = rows.accept_params(message, checks)
        async with self._connection() as conn:
            if checks is None or not checks.counts_anything:
                # One statement: the insert itself refuses an opted-out receiver.
                inserted = await (await conn.execute(_Q.accept, params)).fetchone()
            else:
                async with conn.transaction():
                    # Accepts to this receiver queue here until this one commits, so
                    # the counts below include every message that passed before it.
                    await conn.execute(_Q.receiver_lock, {"receiver": params["mobile_receiver"]})
                    existing = await (
                        await conn.execute(_Q.existing_fingerprint, params)
                    ).fetchone()
                    if existing is not None:
                        return rows.repeat(message, existing)
                    rejection = checks.decide(await _receiver_facts(conn, message, checks))
                    if rejection is not None:
                        return rows.rejected(rejection)
                    inserted = await (await conn.execute(_Q.accept, params)).fetchone()
            if inserted is not None:
                return AcceptResult(outcome=AcceptOutcome.ACCEPTED, message_id=inserted["id"])
            # A new statement, a new snapshot: it sees the committed row that won.
            existing = await (await conn.execute(_Q.existing_fingerprint, params)).fetchone()
        return rows.not_inserted(message, checks, existing)

    # -- reading ------------------------------------------------------------

    async def get_message(self, app_key: str, msg_key: str) -> Message | None:
        row = await self._fetch_one(_Q.get_message, {"app_key": app_key, "msg_key": msg_key})
        return None if row is None else rows.message_from_row(row)

    async def get_message_by_id(self, message_id: int) -> Message | None:
        row = await self._fetch_one(_Q.get_message_by_id, {"message_id": message_id})
        return None if row is None else rows.message_from_row(row)

    async def timeline(self, message_id: int) -> list[TimelineEntry]:
        found = await self._fetch_all(_Q.timeline, {"message_id": message_id})
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
        found = await self._fetch_all(query, params)
        counts = dict.fromkeys(MessageStatus, 0)
        counts.update({MessageStatus(row["status"]): row["n"] for row in found})
        return counts

    async def activity(self, *, since_ms: int, bucket_ms: int) -> list[Activity]:
        params = {"since_ms": since_ms, "bucket_ms": bucket_ms}
        found = await self._fetch_all(_Q.activity, params)
        return rows.activity_from_rows(found, since_ms=since_ms, bucket_ms=bucket_ms)

    async def queue_snapshot(self, now_ms: int) -> QueueSnapshot:
        async with self._connection() as conn:
            counts = await (await conn.execute(_Q.count_by_status_and_channel)).fetchall()
            due = await (await conn.execute(_Q.due_queue, {"now_ms": now_ms})).fetchone()
        return rows.queue_snapshot(counts, due)

    async def find_messages(self, query: MessageQuery) -> list[Message]:
        params = rows.find_params(query)
        sql_text = _Q.find_messages if query.app_key is None else _Q.find_messages_for_app
        return [rows.message_from_row(row) for row in await self._fetch_all(sql_text, params)]

    async def requeue(
        self, message_id: int, *, now_ms: int, expires_at_ms: int, by: str, audit: Audit = None
    ) -> bool:
        params = rows.requeue_params(message_id, now_ms=now_ms, expires_at_ms=expires_at_ms)
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(_Q.requeue, {**params, "by": by})).fetchone()
            moved = row is not None and row["moved"] == 1
            if moved:
                await _audit(conn, audit)
            return moved

    # -- retention ----------------------------------------------------------

    async def redact_ended(self, *, ended_before_ms: int, now_ms: int, limit: int, by: str) -> int:
        params = rows.redact_candidates_params(ended_before_ms=ended_before_ms, limit=limit)
        async with self._connection() as conn, conn.transaction():
            # Locked (SKIP LOCKED) until commit: two sweeps never redact one message twice.
            candidates = await (await conn.execute(_Q.redact_candidates, params)).fetchall()
            redacted = 0
            for candidate in candidates:
                change = rows.redact_params(candidate, now_ms=now_ms, by=by)
                if await (await conn.execute(_Q.redact_message, change)).fetchone() is not None:
                    redacted += 1
            return redacted

    async def delete_ended(
        self, selection: EndedSelection, *, limit: int, audit: Audit = None
    ) -> int:
        params = rows.ended_params(selection, limit=limit)
        async with self._connection() as conn, conn.transaction():
            deleted = len(await (await conn.execute(_Q.delete_ended, params)).fetchall())
            if deleted:
                await _audit(conn, audit, deleted=deleted)
            return deleted

    async def drop_unmatched_receipts(self, *, received_before_ms: int, limit: int) -> int:
        params = {"received_before_ms": received_before_ms, "limit": limit}
        return len(await self._fetch_all(_Q.drop_unmatched_receipts, params))

    async def count_ended(self, selection: EndedSelection) -> tuple[int, int]:
        row = await self._fetch_one(_Q.count_ended, rows.ended_params(selection))
        return (0, 0) if row is None else (int(row["ended"]), int(row["in_flight"]))

    # -- the audit trail ----------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        async with self._connection() as conn:
            await _audit(conn, record)

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        found = await self._fetch_all(_Q.list_audit, rows.audit_query_params(query))
        return [rows.audit_from_row(row) for row in found]

    # -- delivering ---------------------------------------------------------

    async def note(
        self, message_id: int, *, now_ms: int, kind: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        async with self._connection() as conn:
            await _note(conn, message_id, now_ms=now_ms, kind=kind, detail=detail)

    async def claim_due(
        self, *, worker_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> list[Message]:
        params = {
            "worker_id": worker_id,
            "now_ms": now_ms,
            "lease_expires_at_ms": now_ms + lease_ms,
            "limit": limit,
        }
        return [rows.message_from_row(row) for row in await self._fetch_all(_Q.claim_due, params)]

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
        if to is not MessageStatus.SUBMITTED:
            row = await self._fetch_one(_Q.transition, params)
            return row is not None and row["moved"] == 1
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(_Q.transition, params)).fetchone()
            if row is None or row["moved"] != 1:
                return False
            # Receipts that arrived while the message was still "sending" decide it
            # now, in this transaction: a crash cannot leave it waiting for them.
            status = await _lock_message(conn, message_id)
            await _conclude(conn, message_id, status, now_ms)
            return True

    # -- segments and receipts ----------------------------------------------
    #
    # Unlike the methods above these are transactions of several statements.
    # Locks are taken in one order: the receipt lock of a (channel, carrier_id),
    # then the message row, then segment rows.  The message is locked before its
    # segments are read for aggregation, so of two receipts completing one
    # message the second always sees the first's segment and exactly one of them
    # moves the message.  A submitted message has no outbox row, so the
    # transition query's outbox lock (taken before the message's by claims and
    # workers) never waits behind a message row this transaction holds.

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
            **rows.parts_param(total, parts, as_json=False),
            "message_id": message_id,
            "attempt": attempt,
            "channel": channel,
            "total": total,
            "now_ms": now_ms,
        }
        if await self._fetch_one(_Q.add_segments, params) is None:
            raise MessageNotFound(f"no message {message_id}")

    async def segment_submitted(
        self, message_id: int, *, attempt: int, part: int, carrier_id: str, now_ms: int
    ) -> ReceiptOutcome | None:
        key = {"message_id": message_id, "attempt": attempt, "part": part}
        async with self._connection() as conn, conn.transaction():
            segment = await _segment(conn, key)
            await conn.execute(
                _Q.receipt_lock, {"channel": segment.channel, "carrier_id": carrier_id}
            )
            await _lock_message(conn, message_id)
            message = await (await conn.execute(_Q.get_message_by_id, key)).fetchone()
            params = {**key, "carrier_id": carrier_id, "now_ms": now_ms}
            pending = segment
            await conn.execute(_Q.release_carrier_id, {**params, "channel": segment.channel})
            submitted = await (await conn.execute(_Q.submit_segment, params)).fetchone()
            if submitted is None or message is None:
                return None  # Named already: a repeat changes nothing.
            segment = rows.segment_from_row(submitted)
            taken = {"channel": segment.channel, "carrier_id": carrier_id}
            found = await (await conn.execute(_Q.kept_receipts, taken)).fetchall()
            kept = [rows.kept_receipt_from_row(row) for row in found]
            # Receipts of another message with the same id (before an SMSC restart) stay kept.
            fitting = rows.fitting_receipts(kept, pending, message["mobile_receiver"])
            outcome = None
            for receipt in fitting:
                await conn.execute(_Q.drop_kept_receipt, {"id": receipt.id})
                outcome = await _apply_receipt(
                    conn,
                    segment,
                    state=receipt.state,
                    error=receipt.error,
                    now_ms=now_ms,
                    detail={**receipt.detail, "received_at_ms": receipt.received_at_ms},
                )
                # The next kept receipt meets the segment as this one left it.
                segment = await _segment(conn, key)
            return outcome

    async def segment_refused(
        self, message_id: int, *, attempt: int, part: int, error: str, now_ms: int
    ) -> None:
        params = {"message_id": message_id, "attempt": attempt, "part": part,
                  "error": error, "now_ms": now_ms}  # fmt: skip
        async with self._connection() as conn:
            await conn.execute(_Q.refuse_segment, params)

    async def segments(self, message_id: int) -> list[Segment]:
        found = await self._fetch_all(_Q.segments, {"message_id": message_id})
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
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_Q.receipt_lock, params)
            # Read under the receipt lock: nobody else can change this segment now.
            row = await (await conn.execute(_Q.segment_by_carrier, params)).fetchone()
            if row is None or not rows.receipt_fits_segment(row, destination):
                await conn.execute(_Q.insert_unmatched_receipt, params)
                return ReceiptOutcome(matched=False)
            segment = rows.segment_from_row(row)
            return await _apply_receipt(
                conn, segment, state=state, error=error, now_ms=now_ms, detail=detail
            )

    async def settle(self, message_id: int, *, now_ms: int) -> MessageStatus | None:
        async with self._connection() as conn, conn.transaction():
            status = await _lock_message(conn, message_id)
            return await _conclude(conn, message_id, status, now_ms)

    async def unmatched_receipts(self, channel: str) -> int:
        row = await self._fetch_one(_Q.count_unmatched_receipts, {"channel": channel})
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
        found = await self._fetch_all(_Q.awaiting_receipts, params)
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
        return [int(row["id"]) for row in await self._fetch_all(_Q.overdue_submissions, params)]

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
        found = await self._fetch_all(_Q.claim_status_events, params)
        return [rows.status_event_from_row(row) for row in found]

    async def status_event_done(
        self, event_id: int, *, now_ms: int, worker_id: str, status_code: int
    ) -> None:
        params = {"event_id": event_id, "now_ms": now_ms, "worker_id": worker_id}
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(_Q.status_event_done, params)).fetchone()
            if row is None:
                return  # Another sender holds it now, or it is settled already.
            detail = rows.callback_detail(row, status_code=status_code)
            await _note(
                conn, row["message_id"], now_ms=now_ms, kind="callback_delivered", detail=detail
            )

    async def open_channel(self, opening: ChannelOpening) -> None:
        await self._fetch_one(_Q.open_channel, rows.params_of(opening))

    async def close_channel(self, channel: str, *, closed_at_ms: int) -> None:
        params = {"channel": channel, "closed_at_ms": closed_at_ms}
        await self._fetch_one(_Q.close_channel, params)

    async def open_channels(self, *, now_ms: int) -> list[ChannelOpening]:
        found = await self._fetch_all(_Q.open_channels, {"now_ms": now_ms})
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
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(_Q.status_event_failed, params)).fetchone()
            if row is None:
                return  # Another sender holds it now, or it is settled already.
            detail = rows.callback_detail(row, error=error, retry_at_ms=retry_at_ms)
            await _note(
                conn, row["message_id"], now_ms=now_ms, kind="callback_failed", detail=detail
            )

    # -- plumbing -------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        """A checked pooled connection for at most ``timeout`` seconds.

        Driver errors leave as StoreError, or StoreUnavailable when worth a retry;
        the first StoreUnavailable of an outage, and its end, are logged once.
        """
        try:
            async with self._checked_connection() as conn:
                yield conn
        except StoreUnavailable as exc:
            self._outage.failed(exc)
            raise
        self._outage.succeeded()

    @asynccontextmanager
    async def _checked_connection(self) -> AsyncIterator[_Connection]:
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            conn = await _checkout(pool, deadline)
        except StoreUnavailable as exc:
            # Named after the driver's error, when a connection check saw one.
            raise StoreUnavailable(f"no PostgreSQL connection within {self.timeout:g} s") from (
                exc.__cause__ or exc
            )
        cutoff = _Cutoff(conn, deadline)
        try:
            async with conn:  # commit or roll back, as pool.connection() does
                yield conn
        except psycopg.Error as exc:
            if _connection_lost(conn, exc):
                await pool.drain()
            if cutoff.fired:
                raise StoreUnavailable(
                    f"PostgreSQL did not answer within {self.timeout:g} s"
                ) from exc
            if isinstance(exc, psycopg.OperationalError) or _connection_lost(conn, exc):
                # Connection lost or refused, server shutting down or read-only,
                # deadlock or serialization failure: all worth a retry later.
                raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
            raise StoreError(f"PostgreSQL error: {exc}") from exc
        finally:
            cutoff.cancel()
            await pool.putconn(conn)

    async def _fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> DictRow | None:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchone()

    async def _fetch_all(self, query: LiteralString, params: Mapping[str, Any]) -> list[DictRow]:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def _audited(
        self, query: LiteralString, params: Mapping[str, Any], audit: Audit
    ) -> DictRow | None:
        """Run a one-row change; if it changed a row, write ``audit`` in the same transaction."""
        if audit is None:
            return await self._fetch_one(query, params)
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(query, params)).fetchone()
            if row is not None:
                await _audit(conn, audit)
            return row


async def _audit(conn: _Connection, record: Audit, **extra_detail: Any) -> None:
    """Write the audit record of the change this transaction just made (nothing for ``None``)."""
    if record is not None:
        await conn.execute(_Q.insert_audit, rows.audit_params(record, **extra_detail))


async def _checkout(pool: AsyncConnectionPool[_Connection], deadline: float) -> _Connection:
    """A pooled connection that has just answered a round trip, by ``deadline``.

    While the pool is below its full size (it may be failing to connect), the
    wait is cut into slices of ``_CONNECT_AGAIN_S``, each a new request to grow,
    so no backoff delays the first call after an outage.  A full pool is busy,
    not failing: its waiters wait in one piece and keep their place in line.
    A dead connection drains the pool: the others died with it.

    Raises:
        StoreUnavailable: no working connection by the deadline.
    """
    loop = asyncio.get_running_loop()
    failure: psycopg.Error | None = None
    while (remaining := deadline - loop.time()) > 0:
        stats = pool.get_stats()
        if stats["pool_size"] < stats["pool_max"]:
            remaining = min(remaining, _CONNECT_AGAIN_S)
        try:
            conn = await pool.getconn(timeout=remaining)
        except PoolTimeout:
            continue
        cutoff = _Cutoff(conn, deadline)
        try:
            await pool.check_connection(conn)
        except psycopg.Error as exc:
            failure = exc
            await pool.putconn(conn)  # broken: the pool discards it
            await pool.drain()
            continue
        finally:
            cutoff.cancel()
        if not cutoff.fired:
            return conn
        await pool.putconn(conn)
    raise StoreUnavailable("no PostgreSQL connection in time") from failure


class _Cutoff:
    """Shuts a connection's socket down at ``deadline`` unless cancelled first.

    A statement waiting on a server that stopped answering then fails at once
    with an OperationalError; cancelling it instead would wait up to 10 s for
    psycopg's cancel request to a server that does not answer either.
    """

    def __init__(self, conn: _Connection, deadline: float) -> None:
        self.fired = False
        self._conn = conn
        self._timer = asyncio.get_running_loop().call_at(deadline, self._cut)

    def _cut(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError, psycopg.Error):
            sock = socket.socket(fileno=self._conn.pgconn.socket)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()  # libpq still owns the descriptor

    def cancel(self) -> None:
        self._timer.cancel()


def _connection_lost(conn: _Connection, exc: psycopg.Error) -> bool:
    """Whether the error means the server is gone (or no longer the writable primary)."""
    if conn.closed or conn.broken or isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return True
    # 08: connection exceptions; 57P: shutdown, crash, "cannot connect now"...
    return (exc.sqlstate or "").startswith(("08", "57P"))


async def _receiver_facts(
    conn: _Connection, message: NewMessage, checks: AcceptChecks
) -> ReceiverFacts:
    """What the receiver policies ask about the message's receiver (under its lock)."""
    cursor = await conn.execute(_Q.receiver_facts, rows.receiver_facts_params(message, checks))
    found = await cursor.fetchone()
    if found is None:
        raise StoreError("the receiver facts query returned nothing")
    counts = []
    for query in checks.count_queries:
        params = rows.count_query_params(message, query)
        counted = await (await conn.execute(_Q.count_to_receiver, params)).fetchone()
        counts.append(0 if counted is None else int(counted["n"]))
    return rows.receiver_facts(found, counts)


def _template_taken(template: Template) -> str:
    key = (template.app_key, template.source, template.action, template.event_type)
    return f"template {template.name!r} or one selected by {key} exists"


async def _segment(conn: _Connection, key: Mapping[str, Any]) -> Segment:
    row = await (await conn.execute(_Q.segment, key)).fetchone()
    if row is None:
        raise StoreError(
            f"message {key['message_id']} has no segment {key['part']} in attempt {key['attempt']}"
        )
    return rows.segment_from_row(row)


async def _lock_message(conn: _Connection, message_id: int) -> MessageStatus | None:
    """Lock the message row until the transaction ends; its status (None: no such message)."""
    row = await (await conn.execute(_Q.lock_message, {"message_id": message_id})).fetchone()
    return None if row is None else MessageStatus(row["status"])


async def _apply_receipt(
    conn: _Connection,
    segment: Segment,
    *,
    state: SegmentState,
    error: str | None,
    now_ms: int,
    detail: Mapping[str, Any] | None,
) -> ReceiptOutcome:
    """Record a receipt for a known segment, then aggregate (see Store.apply_receipt).

    Runs inside a transaction holding the segment's receipt lock.
    """
    message_id = segment.message_id
    status = await _lock_message(conn, message_id)
    if segment.state in FINAL_SEGMENT_STATES:
        entry = rows.duplicate_receipt_detail(segment, state=state, detail=detail)
        await _note(conn, message_id, now_ms=now_ms, kind="duplicate_receipt", detail=entry)
        return ReceiptOutcome(matched=True, duplicate=True, message_id=message_id)
    changed = {
        **rows.segment_key(segment),
        "state": rows.recorded_state(state).value,
        "error": error,
        "now_ms": now_ms,
    }
    await conn.execute(_Q.set_segment_state, changed)
    entry = rows.receipt_detail(segment, state=state, error=error, detail=detail)
    await _note(conn, message_id, now_ms=now_ms, kind="receipt", detail=entry)
    concluded = await _conclude(conn, message_id, status, now_ms)
    return ReceiptOutcome(
        matched=True, message_id=message_id, message_status=concluded,
        since_ms=segment.updated_at_ms,
    )  # fmt: skip


async def _conclude(
    conn: _Connection, message_id: int, status: MessageStatus | None, now_ms: int
) -> MessageStatus | None:
    """Move a submitted message to what its parts add up to (every copy counts), if final.

    ``status`` is the message's status, read when this transaction locked its row.
    """
    if status != MessageStatus.SUBMITTED:
        return None  # Still sending (settle comes later), or final: never downgraded.
    # A statement after the lock: a new snapshot, with every earlier receipt committed.
    key = {"message_id": message_id}
    copies = await (await conn.execute(_Q.segments, key)).fetchall()
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
    row = await (await conn.execute(_Q.transition, params)).fetchone()
    return concluded.status if row is not None and row["moved"] == 1 else None


async def _note(
    conn: _Connection,
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
    if await (await conn.execute(_Q.note, params)).fetchone() is None:
        raise MessageNotFound(f"no message {message_id}")


if TYPE_CHECKING:
    # mypy proves the class implements the Protocol.
    _conforms: type[Store] = PostgresStore
