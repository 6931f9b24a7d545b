"""Receiver policies: opt-out, frequency caps, dedupe window, quiet hours (pure).

Every function takes the time it needs as an argument and reads no clock, no
store, no settings: the store gathers the facts about a receiver (inside the
accept transaction, so two gateways cannot both let the N+1st message through)
and :meth:`AcceptChecks.decide` turns them into an answer.

Decisions known at accept time are answered at once with a business
``error_code``; a quiet-hours deferral is not a rejection: the message is
accepted and its first attempt is scheduled for the end of the quiet window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from iwork_mc.messages import Rejection

__all__ = [
    "DUPLICATE_CONTENT",
    "OPTED_OUT",
    "RATE_LIMITED",
    "WINDOWS_MS",
    "AcceptChecks",
    "CapRule",
    "CountQuery",
    "OptOut",
    "PolicyError",
    "QuietHours",
    "ReceiverFacts",
    "is_urgent",
    "parse_limits",
]

OPTED_OUT = "RECEIVER_OPTED_OUT"
RATE_LIMITED = "RECEIVER_RATE_LIMITED"
DUPLICATE_CONTENT = "DUPLICATE_CONTENT"

WINDOWS_MS: dict[str, int] = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}

Scope = Literal["app", "global", "template"]
_SCOPE_WORDS: dict[Scope, str] = {
    "app": "from this app",
    "global": "from all apps",
    "template": "from this template",
}


class PolicyError(ValueError):
    """A policy setting cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class CapRule:
    """At most ``limit`` messages per receiver in the last ``window`` within ``scope``."""

    scope: Scope
    window: str
    limit: int

    def since_ms(self, now_ms: int) -> int:
        return now_ms - WINDOWS_MS[self.window]


def parse_limits(text: str, scope: Scope) -> tuple[CapRule, ...]:
    """``"minute=2,hour=10,day=20"`` → cap rules; ``""`` → none.

    >>> parse_limits("hour=10", "app")
    (CapRule(scope='app', window='hour', limit=10),)
    """
    rules = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        window, _, count = item.partition("=")
        window = window.strip().lower()
        if window not in WINDOWS_MS:
            raise PolicyError(f"{item!r}: the window must be minute, hour or day")
        # isdecimal, not isdigit: int() refuses digits such as "²" that isdigit accepts.
        if not count.strip().isdecimal() or int(count) < 1:
            raise PolicyError(f"{item!r}: the limit must be a whole number of at least 1")
        rules.append(CapRule(scope, window, int(count)))
    if len({rule.window for rule in rules}) != len(rules):
        raise PolicyError(f"{text!r}: a window is given twice")
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class CountQuery:
    """Messages to the receiver accepted after ``since_ms``, within ``scope``."""

    scope: Scope
    since_ms: int


@dataclass(frozen=True, slots=True)
class ReceiverFacts:
    """What the store found about one receiver, for :meth:`AcceptChecks.decide`."""

    opted_out: bool
    #: One count per entry of :attr:`AcceptChecks.count_queries`, in order.
    counts: tuple[int, ...]
    #: The same text went to the receiver within the dedupe window.
    duplicate_text: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceptChecks:
    """The policy questions for one message at one instant, and how to answer them.

    The store answers :attr:`count_queries` (and the opt-out and dedupe
    questions) inside the accept transaction and calls :meth:`decide`.
    """

    rules: tuple[CapRule, ...] = ()
    now_ms: int
    #: Look for the same text sent to the receiver after this instant (None: no dedupe).
    dedupe_since_ms: int | None = None
    #: SHA-256 of the rendered text, hex; the store keeps it to answer dedupe questions.
    text_digest: str = ""

    @property
    def counts_anything(self) -> bool:
        """Whether the answer depends on other messages (caps, dedupe): then concurrent
        accepts to one receiver must be serialised.  An opt-out alone needs no lock."""
        return bool(self.rules) or self.dedupe_since_ms is not None

    @property
    def count_queries(self) -> tuple[CountQuery, ...]:
        return tuple(CountQuery(rule.scope, rule.since_ms(self.now_ms)) for rule in self.rules)

    def decide(self, facts: ReceiverFacts) -> Rejection | None:
        """The first policy that declines the message, or ``None`` to accept it."""
        if facts.opted_out:
            return Rejection(code=OPTED_OUT, reason="the receiver has opted out of messages")
        if facts.duplicate_text:
            return Rejection(
                code=DUPLICATE_CONTENT,
                reason="the same text was sent to this receiver within the dedupe window",
            )
        for rule, count in zip(self.rules, facts.counts, strict=True):
            if count >= rule.limit:
                return Rejection(
                    code=RATE_LIMITED,
                    reason=(
                        f"the receiver already had {count} messages in the last {rule.window} "
                        f"{_SCOPE_WORDS[rule.scope]} (limit {rule.limit})"
                    ),
                )
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class OptOut:
    """A receiver (E.164) who gets no messages from ``app_key`` (``"*"``: from any app)."""

    app_key: str
    receiver: str
    reason: str
    created_at_ms: int


_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in a time zone, e.g. 22:00–08:00 in Asia/Shanghai.

    A window whose end is earlier than its start spans midnight.
    """

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str) -> QuietHours | None:
        """``"22:00-08:00"`` in ``zone``; ``""`` means no quiet hours."""
        if not text.strip():
            return None
        match = _CLOCK.match(text)
        if match is None:
            raise PolicyError(f"quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 22:00-08:00")
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise PolicyError(f"quiet hours {text!r}: not a time of day")
        if (h1, m1) == (h2, m2):
            raise PolicyError(f"quiet hours {text!r}: start and end are the same")
        try:
            tz = ZoneInfo(zone)
        except (KeyError, ValueError, OSError) as exc:
            # OSError: a zone directory such as "America" is not a zone.
            raise PolicyError(f"time zone {zone!r} is unknown") from exc
        return cls(time(h1, m1), time(h2, m2), tz)

    def deferral(self, now_ms: int) -> int | None:
        """The end of the quiet window ``now_ms`` falls in (epoch ms), or ``None``."""
        end_ms = self._window_end(now_ms)
        if end_ms is None:
            return None
        # When the clocks spring forward over the whole open part of the day (a
        # window such as 02:45-02:30), the window's end is quiet again: go on.
        while (later := self._window_end(end_ms)) is not None:
            end_ms = later
        return end_ms

    def _window_end(self, now_ms: int) -> int | None:
        local = datetime.fromtimestamp(now_ms / 1000, self.zone)
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= clock < self.end
            end_day = local.date()
        else:  # spans midnight
            inside = clock >= self.start or clock < self.end
            end_day = local.date() + timedelta(days=1) if clock >= self.start else local.date()
        if not inside:
            return None
        # Built from wall-clock fields, so a DST change inside the window is honoured.
        end = datetime.combine(end_day, self.end, tzinfo=self.zone)
        end_ms = int(end.timestamp() * 1000)
        if end_ms <= now_ms:
            # The clocks went back inside the window and ``now`` is in the repeated
            # hour: its end is the second of the two wall-clock instants.
            end_ms = int(end.replace(fold=1).timestamp() * 1000)
        return end_ms


def is_urgent(template_urgent: bool, data: dict[str, object]) -> bool:
    """A template marked urgent, or an event whose json_data says ``"urgent": true``."""
    return template_urgent or data.get("urgent") is True
