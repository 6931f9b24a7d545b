"""Unit tests for iwork_mc.apps: app keys, secrets and secret rotation."""

from __future__ import annotations

import re

import pytest

from iwork_mc.apps import App, is_app_key_shaped, new_app_key, new_secret

CURRENT = "c" * 32
PREVIOUS = "p" * 32
EXPIRES = 1_700_000_000_000


def _app(**overrides: object) -> App:
    fields: dict[str, object] = {
        "app_key": "12345678",
        "name": "visitor-system",
        "secret": CURRENT,
        "enabled": True,
        "created_at_ms": 1_600_000_000_000,
        "previous_secret": PREVIOUS,
        "previous_secret_expires_at_ms": EXPIRES,
    }
    return App(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "now", [EXPIRES - 1, EXPIRES - 3_600_000], ids=["last-ms", "an-hour-before"]
)
def test_previous_secret_valid_during_grace(now: int) -> None:
    """During the grace period both secrets are valid, the current one first."""
    assert (CURRENT, PREVIOUS) == _app().valid_secrets(now)


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + 1], ids=["at-expiry", "after"])
def test_previous_secret_invalid_after_grace(now: int) -> None:
    """From the expiry instant on, only the current secret is valid."""
    assert (CURRENT,) == _app().valid_secrets(now)


@pytest.mark.parametrize(
    "overrides",
    [
        {"previous_secret": None, "previous_secret_expires_at_ms": None},
        {"previous_secret": None},
        {"previous_secret_expires_at_ms": None},
    ],
    ids=["never-rotated", "no-previous", "no-expiry"],
)
def test_only_current_secret_without_complete_rotation(overrides: dict[str, object]) -> None:
    """Without both a previous secret and its expiry, only the current secret is valid."""
    assert (CURRENT,) == _app(**overrides).valid_secrets(EXPIRES - 1)


@pytest.mark.parametrize("render", [repr, str, lambda a: f"{a}", lambda a: repr([a])])
def test_repr_hides_secrets(render: object) -> None:
    """Neither secret appears in the repr, str or f-string of an app."""
    text = render(_app())  # type: ignore[operator]

    assert (False, False, True) == (CURRENT in text, PREVIOUS in text, "12345678" in text)


def test_repr_shows_identity() -> None:
    """The repr names the app_key, name and enabled flag."""
    assert "App(app_key='12345678', name='visitor-system', enabled=True)" == repr(_app())


def test_new_app_key_shape() -> None:
    """A new app_key is 8 digits without a leading zero, like TOP's ``12345678``."""
    keys = [new_app_key() for _ in range(200)]

    assert [] == [k for k in keys if not re.fullmatch(r"[1-9][0-9]{7}", k)]


def test_new_secret_shape() -> None:
    """A new secret is 32 lower-case hex characters."""
    secrets = [new_secret() for _ in range(200)]

    assert [] == [s for s in secrets if not re.fullmatch(r"[0-9a-f]{32}", s)]


def test_new_values_are_random() -> None:
    """Successive secrets differ, and app keys are not all the same."""
    assert (100, True) == (
        len({new_secret() for _ in range(100)}),
        len({new_app_key() for _ in range(100)}) > 1,
    )


@pytest.mark.parametrize("text", ["", "1234\x005678", "12\n34", "12\x7f", "\ud800"])
def test_a_key_with_control_characters_cannot_be_an_app_key(text: str) -> None:
    """Empty keys and keys holding NUL or other control characters are impossible app_keys."""
    assert not is_app_key_shaped(text)
