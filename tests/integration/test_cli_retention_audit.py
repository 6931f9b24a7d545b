"""``iwork-mc messages purge`` and ``iwork-mc audit``, in-process on each backend."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from test_cli_admin import (  # the fixtures and seeding of the admin CLI tests
    APP_KEY,
    OTHER_APP,
    _keep_structlog_config,  # noqa: F401 (a fixture)
    as_json,
    db,  # noqa: F401 (a fixture)
    error,
    iwork,  # noqa: F401 (a fixture)
    seed_messages,
    with_store,
)
from typer.testing import Result

from iwork_mc.audit import AuditQuery
from iwork_mc.store import Store


@pytest.fixture(autouse=True)
def _operator(monkeypatch: pytest.MonkeyPatch) -> None:
    # getpass.getuser() reads LOGNAME first: the audit actor of every command here.
    monkeypatch.setenv("LOGNAME", "alice")


def remaining(url: str) -> list[str]:
    async def keys(store: Store) -> list[str]:
        found = []
        for app_key in (APP_KEY, OTHER_APP):
            for msg_key in ("m-failed", "m-expired", "m-queued", "m-other"):
                if await store.get_message(app_key, msg_key) is not None:
                    found.append(msg_key)
        return sorted(found)

    return with_store(url, keys)


def test_purge_deletes_ended_messages_and_keeps_those_in_flight(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """A dry run counts; a purge by app deletes its ended messages in batches, each audited."""
    seed_messages(db)
    dry = as_json(iwork(db, "messages", "purge", "--app", APP_KEY, "--dry-run", "--json"))
    assert {"ended": 2, "in_flight_kept": 1, "deleted": 0, "dry_run": True} == dry
    assert ["m-expired", "m-failed", "m-other", "m-queued"] == remaining(db)

    human = iwork(db, "messages", "purge", "--app", APP_KEY, "--batch", "1").stdout
    assert "purged 2 message(s); 1 matching message(s) still in flight kept" in human
    assert ["m-other", "m-queued"] == remaining(db)
    purges = with_store(db, lambda store: store.list_audit(AuditQuery()))
    assert [("operator:alice", "message.purge", f"messages:app_key={APP_KEY}")] * 2 == [
        (r.actor, r.action.value, r.target) for r in purges
    ]
    assert [1, 1] == [r.detail["deleted"] for r in purges]


def test_purge_refuses_a_message_in_flight(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """Named by msg_key, a message that has not ended is refused (exit 1) and kept."""
    ids = seed_messages(db)
    refused = iwork(db, "messages", "purge", "--app", APP_KEY, "--msg-key", "m-queued", code=1)
    assert (
        f"error: message {ids['m-queued']} (msg_key m-queued) is still in flight (queued): "
        "it can be purged once it has ended"
    ) == error(refused)
    assert "m-queued" in remaining(db)
    one = as_json(iwork(db, "messages", "purge", "--app", APP_KEY, "--msg-key", "m-failed",
                        "--json"))  # fmt: skip
    assert {"ended": 1, "in_flight_kept": 0, "deleted": 1, "dry_run": False} == one
    assert "m-failed" not in remaining(db)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--older-than", "-3d"], 2, "age '-3d' is negative: give how long ago, e.g. 90d"),
        (["--older-than", "3 years"], 2, "age '3 years': give a whole number and a unit"),
        (["--msg-key", "m-failed"], 2, "a msg_key names a message only with its app"),
        ([], 2, "select what to purge: an app, a msg_key or an age"),
        (["--app", "99999999"], 1, "no app with app_key 99999999"),
        (["--app", APP_KEY, "--msg-key", "nope"], 1, "no message with msg_key nope"),
        (["--app", APP_KEY, "--batch", "0"], 2, "--batch"),
    ],
)
def test_purge_bad_input_is_refused_clearly(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
    args: list[str],
    code: int,
    message: str,
) -> None:
    """Each mistake is one error line (no traceback) and deletes nothing."""
    seed_messages(db)
    result = iwork(db, "messages", "purge", *args, code=code)
    assert message in error(result)
    assert "Traceback" not in result.stderr
    assert 4 == len(remaining(db))


def test_purge_by_age(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """--older-than takes every app's messages that ended that long ago (the seed's are old)."""
    seed_messages(db)
    assert (
        0 == as_json(iwork(db, "messages", "purge", "--older-than", "100000w", "--json"))["deleted"]
    )
    assert 2 == as_json(iwork(db, "messages", "purge", "--older-than", "1d", "--json"))["deleted"]
    assert ["m-other", "m-queued"] == remaining(db)


def test_operator_changes_are_in_the_audit_trail(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """CLI changes are recorded as the OS user; `audit` filters and never shows a secret."""
    created = as_json(iwork(db, "apps", "create", "shop", "--json"))
    key = created["app_key"]
    rotated = as_json(iwork(db, "apps", "rotate-secret", key, "--json"))
    iwork(db, "apps", "set-callback", key, "https://hooks.example/x?token=t0ps3cret")
    iwork(db, "opt-outs", "add", "13912345678", "--app", key)
    iwork(db, "apps", "set-rate", key, "--rate", "5", "--burst", "10")
    iwork(db, "apps", "disable", key)

    trail = as_json(iwork(db, "audit", "--json"))
    assert [
        ("app.disable", f"app:{key}"),
        ("app.rate_set", f"app:{key}"),
        ("opt_out.add", f"opt_out:{key}/139****5678"),
        ("app.callback_set", f"app:{key}"),
        ("app.rotate_secret", f"app:{key}"),
        ("app.create", f"app:{key}"),
    ] == [(r["action"], r["target"]) for r in trail]
    assert {"operator:alice"} == {r["actor"] for r in trail}
    text = json.dumps(trail) + iwork(db, "audit").stdout
    for secret in (created["secret"], rotated["secret"], "t0ps3cret", "13912345678"):
        assert secret not in text

    only = as_json(iwork(db, "audit", "--action", "app.create", "--since", "1h", "--json"))
    assert ["app.create"] == [r["action"] for r in only]
    assert [] == as_json(iwork(db, "audit", "--actor", "app:nobody", "--json"))
    assert [] == as_json(iwork(db, "audit", "--since", "2999-01-01", "--json"))
    bad = iwork(db, "audit", "--action", "app.explode", code=2)
    assert "--action 'app.explode': use one of app.create" in error(bad)
    bad_since = iwork(db, "audit", "--since", "yesterday", code=2)
    assert "--since 'yesterday'" in error(bad_since)


def test_a_redacted_message_shows_it_and_cannot_be_retried(
    db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """`messages show` has the redacted entry (which fields, by whom); `retry` says why not."""
    seed_messages(db)

    async def redact(store: Store) -> int:
        return await store.redact_ended(
            ended_before_ms=2**62, now_ms=1_800_000_000_000, limit=10, by="retention"
        )

    assert 2 == with_store(db, redact)
    shown = as_json(iwork(db, "messages", "show", "m-failed", "--app-key", APP_KEY, "--json"))
    assert ("138****0001", "", 1_800_000_000_000) == (
        shown["receiver"], shown["text"], shown["redacted_at_ms"]
    )  # fmt: skip
    assert {"kind": "redacted", "status": "failed",
            "detail": {"fields": ["mobile_receiver", "json_data", "text"], "by": "retention"},
            } == {k: shown["timeline"][-1][k] for k in ("kind", "status", "detail")}  # fmt: skip
    refused = iwork(db, "messages", "retry", APP_KEY, "m-failed", code=1)
    assert "was redacted by retention: its receiver and data are gone" in error(refused)
