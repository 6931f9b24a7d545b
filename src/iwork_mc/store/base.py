"""The store: apps, messages, the outbox and each message's timeline.

One interface, two backends that pass one test suite: SQLite (default, one file,
WAL, group commit) and PostgreSQL (many gateway and worker processes on many
hosts).  Every method is one transaction.  Time is passed in as epoch
milliseconds so backends never read a clock of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from iwork_mc.apps import App
from iwork_mc.audit import AuditQuery, AuditRecord
from iwork_mc.breaker import ChannelOpening
from iwork_mc.messages import (
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
from iwork_mc.policies import AcceptChecks, OptOut
from iwork_mc.ratelimits import Grant, Rate
from iwork_mc.retention import EndedSelection
from iwork_mc.segments import AwaitingReceipt, ReceiptOutcome, Segment, SegmentState
from iwork_mc.templates import Template

__all__ = [
    "AppExists",
    "Audit",
    "MessageNotFound",
    "OperatorExists",
    "QueueSnapshot",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TemplateExists",
]


class StoreError(Exception):
    """The store failed; the driver's error is on ``__cause__``."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked for too long; try again later."""


class AppExists(StoreError):
    """An app with that app_key already exists."""


class MessageNotFound(StoreError):
    """No message has that id."""


class OperatorExists(StoreError):
    """An operator with that name already exists."""


class TemplateExists(StoreError):
    """A template with that name, or with the same (app, source, action, event_type), exists."""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What ``/metrics`` reads from the store when it is scraped."""

    #: Messages by ``(status, channel)``; the channel is ``""`` before a first attempt.
    by_status_channel: Mapping[tuple[str, str], int]
    #: Outbox rows due now and not leased to a worker.
    due: int
    #: The due time of the oldest of them (``None``: none is due).
    oldest_due_at_ms: int | None


#: The audit record of a change, written with it (``None``: the change is not audited).
Audit = AuditRecord | None


class Store(Protocol):
    """**Protocol:** the durable state of iwork-mc.

    Every method that changes apps, templates, opt-outs or messages on someone's
    behalf takes ``audit``: that record is written in the same transaction as
    the change, and only if the change was made (a no-op writes none).
    """

    async def open(self) -> None:
        """Connect (and for SQLite create the file); does not migrate."""

    async def close(self) -> None:
        """Finish pending writes and disconnect."""

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations in order; return the names applied."""

    async def pending_migrations(self) -> list[str]:
        """Names of the migrations not yet applied (servers refuse to start with any)."""

    # -- apps ---------------------------------------------------------------

    async def insert_app(self, app: App, *, audit: Audit = None) -> None:
        """Store a new app. Raises :class:`AppExists` if its app_key is taken."""

    async def get_app(self, app_key: str) -> App | None: ...

    async def check_writable(self) -> None:
        """Return if the store takes writes now (the readiness probe).

        Raises:
            StoreUnavailable: it does not answer, or (PostgreSQL) the server reached
                is a standby or read-only: a failover is under way.
        """

    async def list_apps(self) -> list[App]:
        """Every app, oldest first."""

    async def set_app_enabled(
        self, app_key: str, enabled: bool, *, audit: Audit = None
    ) -> App | None:
        """Enable or disable an app; ``None`` if it does not exist."""

    async def rotate_secret(
        self, app_key: str, new_secret: str, previous_valid_until_ms: int, *, audit: Audit = None
    ) -> App | None:
        """Make ``new_secret`` current and keep the old one valid until the given instant."""

    async def set_callback_url(
        self, app_key: str, url: str | None, *, audit: Audit = None
    ) -> App | None:
        """Set (or with ``None`` clear) the app's status callback URL; ``None`` if no app."""

    async def set_app_rate(
        self, app_key: str, rate_limit: float | None, rate_burst: int | None,
        *, audit: Audit = None,
    ) -> App | None:  # fmt: skip
        """Set the app's rate and burst (``None``: the defaults); ``None`` if no app."""

    async def take_tokens(self, app_key: str, want: int, rate: Rate, now_ms: int) -> Grant:
        """Lease up to ``want`` tokens from the app's shared bucket (:func:`ratelimits.take`).

        One transaction, serialised with every other process's lease of the
        same app; a bucket seen for the first time starts full.
        """

    # -- templates ----------------------------------------------------------

    async def insert_template(self, template: Template, *, audit: Audit = None) -> None:
        """Raises :class:`TemplateExists` if the name or the selection key is taken."""

    async def update_template(self, template: Template, *, audit: Audit = None) -> bool:
        """Replace the template of that name (``created_at_ms`` kept); False if none.

        Raises :class:`TemplateExists` if the new selection key is another's.
        """

    async def delete_template(self, name: str, *, audit: Audit = None) -> bool: ...

    async def get_template(self, name: str) -> Template | None: ...

    async def list_templates(self) -> list[Template]:
        """Every template, by name."""

    # -- opt-outs -----------------------------------------------------------

    async def add_opt_out(self, opt_out: OptOut, *, audit: Audit = None) -> bool:
        """Record it; False if that (app_key, receiver) was already opted out."""

    async def remove_opt_out(self, app_key: str, receiver: str, *, audit: Audit = None) -> bool: ...

    async def list_opt_outs(self, app_key: str | None = None) -> list[OptOut]:
        """Every opt-out (of ``app_key`` and the ``"*"`` ones, if given), newest first."""

    async def is_opted_out(self, app_key: str, receiver: str) -> bool:
        """Opted out of ``app_key`` or of every app (``"*"``)."""

    # -- operators (the web console's accounts) -----------------------------

    async def insert_operator(self, operator: Operator) -> None:
        """Store a new operator. Raises :class:`OperatorExists` if the name is taken."""

    async def get_operator(self, name: str) -> Operator | None: ...

    async def list_operators(self) -> list[Operator]:
        """Every operator, by name."""

    async def sign_in_failed(self, name: str, *, now_ms: int, lock_out: LockOut) -> None:
        """Count a failed sign-in, atomically (failures from many processes all count).

        The failure that makes ``lock_out.max_failures`` in a row locks the
        account until ``now_ms + lock_out.duration_ms`` and restarts the count.
        """

    async def sign_in_succeeded(self, name: str, *, now_ms: int) -> None:
        """Clear the failure count and any lock; remember when."""

    # -- accepting ----------------------------------------------------------

    async def accept(self, message: NewMessage, checks: AcceptChecks | None = None) -> AcceptResult:
        """Store a message and its outbox row in one transaction, idempotently.

        ``(app_key, msg_key)`` is unique.  A repeat with the same fingerprint
        answers ``DUPLICATE`` with the existing id; a different fingerprint
        answers ``CONFLICT``; neither writes anything.  Safe against the same
        request racing from several processes.  Returns only after commit.

        With ``checks``, a new message is first put to the receiver policies
        in the same transaction (so concurrent accepts cannot both pass a
        cap): the store gathers the :class:`~iwork_mc.policies.ReceiverFacts`
        (opt-out for the app or ``"*"``, one count per
        ``checks.count_queries``: messages to the receiver accepted after
        ``since_ms`` from the same app / any app / the same template, and
        whether a message with ``checks.text_digest`` went to the receiver
        after ``checks.dedupe_since_ms``) and answers ``REJECTED`` with
        ``checks.decide(facts)``'s rejection, storing nothing, if it declines.
        The accepted message is queued at ``message.due_at_ms`` (default: at
        once); ``message.notes`` follow the ``accepted`` timeline entry.
        """

    # -- reading ------------------------------------------------------------

    async def get_message(self, app_key: str, msg_key: str) -> Message | None: ...

    async def get_message_by_id(self, message_id: int) -> Message | None: ...

    async def timeline(self, message_id: int) -> list[TimelineEntry]:
        """The message's history, oldest first (accepted is the first entry)."""

    async def count_by_status(
        self,
        app_key: str | None = None,
        *,
        accepted_from_ms: int | None = None,
        accepted_until_ms: int | None = None,
    ) -> dict[MessageStatus, int]: ...

    async def activity(self, *, since_ms: int, bucket_ms: int) -> list[Activity]:
        """Messages accepted, and of those delivered, per ``bucket_ms`` from ``since_ms``.

        Buckets with neither are left out; deliveries fall in the bucket of the
        message's last change.
        """

    async def queue_snapshot(self, now_ms: int) -> QueueSnapshot:
        """Messages by status and channel, and the queue due at ``now_ms`` (for /metrics)."""

    async def find_messages(self, query: MessageQuery) -> list[Message]:
        """Messages matching every filter, newest (highest id) first, ``query.limit`` at most.

        ``accepted_until_ms`` is exclusive, ``accepted_from_ms`` inclusive.
        """

    async def requeue(
        self, message_id: int, *, now_ms: int, expires_at_ms: int, by: str, audit: Audit = None
    ) -> bool:
        """Send a ``failed`` or ``expired`` message again (an operator's decision).

        Queues it due now with a new validity, back on the first route step
        with no step attempts; the timeline gets ``requeued`` with ``by`` and
        the previous status and error.  False (nothing written) unless its
        status is in :data:`~iwork_mc.messages.REQUEUE_FROM` and it was not
        redacted (its receiver and data are gone: nothing could be sent).
        """

    # -- retention ----------------------------------------------------------

    async def redact_ended(self, *, ended_before_ms: int, now_ms: int, limit: int, by: str) -> int:
        """Redact up to ``limit`` messages that ended before ``ended_before_ms``; how many.

        Oldest ended first, in one transaction; each keeps only its masked
        receiver (see :mod:`iwork_mc.retention`) and gets a ``redacted``
        timeline entry naming the fields and ``by``.  Already redacted ones
        are skipped.
        """

    async def delete_ended(
        self, selection: EndedSelection, *, limit: int, audit: Audit = None
    ) -> int:
        """Delete up to ``limit`` ended messages matching ``selection``; how many.

        Oldest ended first, in one transaction, with their timelines, segments
        and status events.  A message not in a final status is never deleted.
        With ``audit``, a record whose detail also says how many were deleted
        is written if any was.
        """

    async def drop_unmatched_receipts(self, *, received_before_ms: int, limit: int) -> int:
        """Delete up to ``limit`` kept receipts that arrived before ``received_before_ms``.

        They name a handset and will never match now; the retention sweep drops
        them with the messages.  Returns how many.
        """

    async def count_ended(self, selection: EndedSelection) -> tuple[int, int]:
        """``(ended, in_flight)``: messages matching ``selection`` that :meth:`delete_ended`
        would delete, and those it keeps because they have not ended.

        The age filter compares ``updated_at_ms`` (when an ended message ended;
        when an in-flight one last changed) with ``ended_before_ms``.
        """

    # -- the audit trail ----------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        """Record a change the store did not make itself (a console sign-in)."""

    async def list_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Records matching every filter, newest first, ``query.limit`` at most."""

    # -- delivering ---------------------------------------------------------

    async def note(
        self, message_id: int, *, now_ms: int, kind: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Append a timeline entry that changes no status (an attempt, a receipt).

        Raises :class:`MessageNotFound` if there is no such message.
        """

    async def claim_due(
        self, *, worker_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> list[Message]:
        """Lease up to ``limit`` due messages to ``worker_id`` and mark them ``sending``.

        Due means queued with ``due_at <= now``, or sending with an expired
        lease (its worker died); the latter is noted in the timeline.  Each
        message says whether its receiver is opted out (of its app or of every
        app) right now: ``receiver_opted_out``.  Two
        workers never hold a lease on the same message at once.
        """

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
        """Move a message to ``to`` if :data:`~iwork_mc.messages.TRANSITIONS` allows it.

        With ``route_step`` the message moves to that step of its route (a
        fallback to the next channel) and its ``step_attempts`` restart at 0.
        ``claim_due`` adds one to both ``attempts`` and ``step_attempts``;
        ``attempt_not_made`` takes that one back (the channel could not even
        try, e.g. no SMPP session was bound), so an outage uses up no attempts.

        Appends a timeline entry of ``kind`` with ``detail``.  With ``worker_id``
        the change only happens while that worker still holds the lease (a lease
        that ran out is held until another worker claims the message: refusing
        then would only make the message be sent twice).
        Moving to ``queued`` reschedules the outbox row at ``due_at_ms``; any
        other status releases it.  Moving to ``submitted`` also applies, in the
        same transaction, what receipts that arrived meanwhile add up to (as
        :meth:`settle` does), so a crash cannot strand the message.  Returns
        whether the change was made (a refused change writes nothing).
        """

    # -- segments and receipts (carriers that confirm delivery later) -------

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
        """Record the pending segments of an attempt of ``total`` parts before any is submitted.

        All parts, or only ``parts`` (a resend of the parts in doubt).  After a
        crash, a pending segment is one whose submission is in doubt.
        """

    async def segment_submitted(
        self, message_id: int, *, attempt: int, part: int, carrier_id: str, now_ms: int
    ) -> ReceiptOutcome | None:
        """Record the carrier's id of a submitted segment.

        A receipt that arrived for ``carrier_id`` before this (kept as unmatched)
        is applied now, in the same transaction, if it can be this segment's
        (:func:`~iwork_mc.segments.kept_receipt_fits`: it arrived after the
        segment was added, give or take the clock skew, and names the message's
        receiver); its outcome is returned.  Any other stays kept.  SMSCs
        reuse ids after a while: an id already naming another segment of the
        channel moves to this one (the old segment keeps its state).  Raises
        :class:`StoreError` if the segment was never added.
        """

    async def segment_refused(
        self, message_id: int, *, attempt: int, part: int, error: str, now_ms: int
    ) -> None:
        """Record that the carrier refused a pending segment: it is not in doubt."""

    async def segments(self, message_id: int) -> list[Segment]:
        """Every segment of every attempt of the message, by attempt then part."""

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
        """Record a delivery receipt durably, in one transaction.

        ``destination`` is the handset the receipt names ('' if none).  Unknown
        ``carrier_id``, or a segment whose message went to another number
        (:func:`~iwork_mc.segments.receipt_names_receiver`): kept as unmatched
        (``matched=False``) until :meth:`segment_submitted` names it.
        Segment already final: nothing changes (``duplicate=True``); a
        ``duplicate_receipt`` timeline entry is written.  Otherwise the segment
        takes ``state`` (non-final states only replace pending/submitted/enroute),
        a ``receipt`` timeline entry is written, and if the message is
        ``submitted`` and every part is final, the message moves to what
        :func:`iwork_mc.segments.aggregate` says (``message_status``).
        """

    async def settle(self, message_id: int, *, now_ms: int) -> MessageStatus | None:
        """Apply :func:`~iwork_mc.segments.aggregate` to a ``submitted`` message now.

        The worker calls this after recording ``submitted``, for receipts that
        arrived while the message was still ``sending``.
        """

    async def unmatched_receipts(self, channel: str) -> int:
        """How many receipts for ``channel`` still match no segment."""

    async def awaiting_receipts(
        self, channel: str, *, after: tuple[int, int, int], limit: int
    ) -> list[AwaitingReceipt]:
        """Up to ``limit`` of the channel's submitted segments still waiting for a receipt.

        Only segments of messages still ``submitted`` count (the overdue sweep
        ends the wait of the others).  Ordered by :attr:`AwaitingReceipt.cursor`,
        starting after ``after`` (``(0, 0, 0)``: from the start), so a poller
        pages through them all, round after round.
        """

    async def overdue_submissions(self, *, before_ms: int, limit: int) -> list[int]:
        """Ids of ``submitted`` messages whose validity ended before ``before_ms``.

        Their receipt never came; the worker moves them to ``expired`` (a
        guarded transition, so a receipt that lands meanwhile wins).
        """

    # -- channel breakers shared by the workers (breaker.py) -----------------

    async def open_channel(self, opening: ChannelOpening) -> None:
        """Every worker skips ``opening.channel`` until its ``open_until_ms``.

        An opening older than the one recorded changes nothing.
        """

    async def close_channel(self, channel: str, *, closed_at_ms: int) -> None:
        """A worker's probes closed the breaker: an opening from before ``closed_at_ms`` ends."""

    async def open_channels(self, *, now_ms: int) -> list[ChannelOpening]:
        """The channels some worker opened and whose opening lasts past ``now_ms``."""

    # -- status callbacks -----------------------------------------------------
    #
    # Every status change of a message whose app has a callback URL (at the
    # time of the change) adds a status event in the SAME transaction as the
    # change: accept (queued), transition, settle/apply_receipt conclusions,
    # requeue.  Status events are delivered at least once by the callback
    # sender, which leases them like the outbox.

    async def claim_status_events(
        self, *, worker_id: str, now_ms: int, lease_ms: int, limit: int
    ) -> list[StatusEvent]:
        """Lease up to ``limit`` due, undelivered status events, oldest first."""

    async def status_event_done(
        self, event_id: int, *, now_ms: int, worker_id: str, status_code: int
    ) -> None:
        """The receiver took the event: it is never sent again.

        Writes a ``callback_delivered`` note on the message's timeline.
        """

    async def status_event_failed(
        self,
        event_id: int,
        *,
        now_ms: int,
        worker_id: str,
        error: str,
        retry_at_ms: int | None,
    ) -> None:
        """An attempt failed: try again at ``retry_at_ms``, or give up (``None``).

        Writes ``callback_failed`` (with error, attempt, next try) on the timeline.
        """
