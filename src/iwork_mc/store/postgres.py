"""PostgresStore: many gateway and worker processes on many hosts, one database.

Theory of operation
-------------------

psycopg 3 in async mode, through a :class:`psycopg_pool.AsyncConnectionPool`
opened explicitly by :meth:`PostgresStore.open` (and checked on checkout, so a
connection the server dropped is replaced rather than handed out).  Pooled
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

Nothing names a schema: the DSN's ``options=-csearch_path=…`` decides where
the tables are, which is how the tests give every test its own schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from iwork_mc.apps import App
from iwork_mc.messages import (
    AcceptOutcome,
    AcceptResult,
    Message,
    MessageQuery,
    MessageStatus,
    NewMessage,
    StatusEvent,
    TimelineEntry,
)
from iwork_mc.policies import AcceptChecks, OptOut, ReceiverFacts
from iwork_mc.segments import FINAL_SEGMENT_STATES, ReceiptOutcome, Segment, SegmentState
from iwork_mc.store import migrations, rows, sql
from iwork_mc.store.base import (
    AppExists,
    MessageNotFound,
    QueueSnapshot,
    Store,
    StoreError,
    StoreUnavailable,
    TemplateExists,
)
from iwork_mc.store.outage import OutageLog
from iwork_mc.templates import Template

__all__ = ["PostgresStore"]

_Connection = psycopg.AsyncConnection[DictRow]


@dataclass(frozen=True, slots=True)
class _Queries:
    insert_app: LiteralString
    get_app: LiteralString
    list_apps: LiteralString
    set_app_enabled: LiteralString
    rotate_secret: LiteralString
    set_callback_url: LiteralString
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
    latest_attempt_segments: LiteralString
    insert_unmatched_receipt: LiteralString
    take_unmatched_receipts: LiteralString
    count_unmatched_receipts: LiteralString
    overdue_submissions: LiteralString


_Q = sql.load("postgres", _Queries)


class PostgresStore:
    """The :class:`~iwork_mc.store.base.Store` on a PostgreSQL database.

    Args:
        dsn: A libpq connection string or ``postgresql://`` URL; its
            ``search_path`` chooses the schema.
        min_size: Connections the pool keeps open.
        max_size: The most connections the pool opens.
        timeout: Seconds to wait for a connection (at open, and from the pool)
            before failing with :class:`StoreUnavailable`.
        connect_timeout: Seconds libpq waits for the server to answer a connect.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
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
            # Replace a connection the server dropped instead of handing it out.
            check=AsyncConnectionPool.check_connection,
            name="iwork-mc",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise StoreUnavailable(f"PostgreSQL unreachable: {exc}") from exc
        self._pool = pool

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

    async def insert_app(self, app: App) -> None:
        if await self._fetch_one(_Q.insert_app, rows.params_of(app)) is None:
            raise AppExists(f"app_key {app.app_key} is taken")

    async def get_app(self, app_key: str) -> App | None:
        row = await self._fetch_one(_Q.get_app, {"app_key": app_key})
        return None if row is None else rows.app_from_row(row)

    async def list_apps(self) -> list[App]:
        return [rows.app_from_row(row) for row in await self._fetch_all(_Q.list_apps, {})]

    async def set_app_enabled(self, app_key: str, enabled: bool) -> App | None:
        row = await self._fetch_one(_Q.set_app_enabled, {"app_key": app_key, "enabled": enabled})
        return None if row is None else rows.app_from_row(row)

    async def rotate_secret(
        self, app_key: str, new_secret: str, previous_valid_until_ms: int
    ) -> App | None:
        params = {
            "app_key": app_key,
            "new_secret": new_secret,
            "previous_valid_until_ms": previous_valid_until_ms,
        }
        row = await self._fetch_one(_Q.rotate_secret, params)
        return None if row is None else rows.app_from_row(row)

    async def set_callback_url(self, app_key: str, url: str | None) -> App | None:
        row = await self._fetch_one(_Q.set_callback_url, {"app_key": app_key, "url": url})
        return None if row is None else rows.app_from_row(row)

    # -- templates ----------------------------------------------------------

    async def insert_template(self, template: Template) -> None:
        if await self._fetch_one(_Q.insert_template, rows.params_of(template)) is None:
            raise TemplateExists(_template_taken(template))

    async def update_template(self, template: Template) -> bool:
        async with self._connection() as conn:
            try:
                cursor = await conn.execute(_Q.update_template, rows.params_of(template))
            except psycopg.errors.UniqueViolation as exc:
                raise TemplateExists(_template_taken(template)) from exc
            return await cursor.fetchone() is not None

    async def delete_template(self, name: str) -> bool:
        return await self._fetch_one(_Q.delete_template, {"name": name}) is not None

    async def get_template(self, name: str) -> Template | None:
        row = await self._fetch_one(_Q.get_template, {"name": name})
        return None if row is None else rows.template_from_row(row)

    async def list_templates(self) -> list[Template]:
        return [rows.template_from_row(row) for row in await self._fetch_all(_Q.list_templates, {})]

    # -- opt-outs -----------------------------------------------------------

    async def add_opt_out(self, opt_out: OptOut) -> bool:
        return await self._fetch_one(_Q.add_opt_out, rows.params_of(opt_out)) is not None

    async def remove_opt_out(self, app_key: str, receiver: str) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._fetch_one(_Q.remove_opt_out, params) is not None

    async def list_opt_outs(self, app_key: str | None = None) -> list[OptOut]:
        found = await self._fetch_all(_Q.list_opt_outs, {"app_key": app_key})
        return [rows.opt_out_from_row(row) for row in found]

    async def is_opted_out(self, app_key: str, receiver: str) -> bool:
        params = {"app_key": app_key, "receiver": receiver}
        return await self._fetch_one(_Q.is_opted_out, params) is not None

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

    async def queue_snapshot(self, now_ms: int) -> QueueSnapshot:
        async with self._connection() as conn:
            counts = await (await conn.execute(_Q.count_by_status_and_channel)).fetchall()
            due = await (await conn.execute(_Q.due_queue, {"now_ms": now_ms})).fetchone()
        return rows.queue_snapshot(counts, due)

    async def find_messages(self, query: MessageQuery) -> list[Message]:
        params = rows.find_params(query)
        sql_text = _Q.find_messages if query.app_key is None else _Q.find_messages_for_app
        return [rows.message_from_row(row) for row in await self._fetch_all(sql_text, params)]

    async def requeue(self, message_id: int, *, now_ms: int, expires_at_ms: int, by: str) -> bool:
        params = rows.requeue_params(message_id, now_ms=now_ms, expires_at_ms=expires_at_ms)
        row = await self._fetch_one(_Q.requeue, {**params, "by": by})
        return row is not None and row["moved"] == 1

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
        self, message_id: int, *, attempt: int, channel: str, total: int, now_ms: int
    ) -> None:
        if total < 1:
            raise ValueError(f"a message has at least one segment, not {total}")
        params = {
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
            params = {**key, "carrier_id": carrier_id, "now_ms": now_ms}
            await conn.execute(_Q.release_carrier_id, {**params, "channel": segment.channel})
            submitted = await (await conn.execute(_Q.submit_segment, params)).fetchone()
            if submitted is None:
                return None  # Named already: a repeat changes nothing.
            segment = rows.segment_from_row(submitted)
            taken = {"channel": segment.channel, "carrier_id": carrier_id}
            found = await (await conn.execute(_Q.take_unmatched_receipts, taken)).fetchall()
            outcome = None
            for receipt in map(rows.kept_receipt_from_row, found):
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
    ) -> ReceiptOutcome:
        params = rows.unmatched_receipt_params(
            channel=channel,
            carrier_id=carrier_id,
            state=state,
            error=error,
            now_ms=now_ms,
            detail=detail,
        )
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_Q.receipt_lock, params)
            # Read under the receipt lock: nobody else can change this segment now.
            row = await (await conn.execute(_Q.segment_by_carrier, params)).fetchone()
            if row is None:
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
        """A pooled connection; driver errors leave as StoreError/StoreUnavailable."""
        if self._pool is None:
            raise StoreError("the store is not open")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            error = StoreUnavailable(f"no PostgreSQL connection available: {exc}")
            self._outage.failed(error)
            raise error from exc
        except psycopg.OperationalError as exc:
            # Connection lost or refused, server shutting down, deadlock or
            # serialization failure: all worth a retry later.
            error = StoreUnavailable(f"PostgreSQL unavailable: {exc}")
            self._outage.failed(error)
            raise error from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error: {exc}") from exc
        self._outage.succeeded()

    async def _fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> DictRow | None:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchone()

    async def _fetch_all(self, query: LiteralString, params: Mapping[str, Any]) -> list[DictRow]:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchall()


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
    """Move a submitted message to what its latest attempt's segments add up to, if final.

    ``status`` is the message's status, read when this transaction locked its row.
    """
    if status != MessageStatus.SUBMITTED:
        return None  # Still sending (settle comes later), or final: never downgraded.
    # A statement after the lock: a new snapshot, with every earlier receipt committed.
    key = {"message_id": message_id}
    latest = await (await conn.execute(_Q.latest_attempt_segments, key)).fetchall()
    concluded = rows.conclusion([rows.segment_from_row(row) for row in latest])
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
