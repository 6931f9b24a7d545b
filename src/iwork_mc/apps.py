"""Apps: the callers of the TOP gateway, each with an app_key and a secret (pure)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

__all__ = ["MAX_APP_KEY_LENGTH", "App", "is_app_key_shaped", "new_app_key", "new_secret"]

#: The longest app_key any app can have.  TOP's keys are 8 digits and ours are
#: made the same way; the margin lets keys imported from elsewhere fit.
MAX_APP_KEY_LENGTH = 64
_APP_KEY_SHAPE = re.compile(rf"[0-9A-Za-z_.\-]{{1,{MAX_APP_KEY_LENGTH}}}")


def is_app_key_shaped(app_key: str) -> bool:
    """Whether ``app_key`` could name an app: 1 to 64 letters, digits, ``_``, ``.`` or ``-``.

    A key of any other shape cannot exist, so callers answer "no such app"
    without asking the store (or filling a cache) for it.
    """
    return _APP_KEY_SHAPE.fullmatch(app_key) is not None


def new_app_key() -> str:
    """An 8-digit numeric key, the shape TOP app keys have (``12345678``)."""
    return str(10_000_000 + secrets.randbelow(90_000_000))


def new_secret() -> str:
    """32 lower-case hex characters, the shape of a TOP app secret."""
    return secrets.token_hex(16)


@dataclass(frozen=True, kw_only=True, slots=True)
class App:
    app_key: str
    name: str
    secret: str
    enabled: bool
    created_at_ms: int
    #: The secret replaced by the last rotation, valid until ``previous_secret_expires_at_ms``.
    previous_secret: str | None = None
    previous_secret_expires_at_ms: int | None = None
    #: Where each status change of the app's messages is POSTed (signed); None: nowhere.
    callback_url: str | None = None
    #: Calls per second this app may make, over every gateway process (0: no limit);
    #: None: the ``app_rate_limit`` setting.
    rate_limit: float | None = None
    #: Calls it may burst above its rate; None: the ``app_rate_burst`` setting.
    rate_burst: int | None = None

    def valid_secrets(self, now_ms: int) -> tuple[str, ...]:
        """The secrets a signature may be made with at ``now_ms``, current first."""
        if (
            self.previous_secret is not None
            and self.previous_secret_expires_at_ms is not None
            and now_ms < self.previous_secret_expires_at_ms
        ):
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def __repr__(self) -> str:
        # Secrets never reach a log line or a traceback through repr().
        return f"App(app_key={self.app_key!r}, name={self.name!r}, enabled={self.enabled})"
