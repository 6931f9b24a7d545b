"""Console sessions: a signed cookie holding the operator's name and a CSRF token.

The cookie is signed (itsdangerous, HMAC-SHA1 over a key of 32 random bytes) and
time-stamped, so it cannot be forged or extended; it is HttpOnly, SameSite=Strict,
limited to ``/console`` and Secure when the request came over https.  Every
visitor gets a session, signed in or not, so the sign-in form is CSRF-protected
too; signing in issues a new session (new token), so a planted cookie is useless.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "Session", "SessionCodec", "load_secret_key"]

COOKIE = "iwork_mc_console"
_KEY_FILE = "console-secret.key"


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    #: The signed-in operator, or ``None`` before sign-in.
    operator: str | None = None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def signed_in(cls, operator: str) -> Session:
        return cls(csrf=secrets.token_urlsafe(32), operator=operator)

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf, token)


class SessionCodec:
    """Sessions to cookie values and back; a value older than ``max_age_s`` is refused."""

    def __init__(self, secret_key: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="iwork-mc-console")
        self.max_age_s = max_age_s

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"csrf": session.csrf, "op": session.operator})

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # also an expired signature
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        operator = data.get("op")
        return Session(csrf=data["csrf"], operator=operator if isinstance(operator, str) else None)


def load_secret_key(configured: str, data_dir: Path) -> str:
    """``configured``, or the key in ``<data_dir>/console-secret.key``, made (0600) if missing.

    Every process on this host with the same data directory reads the same key,
    so ``serve --processes N`` shares sessions.
    """
    if configured:
        return configured
    path = data_dir / _KEY_FILE
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a temporary name, then linked into place: a reader
        # never sees a half-written key, and of two racing creators one wins.
        temporary = data_dir / f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text(encoding="ascii").strip()
