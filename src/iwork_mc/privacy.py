"""Keeping personal data out of logs and metrics (pure)."""

from __future__ import annotations

__all__ = ["mask_phone"]


def mask_phone(number: str) -> str:
    """``+8613888888888`` → ``138****8888``: enough to tell numbers apart, not to dial one."""
    digits = number.removeprefix("+86") if number.startswith("+86") else number.lstrip("+")
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"
