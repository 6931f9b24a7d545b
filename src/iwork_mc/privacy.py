"""Keeping personal data out of logs and metrics (pure)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_digits", "mask_phone", "redact_url"]

# Seven digits or more (a "+" before them included) may be a phone number.
_DIGIT_RUN = re.compile(r"\+?\d{7,}")


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


def mask_digits(text: str) -> str:
    """Free text (a driver's error message) with every phone-like run of digits masked."""
    return _DIGIT_RUN.sub(lambda found: mask_phone(found.group()), text)
