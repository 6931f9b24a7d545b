"""Retention and audit rules that need no database: periods, ages, selections, records."""

from __future__ import annotations

import pytest

from iwork_mc import audit
from iwork_mc.config import ConfigError, Settings
from iwork_mc.retention import EndedSelection, RetentionError, RetentionPolicy, parse_age_ms


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IWORK_MC_RETENTION_PERSONAL_DATA_S": "-1"},
         "setting retention_personal_data_s: must be at least 0 (got -1)"),
        ({"IWORK_MC_RETENTION_MESSAGES_S": "-86400"},
         "setting retention_messages_s: must be at least 0 (got -86400)"),
        ({"IWORK_MC_RETENTION_BATCH": "0"}, "setting retention_batch: must be at least 1 (got 0)"),
        ({"IWORK_MC_SANDBOX_MAX_BYTES": "0"}, "setting sandbox_max_bytes: must be at least 1 (got 0)"),
        ({"IWORK_MC_SANDBOX_BACKUPS": "-2"}, "setting sandbox_backups: must be at least 0 (got -2)"),
    ],
)  # fmt: skip
def test_bad_retention_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    """Negative periods and empty batches are refused at load, naming the setting."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message == str(caught.value)


def test_retention_settings_become_the_policy() -> None:
    """Days of personal data, a year of messages: the cutoffs count back from now."""
    settings = Settings.load(
        {
            "IWORK_MC_RETENTION_PERSONAL_DATA_S": "2592000",
            "IWORK_MC_RETENTION_MESSAGES_S": "31536000",
        }
    )
    policy = settings.retention
    assert (1_000_000_000_000 - 2_592_000_000, 1_000_000_000_000 - 31_536_000_000) == (
        policy.redact_before_ms(1_000_000_000_000),
        policy.delete_before_ms(1_000_000_000_000),
    )
    assert not Settings().retention.active
    assert None is Settings().retention.redact_before_ms(5)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("45s", 45_000), ("30m", 1_800_000), ("12h", 43_200_000), ("90d", 7_776_000_000),
     ("2w", 1_209_600_000), (" 0d ", 0)],
)  # fmt: skip
def test_ages(text: str, ms: int) -> None:
    assert ms == parse_age_ms(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [("-3d", "is negative"), ("3", "a whole number and a unit"), ("1.5d", "a whole number"),
     ("3y", "a unit s, m, h, d or w"), ("", "a whole number")],
)  # fmt: skip
def test_bad_ages(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        parse_age_ms(text)


def test_a_purge_must_select_something() -> None:
    """Nothing selected, or a msg_key without its app, is refused."""
    with pytest.raises(RetentionError, match="select what to purge"):
        EndedSelection()
    with pytest.raises(RetentionError, match="only with its app"):
        EndedSelection(msg_key="k", ended_before_ms=5)
    assert {"app_key": "a", "msg_key": "k", "ended_before_ms": None} == EndedSelection(
        app_key="a", msg_key="k"
    ).as_params()


def test_policy_batch_must_be_positive() -> None:
    with pytest.raises(RetentionError, match="batch must be at least 1"):
        RetentionPolicy(batch=0)


def test_callback_audit_keeps_no_credentials_or_query() -> None:
    """A callback URL is recorded by scheme, host, port and path only."""
    record = audit.callback_url_set(
        "app:1", 5, app_key="1", url="https://u:p@hooks.example:8443/in?token=x#y"
    )
    assert {"url": "https://hooks.example:8443/in"} == record.detail


def test_operator_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "bob")
    assert "operator:bob" == audit.operator_actor()
    assert "operator:carol" == audit.operator_actor("carol")
