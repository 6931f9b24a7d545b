"""Apps: the callers of the TOP gateway, each with an app_key and a secret (pure)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

__all__ = ["App", "could_be_app_key", "new_app_key", "new_secret"]

# C0/C1 controls (NUL among them: PostgreSQL cannot even hold one) and lone surrogates.
_IMPOSSIBLE_IN_APP_KEY = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def new_app_key() -> str:
    """An 8-digit numeric key, the shape TOP app keys have (``12345678``)."""
    return str(10_000_000 + secrets.randbelow(90_000_000))


def could_be_app_key(text: str) -> bool:
    """False for a text no app can have as app_key: empty, or holding control characters.

    Such a key is answered "unknown app_key" without asking the store, on every backend.
    """
    return bool(text) and _IMPOSSIBLE_IN_APP_KEY.search(text) is None


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
