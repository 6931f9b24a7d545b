"""The audit trail on SQLite and PostgreSQL: the store writes a record with each change."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from iwork_mc import audit
from iwork_mc.apps import App
from iwork_mc.audit import AuditAction, AuditQuery, AuditRecord
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.policies import OptOut
from iwork_mc.store import Store, TemplateExists
from iwork_mc.templates import Template

T0 = 1_700_000_001_000
OPERATOR = "operator:alice"


def template(name: str = "welcome", **fields: object) -> Template:
    values: dict[str, object] = {
        "name": name, "body": "hello {{ name }}", "source": "visitor",
        "created_at_ms": T0, "updated_at_ms": T0,
    }  # fmt: skip
    return Template(**(values | fields))  # type: ignore[arg-type]


async def trail(store: Store, **filters: object) -> list[tuple[str, str, str]]:
    records = await store.list_audit(AuditQuery(**filters))  # type: ignore[arg-type]
    return [(r.actor, r.action.value, r.target) for r in records]


async def test_every_change_is_recorded_with_who_when_and_what(
    store: Store, app_factory: Callable[..., App], message_factory: Callable[..., NewMessage]
) -> None:
    """Apps, secrets, callbacks, templates, opt-outs and retries: one record each, newest first."""
    app = app_factory()
    key = app.app_key
    me = "app:" + key
    await store.insert_app(app, audit=audit.app_created(OPERATOR, T0, app_key=key, name=app.name))
    await store.set_app_enabled(key, False, audit=audit.app_enabled(OPERATOR, T0 + 1, app_key=key,
                                                                     enabled=False))  # fmt: skip
    await store.rotate_secret(
        key, "f" * 32, T0 + 99,
        audit=audit.secret_rotated(OPERATOR, T0 + 2, app_key=key, previous_valid_until_ms=T0 + 99),
    )  # fmt: skip
    url = "https://user:pw@hooks.example/iwork?token=s3cret"
    await store.set_callback_url(key, url, audit=audit.callback_url_set(me, T0 + 3, app_key=key,
                                                                        url=url))  # fmt: skip
    created = template()
    await store.insert_template(created, audit=audit.template_changed(
        me, T0 + 4, AuditAction.TEMPLATE_CREATE, created))  # fmt: skip
    updated = dataclasses.replace(created, body="hi {{ name }}")
    assert await store.update_template(updated, audit=audit.template_changed(
        me, T0 + 5, AuditAction.TEMPLATE_UPDATE, updated))  # fmt: skip
    assert await store.delete_template("welcome", audit=audit.template_deleted(
        me, T0 + 6, name="welcome"))  # fmt: skip
    number = "+8613912345678"
    opt_out = OptOut(app_key=key, receiver=number, reason="", created_at_ms=T0)
    assert await store.add_opt_out(opt_out, audit=audit.opt_out_added(
        me, T0 + 7, app_key=key, receiver=number))  # fmt: skip
    assert await store.remove_opt_out(key, number, audit=audit.opt_out_removed(
        me, T0 + 8, app_key=key, receiver=number))  # fmt: skip
    accepted = await store.accept(message_factory())
    [claimed] = await store.claim_due(worker_id="w", now_ms=T0, lease_ms=60_000, limit=1)
    await store.transition(claimed.id, to=MessageStatus.FAILED, now_ms=T0, kind="failed")
    assert await store.requeue(
        accepted.message_id, now_ms=T0 + 9, expires_at_ms=T0 + 1_000, by="cli",
        audit=audit.message_requeued(OPERATOR, T0 + 9, app_key=key, msg_key="visit-1",
                                     expires_at_ms=T0 + 1_000),
    )  # fmt: skip

    records = await store.list_audit(AuditQuery())
    assert [
        (OPERATOR, "message.retry", f"message:{key}/visit-1"),
        (me, "opt_out.remove", f"opt_out:{key}/139****5678"),
        (me, "opt_out.add", f"opt_out:{key}/139****5678"),
        (me, "template.delete", "template:welcome"),
        (me, "template.update", "template:welcome"),
        (me, "template.create", "template:welcome"),
        (me, "app.callback_set", f"app:{key}"),
        (OPERATOR, "app.rotate_secret", f"app:{key}"),
        (OPERATOR, "app.disable", f"app:{key}"),
        (OPERATOR, "app.create", f"app:{key}"),
    ] == [(r.actor, r.action.value, r.target) for r in records]
    assert list(range(T0 + 9, T0 - 1, -1)) == [r.at_ms for r in records]
    by_action = {r.action: r.detail for r in records}
    # Never a secret, a credential, a callback token or a full number.
    flat = repr(records)
    for secret in ("f" * 32, app.secret, "s3cret", "pw@", "13912345678"):
        assert secret not in flat
    assert {"url": "https://hooks.example/iwork"} == by_action[AuditAction.CALLBACK_SET]
    assert {"previous_valid_until_ms": T0 + 99} == by_action[AuditAction.SECRET_ROTATE]
    assert (
        by_action[AuditAction.TEMPLATE_CREATE]["body_sha256"]
        != (by_action[AuditAction.TEMPLATE_UPDATE]["body_sha256"])
    )


async def test_a_change_not_made_leaves_no_record(store: Store, app: App) -> None:
    """No-ops (unknown app, opt-out already there, template taken) write no audit record."""
    key = app.app_key
    assert None is await store.set_app_enabled(
        "00000000", False, audit=audit.app_enabled(OPERATOR, T0, app_key="00000000", enabled=False)
    )
    first = template()
    await store.insert_template(first)
    with pytest.raises(TemplateExists):
        await store.insert_template(first, audit=audit.template_changed(
            OPERATOR, T0, AuditAction.TEMPLATE_CREATE, first))  # fmt: skip
    other = template("other", source="desk")
    await store.insert_template(other)
    clash = dataclasses.replace(other, source="visitor")
    with pytest.raises(TemplateExists):
        await store.update_template(clash, audit=audit.template_changed(
            OPERATOR, T0, AuditAction.TEMPLATE_UPDATE, clash))  # fmt: skip
    opt_out = OptOut(app_key=key, receiver="+8613912345678", reason="", created_at_ms=T0)
    await store.add_opt_out(opt_out)
    assert not await store.add_opt_out(opt_out, audit=audit.opt_out_added(
        OPERATOR, T0, app_key=key, receiver=opt_out.receiver))  # fmt: skip
    assert not await store.remove_opt_out(key, "+8613700000000", audit=audit.opt_out_removed(
        OPERATOR, T0, app_key=key, receiver="+8613700000000"))  # fmt: skip
    assert not await store.delete_template("nope", audit=audit.template_deleted(
        OPERATOR, T0, name="nope"))  # fmt: skip
    assert [] == await store.list_audit(AuditQuery())


async def test_list_audit_filters_and_pages(store: Store) -> None:
    """since, actor and action narrow the trail; before_id pages through it."""
    for n, (actor, action) in enumerate([
        ("operator:a", AuditAction.SIGN_IN), ("app:1", AuditAction.OPT_OUT_ADD),
        ("operator:a", AuditAction.APP_CREATE), ("operator:b", AuditAction.SIGN_IN),
    ]):  # fmt: skip
        await store.add_audit(
            AuditRecord(at_ms=T0 + n, actor=actor, action=action, target="console")
        )
    assert [("operator:b", "console.sign_in", "console"), ("operator:a", "console.sign_in",
            "console")] == await trail(store, action=AuditAction.SIGN_IN)  # fmt: skip
    assert ["app.create", "console.sign_in"] == [
        action for _, action, _ in await trail(store, actor="operator:a")
    ]
    assert 2 == len(await trail(store, since_ms=T0 + 2))
    page = await store.list_audit(AuditQuery(limit=3))
    rest = await store.list_audit(AuditQuery(before_id=page[-1].id))
    assert (3, 1, "operator:a") == (len(page), len(rest), rest[0].actor)
