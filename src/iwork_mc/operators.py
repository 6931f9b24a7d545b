"""Operator accounts of the web console: names, password rules and argon2 hashes.

Passwords are hashed with argon2id (``argon2-cffi``, its default parameters); a
hash never leaves the store except to be verified.  The lock-out rule (so many
failures in a row lock the account for a while) is applied atomically by the
store's :meth:`~iwork_mc.store.base.Store.sign_in_failed`; :class:`LockOut`
carries its two numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import argon2

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "InvalidOperator",
    "LockOut",
    "Operator",
    "check_name",
    "check_password",
    "hash_password",
    "verify_password",
]

MIN_PASSWORD = 12
#: Bounds the work a sign-in form can ask of argon2 (it hashes what it is given).
MAX_PASSWORD = 1024

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HASHER = argon2.PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class InvalidOperator(ValueError):
    """An operator name or password that may not be used; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Operator:
    name: str
    password_hash: str = ""
    created_at_ms: int
    #: Failed sign-ins in a row since the last success or lock-out.
    failed_sign_ins: int = 0
    #: Sign-ins are refused until this instant (epoch ms; 0: never locked).
    locked_until_ms: int = 0
    last_sign_in_ms: int | None = None

    def locked(self, now_ms: int) -> bool:
        return now_ms < self.locked_until_ms

    def __repr__(self) -> str:
        # The hash never reaches a log line or a traceback through repr().
        return f"Operator(name={self.name!r})"


@dataclass(frozen=True, slots=True)
class LockOut:
    """After ``max_failures`` failed sign-ins in a row, refuse every sign-in for ``duration_ms``."""

    max_failures: int
    duration_ms: int


def check_name(name: str) -> str:
    """``name`` if it can name an operator: 1-64 of ``a-z 0-9 . _ -``, starting alphanumeric."""
    if not _NAME.fullmatch(name):
        raise InvalidOperator(
            "an operator name is 1-64 characters of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """``password`` if it is long enough and not absurdly long."""
    if len(password) < MIN_PASSWORD:
        raise InvalidOperator(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidOperator(f"a password has at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (checked first) in PHC string form."""
    return _HASHER.hash(check_password(password))


def verify_password(operator: Operator | None, password: str) -> bool:
    """Whether ``password`` is the operator's; a missing operator costs the same time."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _HASHER.verify(operator.password_hash if operator else _DUMMY_HASH, password) and (
            operator is not None
        )
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
