"""Retention: how long ended messages keep personal data, and how long they are kept (pure).

A message *ends* when it reaches a final status (delivered, failed, expired,
rejected); its ``updated_at_ms`` is then the instant it ended (notes such as
callbacks do not move it).  ``personal_data_s`` after that, the worker's sweep
*redacts* it: the receiver is cut down to its masked form, ``json_data``
becomes ``{}`` and the rendered text is emptied, and a ``redacted`` entry on
the timeline says which fields went and who took them.  ``messages_s`` after
it ended the whole message (its timeline, segments and status events with it)
is deleted.  0 keeps forever.  An operator can delete ended messages earlier
with ``iwork-mc messages purge``; a message still in flight is never deleted.

Which messages are due is written once, in the store's SQL (``redact_ended``,
``delete_ended``); this module holds the values those queries are given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from iwork_mc.messages import FINAL_STATUSES
from iwork_mc.privacy import mask_phone

__all__ = [
    "REDACTED_FIELDS",
    "REDACTED_JSON_DATA",
    "EndedSelection",
    "RetentionError",
    "RetentionPolicy",
    "final_statuses",
    "parse_age_ms",
    "redacted_receiver",
    "redaction_detail",
]

#: The message fields redaction empties, in the order the timeline lists them.
REDACTED_FIELDS = ("mobile_receiver", "json_data", "text")
#: What ``json_data`` holds once redacted: still a JSON object, so every reader works.
REDACTED_JSON_DATA = "{}"


class RetentionError(ValueError):
    """A retention period or a purge selection cannot be used; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionPolicy:
    """How long ended messages keep personal data and how long they are kept, in seconds.

    Raises:
        RetentionError: a period is negative, or the batch is not positive.
    """

    #: Seconds after a message ended until it is redacted; 0: never.
    personal_data_s: int = 0
    #: Seconds after a message ended until it is deleted; 0: never.
    messages_s: int = 0
    #: Messages one sweep step redacts or deletes at most (one transaction).
    batch: int = 500

    def __post_init__(self) -> None:
        for name in ("personal_data_s", "messages_s"):
            value = getattr(self, name)
            if value < 0:
                raise RetentionError(
                    f"retention {name} must be 0 (keep forever) or a positive number "
                    f"of seconds (got {value})"
                )
        if self.batch < 1:
            raise RetentionError(f"retention batch must be at least 1 (got {self.batch})")

    @property
    def active(self) -> bool:
        return bool(self.personal_data_s or self.messages_s)

    def redact_before_ms(self, now_ms: int) -> int | None:
        """Messages that ended before this instant are redacted; ``None``: none are."""
        return now_ms - self.personal_data_s * 1000 if self.personal_data_s else None

    def delete_before_ms(self, now_ms: int) -> int | None:
        """Messages that ended before this instant are deleted; ``None``: none are."""
        return now_ms - self.messages_s * 1000 if self.messages_s else None


@dataclass(frozen=True, kw_only=True, slots=True)
class EndedSelection:
    """Which ended messages to delete: every filter given must match.

    Raises:
        RetentionError: nothing is selected by anything, or ``msg_key`` comes
            without ``app_key`` (a msg_key is unique only within its app).
    """

    app_key: str | None = None
    msg_key: str | None = None
    #: Only messages that ended before this instant.
    ended_before_ms: int | None = None

    def __post_init__(self) -> None:
        if self.msg_key is not None and self.app_key is None:
            raise RetentionError("a msg_key names a message only with its app: give the app too")
        if self.app_key is None and self.ended_before_ms is None:
            raise RetentionError("select what to purge: an app, a msg_key or an age")

    def as_params(self) -> dict[str, Any]:
        return {
            "app_key": self.app_key,
            "msg_key": self.msg_key,
            "ended_before_ms": self.ended_before_ms,
        }


def final_statuses() -> list[str]:
    """The statuses of ended messages, for the store's queries (sorted: stable SQL params)."""
    return sorted(status.value for status in FINAL_STATUSES)


def redacted_receiver(receiver: str) -> str:
    """What a redacted message keeps of its receiver: the masked number of the logs."""
    return mask_phone(receiver)


def redaction_detail(by: str) -> dict[str, Any]:
    """The ``redacted`` timeline entry's detail."""
    return {"fields": list(REDACTED_FIELDS), "by": by}


_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_age_ms(text: str) -> int:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as milliseconds.

    Raises:
        RetentionError: anything else, a negative age included.
    """
    match = _AGE.match(text)
    if match is None:
        if text.strip().startswith("-"):
            raise RetentionError(f"age {text!r} is negative: give how long ago, e.g. 90d")
        raise RetentionError(
            f"age {text!r}: give a whole number and a unit s, m, h, d or w (e.g. 90d, 12h)"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]
