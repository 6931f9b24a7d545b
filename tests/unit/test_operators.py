"""Operator names, passwords and their argon2 hashes; console sessions and the chart (pure)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from iwork_mc.console.charts import bar_chart
from iwork_mc.console.sessions import Session, SessionCodec, load_secret_key
from iwork_mc.messages import Activity
from iwork_mc.operators import (
    InvalidOperator,
    Operator,
    check_name,
    check_password,
    hash_password,
    verify_password,
)


@pytest.mark.parametrize("name", ["", "Alice", "-x", "a b", "a" * 65, "ä"])
def test_bad_operator_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidOperator):
        check_name(name)


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "x" * 1025])
def test_passwords_too_short_or_too_long_are_refused(password: str) -> None:
    with pytest.raises(InvalidOperator):
        check_password(password)


def test_a_hash_verifies_only_its_password() -> None:
    """The hash is argon2id and never the password; a missing operator never verifies."""
    hashed = hash_password("correct horse battery")
    operator = Operator(name="alice", password_hash=hashed, created_at_ms=0)

    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert verify_password(operator, "correct horse battery")
    assert not verify_password(operator, "correct horse batterY")
    assert not verify_password(None, "correct horse battery")
    assert not verify_password(operator, "x" * 5000)
    assert "argon2" not in repr(operator)


def test_a_session_survives_its_cookie_and_nothing_else() -> None:
    codec = SessionCodec("k" * 64, max_age_s=60)
    session = Session.signed_in("alice")
    value = codec.dumps(session)

    assert session == codec.loads(value)
    assert None is codec.loads(value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert None is SessionCodec("other" * 10, max_age_s=60).loads(value)
    assert None is codec.loads("")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None)
    assert not session.csrf_ok(Session.anonymous().csrf)


def test_an_expired_session_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec("k" * 64, max_age_s=60)
    value = codec.dumps(Session.signed_in("alice"))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 120)
    assert None is codec.loads(value)


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = load_secret_key("", tmp_path / "var")
    second = load_secret_key("", tmp_path / "var")

    assert first == second and len(first) == 64
    assert 0o600 == (tmp_path / "var" / "console-secret.key").stat().st_mode & 0o777
    assert "given" == load_secret_key("given", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_the_chart_scales_to_the_busiest_bucket_and_fills_gaps() -> None:
    activity = [
        Activity(start_ms=0, accepted=4, delivered=2),
        Activity(start_ms=2000, accepted=1, delivered=0),
    ]
    chart = bar_chart(activity, since_ms=0, bucket_ms=1000, buckets=3, hour_of=[7, 8, 9])

    assert 4 == chart.peak
    assert [4, 0, 1] == [bar.value for bar in chart.accepted]
    assert [2, 0, 0] == [bar.value for bar in chart.delivered]
    assert chart.accepted[0].height == 2 * chart.delivered[0].height
    assert chart.accepted[0].y + chart.accepted[0].height == chart.baseline
    assert ["07h", "08h", "09h"] == [bar.label for bar in chart.accepted]


@pytest.mark.parametrize(
    "name", ["console_session_s", "console_max_failed_sign_ins", "console_lockout_s"]
)
def test_console_durations_and_counts_must_be_positive(name: str) -> None:
    """A zero or negative session, lock-out or failure count is refused, naming the setting."""
    from iwork_mc.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=f"setting {name}: must be at least 1"):
        Settings.load({f"IWORK_MC_{name.upper()}": "0"})
