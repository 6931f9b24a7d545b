"""The message engine in the Store: receiver policies at accept, deferral, the new
message fields, searches and counts, requeue, templates, opt-outs, status events
and migration 0003, on SQLite and on PostgreSQL (one suite)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from iwork_mc.apps import App
from iwork_mc.messages import (
    AcceptOutcome,
    Message,
    MessageQuery,
    MessageStatus,
    NewMessage,
    StatusEvent,
    TimelineEntry,
)
from iwork_mc.policies import (
    DUPLICATE_CONTENT,
    OPTED_OUT,
    RATE_LIMITED,
    AcceptChecks,
    CapRule,
    OptOut,
)
from iwork_mc.segments import SegmentState
from iwork_mc.store import Store, TemplateExists, create_store, migrations
from iwork_mc.store.migrations import Migration
from iwork_mc.templates import Template, text_digest

T0 = 1_700_000_001_000  # message_factory's accepted_at_ms
LEASE_MS = 30_000
RECEIVER = "+8613888888888"  # event_factory's mobile_receiver
OTHER_APP = "87654321"
URL = "https://hooks.example.com/status"
MINUTE = 60_000

#: NewMessage fields that message_factory does not take.
_ENGINE_FIELDS = {
    "text",
    "template",
    "encoding",
    "segments",
    "urgent",
    "due_at_ms",
    "expires_at_ms",
    "notes",
}

Make = Callable[..., NewMessage]


@pytest.fixture
def make(message_factory: Callable[..., NewMessage]) -> Make:
    """message_factory, also taking the engine's fields (text defaults to ``hello``)."""

    def build(**fields: Any) -> NewMessage:
        engine = {"text": "hello"} | {
            name: fields.pop(name) for name in list(fields) if name in _ENGINE_FIELDS
        }
        return dataclasses.replace(message_factory(**fields), **engine)

    return build


@pytest.fixture
async def other_app(store: Store, app: App, app_factory: Callable[..., App]) -> App:
    stored = app_factory(app_key=OTHER_APP, name="Meeting rooms", created_at_ms=2)
    await store.insert_app(stored)
    return stored


def checks(
    *rules: CapRule, now_ms: int = T0, dedupe_since_ms: int | None = None, text: str = "hello"
) -> AcceptChecks:
    return AcceptChecks(
        rules=rules, now_ms=now_ms, dedupe_since_ms=dedupe_since_ms, text_digest=text_digest(text)
    )


async def accepted_id(
    store: Store, message: NewMessage, with_checks: AcceptChecks | None = None
) -> int:
    result = await store.accept(message, with_checks)
    assert AcceptOutcome.ACCEPTED == result.outcome, result
    return result.message_id


async def message_of(store: Store, message_id: int) -> Message:
    message = await store.get_message_by_id(message_id)
    assert message is not None
    return message


async def total(store: Store) -> int:
    return sum((await store.count_by_status()).values())


async def claim(store: Store, now_ms: int = T0, worker: str = "w") -> list[int]:
    claimed = await store.claim_due(worker_id=worker, now_ms=now_ms, lease_ms=LEASE_MS, limit=100)
    return [message.id for message in claimed]


async def events(store: Store, now_ms: int = T0 + 10**9, worker: str = "cb") -> list[StatusEvent]:
    return await store.claim_status_events(
        worker_id=worker, now_ms=now_ms, lease_ms=LEASE_MS, limit=100
    )


async def fail(store: Store, message_id: int, *, now_ms: int = T0 + 2, error: str = "boom") -> None:
    """Claim the message and fail it for good."""
    assert [message_id] == await claim(store, now_ms - 1)
    moved = await store.transition(
        message_id, to=MessageStatus.FAILED, now_ms=now_ms, kind="failed", error=error
    )
    assert moved


# -- receiver policies at accept ---------------------------------------------------


async def test_opt_out_of_the_app_rejects(store: Store, app: App, make: Make) -> None:
    """A receiver opted out of the app gets RECEIVER_OPTED_OUT and nothing is stored."""
    await store.add_opt_out(
        OptOut(app_key=app.app_key, receiver=RECEIVER, reason="", created_at_ms=1)
    )

    result = await store.accept(make(), checks())

    assert (AcceptOutcome.REJECTED, 0, OPTED_OUT) == (
        result.outcome,
        result.message_id,
        result.rejection and result.rejection.code,
    )
    assert 0 == await total(store)


async def test_opt_out_of_every_app_rejects(store: Store, app: App, make: Make) -> None:
    """An opt-out with app_key '*' covers every app."""
    await store.add_opt_out(OptOut(app_key="*", receiver=RECEIVER, reason="stop", created_at_ms=1))

    result = await store.accept(make(), checks())

    assert AcceptOutcome.REJECTED == result.outcome
    assert result.rejection is not None and OPTED_OUT == result.rejection.code


async def test_opt_out_of_another_app_or_receiver_does_not_reject(
    store: Store, app: App, make: Make
) -> None:
    """Opt-outs from another app, or of another receiver, do not apply."""
    await store.add_opt_out(
        OptOut(app_key=OTHER_APP, receiver=RECEIVER, reason="", created_at_ms=1)
    )
    await store.add_opt_out(
        OptOut(app_key="*", receiver="+8613900000000", reason="", created_at_ms=1)
    )

    await accepted_id(store, make(), checks())


async def test_without_checks_no_policy_applies(store: Store, app: App, make: Make) -> None:
    """accept() without checks stores the message whatever the receiver's opt-outs."""
    await store.add_opt_out(OptOut(app_key="*", receiver=RECEIVER, reason="", created_at_ms=1))

    await accepted_id(store, make())


async def test_app_cap_at_the_boundary(store: Store, app: App, other_app: App, make: Make) -> None:
    """An app cap of 2 lets 2 messages from the app through and rejects the 3rd;
    messages from other apps do not count."""
    rule = CapRule("app", "hour", 2)
    await accepted_id(store, make(app_key=OTHER_APP, msg_key="o1"))
    await accepted_id(store, make(msg_key="m1"), checks(rule))
    await accepted_id(store, make(msg_key="m2"), checks(rule))

    third = await store.accept(make(msg_key="m3"), checks(rule))

    assert AcceptOutcome.REJECTED == third.outcome
    assert third.rejection is not None and RATE_LIMITED == third.rejection.code
    assert 3 == await total(store)


async def test_global_cap_counts_every_app(
    store: Store, app: App, other_app: App, make: Make
) -> None:
    """A global cap counts the receiver's messages from every app."""
    rule = CapRule("global", "day", 2)
    await accepted_id(store, make(app_key=OTHER_APP, msg_key="o1"))
    await accepted_id(store, make(msg_key="m1"), checks(rule))

    third = await store.accept(make(msg_key="m2"), checks(rule))

    assert AcceptOutcome.REJECTED == third.outcome


async def test_template_cap_counts_only_that_template(
    store: Store, app: App, other_app: App, make: Make
) -> None:
    """A template cap counts messages from that template (from any app), not others."""
    rule = CapRule("template", "day", 1)
    await accepted_id(store, make(msg_key="a1", template="other"))
    await accepted_id(store, make(msg_key="m1", template="visit"), checks(rule))
    await accepted_id(store, make(msg_key="d1", template=""), checks(rule))

    second = await store.accept(
        make(app_key=OTHER_APP, msg_key="m2", template="visit"), checks(rule)
    )

    assert AcceptOutcome.REJECTED == second.outcome


async def test_cap_counts_other_receivers_never(store: Store, app: App, make: Make) -> None:
    """Messages to another receiver do not count toward this receiver's cap."""
    rule = CapRule("app", "hour", 1)
    await accepted_id(store, make(msg_key="x", mobile_receiver="+8613900000000"))

    await accepted_id(store, make(msg_key="m1"), checks(rule))


async def test_cap_window_is_exclusive_at_its_start(store: Store, app: App, make: Make) -> None:
    """A message accepted exactly at the window's start is outside it; a ms later, inside."""
    rule = CapRule("app", "minute", 1)
    await accepted_id(store, make(msg_key="m1", accepted_at_ms=T0))

    inside = await store.accept(
        make(msg_key="m2", accepted_at_ms=T0 + MINUTE - 1), checks(rule, now_ms=T0 + MINUTE - 1)
    )
    outside = await store.accept(
        make(msg_key="m3", accepted_at_ms=T0 + MINUTE), checks(rule, now_ms=T0 + MINUTE)
    )

    assert (AcceptOutcome.REJECTED, AcceptOutcome.ACCEPTED) == (inside.outcome, outside.outcome)


async def test_dedupe_within_the_window_rejects(store: Store, app: App, make: Make) -> None:
    """The same text to the same receiver after dedupe_since_ms is DUPLICATE_CONTENT."""
    await accepted_id(store, make(msg_key="m1"), checks(dedupe_since_ms=T0 - 1))

    again = await store.accept(
        make(msg_key="m2", accepted_at_ms=T0 + 5), checks(dedupe_since_ms=T0 - 1)
    )

    assert AcceptOutcome.REJECTED == again.outcome
    assert again.rejection is not None and DUPLICATE_CONTENT == again.rejection.code


async def test_dedupe_outside_the_window_or_other_text_accepts(
    store: Store, app: App, make: Make
) -> None:
    """Not a duplicate: sent before the window, another text, or no dedupe asked."""
    await accepted_id(store, make(msg_key="m1"), checks(dedupe_since_ms=0))

    await accepted_id(store, make(msg_key="m2"), checks(dedupe_since_ms=T0))
    await accepted_id(
        store, make(msg_key="m3", text="other"), checks(dedupe_since_ms=0, text="other2")
    )
    await accepted_id(store, make(msg_key="m4"), checks(dedupe_since_ms=None))


async def test_dedupe_ignores_messages_accepted_without_a_digest(
    store: Store, app: App, make: Make
) -> None:
    """A message accepted without checks keeps no digest, so it never counts as a duplicate."""
    await accepted_id(store, make(msg_key="m1"))

    await accepted_id(store, make(msg_key="m2"), checks(dedupe_since_ms=0))


async def test_rejection_stores_nothing(store: Store, app: App, make: Make) -> None:
    """A rejected message leaves no message, outbox row, timeline entry or status event."""
    await store.set_callback_url(app.app_key, URL)
    await store.add_opt_out(OptOut(app_key="*", receiver=RECEIVER, reason="", created_at_ms=1))

    result = await store.accept(make(), checks())

    assert AcceptOutcome.REJECTED == result.outcome
    assert None is await store.get_message(app.app_key, "visit-1")
    assert ([], [], 0) == (await claim(store, T0 + 10**9), await events(store), await total(store))


async def test_duplicate_msg_key_answers_duplicate_even_when_the_cap_is_full(
    store: Store, app: App, make: Make
) -> None:
    """Idempotency comes first: a repeat answers DUPLICATE (or CONFLICT), never REJECTED."""
    rule = CapRule("app", "hour", 1)
    first = await accepted_id(store, make(), checks(rule))

    repeat = await store.accept(make(request_id="req-2"), checks(rule))
    conflict = await store.accept(make(action="left"), checks(rule))

    assert (AcceptOutcome.DUPLICATE, first) == (repeat.outcome, repeat.message_id)
    assert (AcceptOutcome.CONFLICT, first) == (conflict.outcome, conflict.message_id)
    assert 1 == await total(store)


async def test_concurrent_accepts_never_pass_a_cap_together(
    store: Store, database_url: str, app: App, make: Make
) -> None:
    """Accepts racing through two stores let exactly ``limit`` messages through."""
    rule = CapRule("app", "hour", 3)
    other = create_store(database_url)
    await other.open()
    try:
        results = await asyncio.gather(
            *(
                accepter.accept(make(msg_key=f"m{n}-{i}"), checks(rule))
                for n in range(6)
                for i, accepter in enumerate((store, other))
            )
        )
    finally:
        await other.close()

    outcomes = [result.outcome for result in results]
    assert 3 == outcomes.count(AcceptOutcome.ACCEPTED)
    assert 9 == outcomes.count(AcceptOutcome.REJECTED)
    assert 3 == await total(store)


# -- deferral and the new fields -----------------------------------------------------


async def test_deferred_message_is_due_later_with_its_notes(
    store: Store, app: App, make: Make
) -> None:
    """due_at_ms defers the first claim; notes follow ``accepted`` in the timeline, queued."""
    notes = (("deferred", {"until_ms": T0 + 1000, "reason": "quiet hours"}), ("urgent", {}))
    message_id = await accepted_id(store, make(due_at_ms=T0 + 1000, notes=notes))

    early = await claim(store, T0 + 999)
    due = await claim(store, T0 + 1000)

    assert ([], [message_id]) == (early, due)
    assert [
        TimelineEntry(
            at_ms=T0, kind="accepted", status=MessageStatus.QUEUED, detail={"request_id": "req-1"}
        ),
        TimelineEntry(at_ms=T0, kind="deferred", status=MessageStatus.QUEUED, detail=notes[0][1]),
        TimelineEntry(at_ms=T0, kind="urgent", status=MessageStatus.QUEUED, detail={}),
    ] == (await store.timeline(message_id))[:3]


async def test_new_fields_round_trip(store: Store, app: App, make: Make) -> None:
    """Text, template, encoding, segments, urgency and validity read back as stored."""
    new = make(
        text="您好，张三", template="visit", encoding="ucs2", segments=3, urgent=True,
        expires_at_ms=T0 + 3_600_000,
    )  # fmt: skip

    message_id = await accepted_id(store, new)
    message = await message_of(store, message_id)

    assert ("您好，张三", "visit", "ucs2", 3, True, T0 + 3_600_000, 0, 0) == (
        message.text,
        message.template,
        message.encoding,
        message.segments,
        message.urgent,
        message.expires_at_ms,
        message.route_step,
        message.step_attempts,
    )
    assert message == await store.get_message(app.app_key, new.event.msg_key)


async def test_defaults_round_trip(
    store: Store, app: App, message_factory: Callable[..., NewMessage]
) -> None:
    """A NewMessage with no engine fields reads back with the defaults."""
    message = await message_of(store, await accepted_id(store, message_factory()))

    assert ("", "", "gsm7", 1, False, None) == (
        message.text,
        message.template,
        message.encoding,
        message.segments,
        message.urgent,
        message.expires_at_ms,
    )


async def test_claims_count_step_attempts_and_route_steps_restart_them(
    store: Store, app: App, make: Make
) -> None:
    """claim_due adds one to attempts and step_attempts; a route_step resets step_attempts."""
    message_id = await accepted_id(store, make())
    claimed = await store.claim_due(worker_id="w", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    await store.transition(
        message_id,
        to=MessageStatus.QUEUED,
        now_ms=T0 + 1,
        kind="retry",
        due_at_ms=T0 + 2,
        worker_id="w",
    )
    again = await store.claim_due(worker_id="w", now_ms=T0 + 2, lease_ms=LEASE_MS, limit=1)
    await store.transition(
        message_id, to=MessageStatus.QUEUED, now_ms=T0 + 3, kind="fallback", due_at_ms=T0 + 3,
        worker_id="w", route_step=1,
    )  # fmt: skip
    fell_back = await message_of(store, message_id)
    third = await store.claim_due(worker_id="w", now_ms=T0 + 3, lease_ms=LEASE_MS, limit=1)

    assert [(1, 1, 0), (2, 2, 0), (2, 0, 1), (3, 1, 1)] == [
        (m.attempts, m.step_attempts, m.route_step)
        for m in (claimed[0], again[0], fell_back, third[0])
    ]


# -- finding and counting ------------------------------------------------------------


async def test_find_messages_filters(store: Store, app: App, other_app: App, make: Make) -> None:
    """Each filter narrows the search; results are newest first."""
    a = await accepted_id(store, make(msg_key="a", accepted_at_ms=T0))
    b = await accepted_id(
        store, make(msg_key="b", accepted_at_ms=T0 + 10, mobile_receiver="+8613900000000")
    )
    c = await accepted_id(store, make(msg_key="c", accepted_at_ms=T0 + 20, app_key=OTHER_APP))
    d = await accepted_id(store, make(msg_key="d", accepted_at_ms=T0 + 30))
    await store.transition(d, to=MessageStatus.EXPIRED, now_ms=T0 + 40, kind="expired")

    async def ids(**filters: Any) -> list[int]:
        return [message.id for message in await store.find_messages(MessageQuery(**filters))]

    assert [d, c, b, a] == await ids()
    assert [d, b, a] == await ids(app_key=app.app_key)
    assert [c] == await ids(app_key=OTHER_APP)
    assert [d] == await ids(statuses=frozenset({MessageStatus.EXPIRED}))
    both = frozenset({MessageStatus.EXPIRED, MessageStatus.QUEUED})
    assert [d, c, b, a] == await ids(statuses=both)
    assert [c, a] == await ids(statuses=frozenset({MessageStatus.QUEUED}), receiver=RECEIVER)
    assert [c, b] == await ids(accepted_from_ms=T0 + 10, accepted_until_ms=T0 + 30)
    assert [] == await ids(app_key=OTHER_APP, statuses=frozenset({MessageStatus.EXPIRED}))


async def test_find_messages_pages_with_before_id(store: Store, app: App, make: Make) -> None:
    """limit cuts a page; before_id (the last id seen) gives the next one."""
    ids = [await accepted_id(store, make(msg_key=f"m{i}")) for i in range(5)]

    first = await store.find_messages(MessageQuery(app_key=app.app_key, limit=2))
    second = await store.find_messages(
        MessageQuery(app_key=app.app_key, limit=2, before_id=first[-1].id)
    )
    last = await store.find_messages(MessageQuery(limit=2, before_id=second[-1].id))

    assert [ids[4], ids[3], ids[2], ids[1], ids[0]] == [m.id for m in first + second + last]


async def test_count_by_status_with_ranges(
    store: Store, app: App, other_app: App, make: Make
) -> None:
    """accepted_from_ms is inclusive, accepted_until_ms exclusive; app narrows further."""
    for i, at in enumerate((T0, T0 + 10, T0 + 20)):
        await accepted_id(store, make(msg_key=f"m{i}", accepted_at_ms=at))
    await accepted_id(store, make(msg_key="o", accepted_at_ms=T0 + 10, app_key=OTHER_APP))

    def queued(counts: dict[MessageStatus, int]) -> int:
        assert sum(counts.values()) == counts[MessageStatus.QUEUED]
        return counts[MessageStatus.QUEUED]

    assert 3 == queued(await store.count_by_status(accepted_from_ms=T0 + 10))
    assert 3 == queued(await store.count_by_status(accepted_until_ms=T0 + 10 + 1))
    assert 1 == queued(await store.count_by_status(accepted_until_ms=T0 + 10))
    assert 1 == queued(
        await store.count_by_status(
            app.app_key, accepted_from_ms=T0 + 10, accepted_until_ms=T0 + 20
        )
    )
    assert 4 == queued(await store.count_by_status())


# -- requeue ------------------------------------------------------------------------


async def test_requeue_a_failed_message(store: Store, app: App, make: Make) -> None:
    """A failed message is queued again, due now, on route step 0, with a new validity."""
    message_id = await accepted_id(store, make())
    assert [message_id] == await claim(store, T0)
    await store.transition(
        message_id, to=MessageStatus.QUEUED, now_ms=T0 + 1, kind="fallback", worker_id="w",
        due_at_ms=T0 + 1, route_step=1,
    )  # fmt: skip
    await fail(store, message_id, now_ms=T0 + 3, error="no route")

    requeued = await store.requeue(message_id, now_ms=T0 + 100, expires_at_ms=T0 + 9_000, by="ops")
    message = await message_of(store, message_id)

    assert True is requeued
    assert (MessageStatus.QUEUED, T0 + 9_000, 0, 0, None, T0 + 100, 2) == (
        message.status,
        message.expires_at_ms,
        message.route_step,
        message.step_attempts,
        message.last_error,
        message.updated_at_ms,
        message.attempts,
    )
    expected = TimelineEntry(
        at_ms=T0 + 100,
        kind="requeued",
        status=MessageStatus.QUEUED,
        detail={"by": "ops", "previous_status": "failed", "previous_error": "no route"},
    )
    assert expected == (await store.timeline(message_id))[-1]
    assert [] == await claim(store, T0 + 99)
    assert [message_id] == await claim(store, T0 + 100)


async def test_requeue_an_unknown_message_is_refused(store: Store, app: App, make: Make) -> None:
    """An id no message has is answered False, and nothing is written."""
    message_id = await accepted_id(store, make())
    before = await store.timeline(message_id)

    assert False is await store.requeue(
        message_id + 1_000, now_ms=T0 + 5, expires_at_ms=T0 + 9, by="ops"
    )
    assert before == await store.timeline(message_id)
    assert 1 == await total(store)


async def test_requeue_an_expired_message(store: Store, app: App, make: Make) -> None:
    """An expired message may be requeued too."""
    message_id = await accepted_id(store, make())
    await store.transition(message_id, to=MessageStatus.EXPIRED, now_ms=T0 + 1, kind="expired")

    assert True is await store.requeue(message_id, now_ms=T0 + 2, expires_at_ms=T0 + 5, by="ops")
    assert MessageStatus.QUEUED == (await message_of(store, message_id)).status


@pytest.mark.parametrize(
    "status",
    [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SUBMITTED,
     MessageStatus.DELIVERED, MessageStatus.REJECTED],
)  # fmt: skip
async def test_requeue_refused_from_other_statuses(
    store: Store, app: App, make: Make, status: MessageStatus
) -> None:
    """Only failed and expired messages are requeued; otherwise False and nothing written."""
    message_id = await accepted_id(store, make())
    path = {
        MessageStatus.SENDING: [MessageStatus.SENDING],
        MessageStatus.SUBMITTED: [MessageStatus.SENDING, MessageStatus.SUBMITTED],
        MessageStatus.DELIVERED: [
            MessageStatus.SENDING,
            MessageStatus.SUBMITTED,
            MessageStatus.DELIVERED,
        ],
        MessageStatus.REJECTED: [MessageStatus.REJECTED],
    }.get(status, [])
    for step in path:
        if step == MessageStatus.SENDING:
            assert [message_id] == await claim(store, T0)
        else:
            assert await store.transition(message_id, to=step, now_ms=T0 + 1, kind=step.value)
    before = (await message_of(store, message_id), await store.timeline(message_id))
    assert status == before[0].status, "the message reached the status under test"

    refused = await store.requeue(message_id, now_ms=T0 + 5, expires_at_ms=T0 + 9, by="ops")

    assert False is refused
    assert before == (await message_of(store, message_id), await store.timeline(message_id))


async def test_requeue_unknown_message(store: Store, app: App) -> None:
    assert False is await store.requeue(404, now_ms=T0, expires_at_ms=T0, by="ops")


# -- templates ----------------------------------------------------------------------


def template(**overrides: Any) -> Template:
    fields: dict[str, Any] = {
        "name": "visit",
        "body": "{{ name }} is here",
        "app_key": "12345678",
        "source": "visitor",
        "action": "arrived",
        "event_type": "",
        "urgent": True,
        "limits": "hour=1",
        "created_at_ms": 10,
        "updated_at_ms": 10,
    }
    return Template(**(fields | overrides))


async def test_templates_crud(store: Store, app: App) -> None:
    """Templates are stored, listed by name, updated (created_at kept) and deleted."""
    visit = template()
    other = template(name="alpha", app_key="", source="", action="", urgent=False, limits="")
    await store.insert_template(visit)
    await store.insert_template(other)

    listed = await store.list_templates()
    updated = await store.update_template(template(body="new", created_at_ms=99, updated_at_ms=20))
    changed = await store.get_template("visit")
    deleted = await store.delete_template("alpha")

    assert [other, visit] == listed
    assert True is updated
    assert template(body="new", created_at_ms=10, updated_at_ms=20) == changed
    assert (True, False) == (deleted, await store.delete_template("alpha"))
    assert None is await store.get_template("alpha")
    assert False is await store.update_template(template(name="nope"))


async def test_template_conflicts(store: Store, app: App) -> None:
    """A taken name or selection key raises TemplateExists and changes nothing."""
    await store.insert_template(template())
    await store.insert_template(template(name="b", action="left"))

    with pytest.raises(TemplateExists):
        await store.insert_template(template(body="impostor"))
    with pytest.raises(TemplateExists):
        await store.insert_template(template(name="c"))
    with pytest.raises(TemplateExists):
        await store.update_template(template(name="b", body="moved"))

    assert [template(name="b", action="left"), template()] == await store.list_templates()


# -- opt-outs and callback URLs ------------------------------------------------------


async def test_opt_outs(store: Store, app: App) -> None:
    """Opt-outs are added once, listed newest first (per app with '*'), checked, removed."""
    mine = OptOut(app_key=app.app_key, receiver=RECEIVER, reason="asked", created_at_ms=1)
    everyone = OptOut(app_key="*", receiver="+8613900000000", reason="", created_at_ms=2)
    theirs = OptOut(app_key=OTHER_APP, receiver="+8613911111111", reason="", created_at_ms=3)

    added = [await store.add_opt_out(o) for o in (mine, everyone, theirs, mine)]

    assert [True, True, True, False] == added
    assert [theirs, everyone, mine] == await store.list_opt_outs()
    assert [everyone, mine] == await store.list_opt_outs(app.app_key)
    assert (True, True, False) == (
        await store.is_opted_out(app.app_key, RECEIVER),
        await store.is_opted_out("anyone", "+8613900000000"),
        await store.is_opted_out(app.app_key, "+8613911111111"),
    )
    assert (True, False) == (
        await store.remove_opt_out(app.app_key, RECEIVER),
        await store.remove_opt_out(app.app_key, RECEIVER),
    )
    assert False is await store.is_opted_out(app.app_key, RECEIVER)


async def test_callback_url(store: Store, app: App, app_factory: Callable[..., App]) -> None:
    """set_callback_url sets and clears the URL; apps read it back; unknown apps give None."""
    with_url = app_factory(app_key="22222222", callback_url=URL, created_at_ms=2_000_000_000_000)
    await store.insert_app(with_url)

    set_ = await store.set_callback_url(app.app_key, URL)
    cleared = await store.set_callback_url("22222222", None)

    assert dataclasses.replace(app, callback_url=URL) == set_
    assert [set_, dataclasses.replace(with_url, callback_url=None)] == await store.list_apps()
    assert cleared == await store.get_app("22222222")
    assert None is await store.set_callback_url("99999999", URL)


# -- status events ------------------------------------------------------------------


async def deliver(store: Store, message_id: int) -> None:
    """queued → sending → submitted → delivered."""
    assert [message_id] == await claim(store, T0 + 1)
    assert await store.transition(
        message_id, to=MessageStatus.SUBMITTED, now_ms=T0 + 2, kind="submitted",
        detail={"ref": "r1"}, worker_id="w", channel="smpp",
    )  # fmt: skip
    assert await store.transition(
        message_id, to=MessageStatus.DELIVERED, now_ms=T0 + 3, kind="receipt", detail={"part": 1}
    )


async def test_no_status_events_without_a_callback_url(store: Store, app: App, make: Make) -> None:
    """An app without a callback URL gets no status events."""
    await deliver(store, await accepted_id(store, make()))

    assert [] == await events(store)


async def test_status_events_once_per_change(store: Store, app: App, make: Make) -> None:
    """Each status change but sending makes one event, with its timeline entry's detail."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    await deliver(store, message_id)

    found = await events(store)

    assert [
        (MessageStatus.QUEUED, T0, {"request_id": "req-1"}),
        (MessageStatus.SUBMITTED, T0 + 2, {"ref": "r1"}),
        (MessageStatus.DELIVERED, T0 + 3, {"part": 1}),
    ] == [(event.status, event.at_ms, event.detail) for event in found]
    assert {(message_id, app.app_key, "visit-1", URL, 1)} == {
        (e.message_id, e.app_key, e.msg_key, e.url, e.attempts) for e in found
    }
    assert sorted(e.id for e in found) == [e.id for e in found]
    assert [] == await events(store)  # Leased now.


async def test_status_events_follow_the_url_at_the_change(
    store: Store, app: App, make: Make
) -> None:
    """The URL is the app's at each change: none before it was set, the new one after."""
    message_id = await accepted_id(store, make())
    await store.set_callback_url(app.app_key, URL)
    assert [message_id] == await claim(store, T0 + 1)
    await store.transition(message_id, to=MessageStatus.SUBMITTED, now_ms=T0 + 2, kind="submitted")
    await store.set_callback_url(app.app_key, URL + "/v2")
    await store.transition(message_id, to=MessageStatus.FAILED, now_ms=T0 + 3, kind="failed")

    found = await events(store)

    assert [(MessageStatus.SUBMITTED, URL), (MessageStatus.FAILED, URL + "/v2")] == [
        (event.status, event.url) for event in found
    ]


async def test_retries_requeues_and_rejections_make_events(
    store: Store, app: App, make: Make
) -> None:
    """A retry (queued via transition), an operator's requeue and a rejection each report."""
    await store.set_callback_url(app.app_key, URL)
    first = await accepted_id(store, make(msg_key="a"))
    second = await accepted_id(store, make(msg_key="b"))
    await events(store)  # The two accepts.
    assert sorted([first, second]) == sorted(await claim(store, T0))
    await store.transition(
        first, to=MessageStatus.QUEUED, now_ms=T0 + 1, kind="retry", due_at_ms=T0 + 9
    )
    await store.transition(second, to=MessageStatus.EXPIRED, now_ms=T0 + 1, kind="expired")
    await store.requeue(second, now_ms=T0 + 2, expires_at_ms=T0 + 99, by="ops")
    await store.transition(second, to=MessageStatus.REJECTED, now_ms=T0 + 3, kind="rejected")

    found = [(event.message_id, event.status) for event in await events(store)]

    assert [
        (first, MessageStatus.QUEUED),
        (second, MessageStatus.EXPIRED),
        (second, MessageStatus.QUEUED),
        (second, MessageStatus.REJECTED),
    ] == found


async def test_receipt_conclusion_makes_an_event(store: Store, app: App, make: Make) -> None:
    """A message concluded by its receipts reports the final status with its detail."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    assert [message_id] == await claim(store, T0)
    await store.add_segments(message_id, attempt=1, channel="smpp", total=1, now_ms=T0 + 1)
    await store.segment_submitted(message_id, attempt=1, part=1, carrier_id="c1", now_ms=T0 + 2)
    await store.transition(
        message_id, to=MessageStatus.SUBMITTED, now_ms=T0 + 3, kind="submitted", worker_id="w"
    )
    await store.apply_receipt(
        channel="smpp", carrier_id="c1", state=SegmentState.DELIVERED, error=None, now_ms=T0 + 4
    )

    last = (await events(store))[-1]

    assert (MessageStatus.DELIVERED, T0 + 4) == (last.status, last.at_ms)
    assert (await store.timeline(message_id))[-1].detail == last.detail


async def test_status_events_are_leased_exclusively(
    store: Store, database_url: str, app: App, make: Make
) -> None:
    """Senders claiming at once, through two stores, never get the same event."""
    await store.set_callback_url(app.app_key, URL)
    await asyncio.gather(*(accepted_id(store, make(msg_key=f"m{i}")) for i in range(40)))
    other = create_store(database_url)
    await other.open()
    try:
        batches = await asyncio.gather(
            *(
                claimer.claim_status_events(
                    worker_id=f"s{n}", now_ms=T0, lease_ms=LEASE_MS, limit=5
                )
                for n in range(6)
                for claimer in (store, other)
            )
        )
    finally:
        await other.close()

    claimed = [event.id for batch in batches for event in batch]
    assert 40 == len(claimed) == len(set(claimed))


async def test_expired_event_lease_is_claimed_again(store: Store, app: App, make: Make) -> None:
    """An event is not claimed while leased, and is once the lease runs out (attempt 2)."""
    await store.set_callback_url(app.app_key, URL)
    await accepted_id(store, make())
    first = await events(store, T0, worker="a")

    during = await events(store, T0 + LEASE_MS - 1, worker="b")
    after = await events(store, T0 + LEASE_MS, worker="b")

    assert ([1], [], [2]) == ([e.attempts for e in first], during, [e.attempts for e in after])
    assert [first[0].id] == [e.id for e in after]


async def test_status_event_done(store: Store, app: App, make: Make) -> None:
    """A delivered event is never sent again; the timeline says so."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    [event] = await events(store, T0, worker="a")

    await store.status_event_done(event.id, now_ms=T0 + 5, worker_id="a", status_code=204)

    assert [] == await events(store, T0 + 10 * LEASE_MS)
    expected = TimelineEntry(
        at_ms=T0 + 5,
        kind="callback_delivered",
        status=MessageStatus.QUEUED,
        detail={"event_id": event.id, "status_code": 204, "attempt": 1},
    )
    assert expected == (await store.timeline(message_id))[-1]


async def test_status_event_failed_then_retried(store: Store, app: App, make: Make) -> None:
    """A failed attempt is due again at retry_at_ms, with the attempt in the timeline."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    [event] = await events(store, T0, worker="a")

    await store.status_event_failed(
        event.id, now_ms=T0 + 5, worker_id="a", error="HTTP 503", retry_at_ms=T0 + 1000
    )

    assert [] == await events(store, T0 + 999)
    assert [(event.id, 2)] == [(e.id, e.attempts) for e in await events(store, T0 + 1000)]
    expected = TimelineEntry(
        at_ms=T0 + 5,
        kind="callback_failed",
        status=MessageStatus.QUEUED,
        detail={"event_id": event.id, "attempt": 1, "error": "HTTP 503", "retry_at_ms": T0 + 1000},
    )
    assert expected == (await store.timeline(message_id))[-1]


async def test_status_event_given_up(store: Store, app: App, make: Make) -> None:
    """With no retry time the event is given up: never claimed again."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    [event] = await events(store, T0, worker="a")

    await store.status_event_failed(
        event.id, now_ms=T0 + 5, worker_id="a", error="gone", retry_at_ms=None
    )

    assert [] == await events(store)
    last = (await store.timeline(message_id))[-1]
    assert ("callback_failed", None) == (last.kind, last.detail["retry_at_ms"])


async def test_status_event_outcome_needs_the_lease(store: Store, app: App, make: Make) -> None:
    """done/failed from a sender that lost the lease change nothing."""
    await store.set_callback_url(app.app_key, URL)
    message_id = await accepted_id(store, make())
    [event] = await events(store, T0, worker="a")
    await events(store, T0 + LEASE_MS, worker="b")  # b takes it over
    before = await store.timeline(message_id)

    await store.status_event_done(
        event.id, now_ms=T0 + LEASE_MS + 1, worker_id="a", status_code=200
    )
    await store.status_event_failed(
        event.id, now_ms=T0 + LEASE_MS + 1, worker_id="a", error="x", retry_at_ms=None
    )

    assert before == await store.timeline(message_id)
    assert [(event.id, 3)] == [(e.id, e.attempts) for e in await events(store, T0 + 2 * LEASE_MS)]


# -- migration 0003 -----------------------------------------------------------------


def raw_execute(database_url: str, statements: list[str]) -> None:
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    with psycopg.connect(database_url) as conn:
        for statement in statements:
            conn.execute(statement.encode())


async def test_migration_0003_over_a_database_with_messages(
    database_url: str, monkeypatch: pytest.MonkeyPatch, make: Make
) -> None:
    """A 0002 database holding a message migrates; the message reads back with defaults."""
    real = migrations.discover

    def up_to_0002(dialect: str) -> list[Migration]:
        return real(dialect)[:2]

    monkeypatch.setattr(migrations, "discover", up_to_0002)
    old = create_store(database_url)
    await old.open()
    try:
        assert ["0001_initial", "0002_segments"] == await old.migrate()
    finally:
        await old.close()
    raw_execute(
        database_url,
        [
            "INSERT INTO apps (app_key, name, secret, enabled, created_at_ms)"
            " VALUES ('12345678', 'old', 's', TRUE, 1)",
            "INSERT INTO messages (app_key, msg_key, fingerprint, request_id, status,"
            " accepted_at_ms, updated_at_ms, attempts, event_time_millis, source, action,"
            " mobile_receiver, event_type, json_data, sender)"
            f" VALUES ('12345678', 'old-1', 'fp', 'r', 'queued', {T0}, {T0}, 0, 1, 's', 'a',"
            f" '{RECEIVER}', 't', '{{}}', 1)",
        ],
    )
    monkeypatch.setattr(migrations, "discover", real)

    store = create_store(database_url)
    await store.open()
    try:
        # 0003 first; later migrations follow it (an app from before them is on the default rate).
        assert "0003_engine" == (await store.migrate())[0]
        message = await store.get_message("12345678", "old-1")
        app = await store.get_app("12345678")
        fresh = await store.accept(make(msg_key="new-1"), checks(CapRule("app", "hour", 2)))
    finally:
        await store.close()

    assert message is not None and app is not None
    assert (None, None) == (app.rate_limit, app.rate_burst)
    assert ("", "", "gsm7", 1, False, None, 0, 0) == (
        message.text,
        message.template,
        message.encoding,
        message.segments,
        message.urgent,
        message.expires_at_ms,
        message.route_step,
        message.step_attempts,
    )
    assert None is app.callback_url
    assert AcceptOutcome.ACCEPTED == fresh.outcome
