"""Reading a ``[channels.NAME]`` table into a channel's typed settings (pure).

Each channel kind with settings of its own (``apprise``, ``webhook``) parses
its table with these readers and raises :class:`ChannelOptionError` naming
the one option that is wrong; :mod:`iwork_mc.config` adds the channel's name,
so the error that stops ``run``/``worker`` reads ``channels.ops.secret: …``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

__all__ = ["ChannelOptionError", "check_known", "number", "text"]


class ChannelOptionError(ValueError):
    """One option of a channel table is missing, of the wrong type or unusable."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


def check_known(options: Mapping[str, Any], known: Set[str]) -> None:
    """Refuse options the kind does not take (a typo would otherwise be ignored)."""
    for name in sorted(set(options) - known):
        takes = ", ".join(sorted(known))
        raise ChannelOptionError(name, f"unknown option (this kind takes {takes})")


def text(options: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
    """A string option; without ``default`` it is required and must not be empty."""
    value = options.get(name, default)
    if value is None:
        raise ChannelOptionError(name, "is required")
    if not isinstance(value, str):
        raise ChannelOptionError(name, f"must be a string, not {type(value).__name__}")
    if default is None and not value.strip():
        raise ChannelOptionError(name, "is required and must not be empty")
    return value


def number(
    options: Mapping[str, Any], name: str, *, default: float, low: float, high: float
) -> float:
    """A number option within ``[low, high]``."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChannelOptionError(name, f"must be a number, not {type(value).__name__}")
    if not low <= value <= high:
        raise ChannelOptionError(name, f"must be between {low:g} and {high:g}, not {value:g}")
    return float(value)
