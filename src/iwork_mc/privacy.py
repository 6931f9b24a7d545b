"""Keeping personal data out of logs and metrics (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_phone", "redact_url"]


def mask_phone(number: str) -> str:
    """``+8613888888888`` → ``138****8888``: enough to tell numbers apart, not to dial one."""
    digits = number.removeprefix("+86") if number.startswith("+86") else number.lstrip("+")
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def redact_url(url: str) -> str:
    """A database URL fit to print: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
