"""From a valid event to the message that will be stored, or a business rejection (pure).

Everything a gateway can know about a message before the store sees it is
decided here, once, at accept time: the template and the rendered text (so a
template that cannot render an event is answered now, never found later in a
worker), the SMS encoding and segment count, whether any route takes the
receiver, urgency and a quiet-hours deferral, the validity period, and the
questions the store must answer inside the accept transaction (opt-out, caps,
dedupe: :class:`~iwork_mc.policies.AcceptChecks`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import Rejection
from iwork_mc.policies import AcceptChecks, CapRule, QuietHours, is_urgent, parse_limits
from iwork_mc.routing import NO_ROUTE, Route, choose_route
from iwork_mc.smpp import SplitMethod, sms_encoding
from iwork_mc.templates import RENDER_FAILED, Renderer, RenderError, Template, select_template
from iwork_mc.templates import text_digest as digest

__all__ = ["TOO_LONG", "AcceptRules", "Composed", "compose"]

TOO_LONG = "MESSAGE_TOO_LONG"


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceptRules:
    """The accept-time rules, built once from the settings."""

    renderer: Renderer
    default_template: str
    max_segments: int
    #: The concatenation method, which sets the room per segment.
    long_messages: SplitMethod = "udh8"
    quiet: QuietHours | None = None
    receiver_rules: tuple[CapRule, ...] = ()
    dedupe_window_ms: int = 0
    validity_ms: int = 86_400_000
    #: Configured routes; empty: every receiver has a route.
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Composed:
    text: str
    template: str
    encoding: str
    segments: int
    urgent: bool
    due_at_ms: int | None
    expires_at_ms: int
    notes: tuple[tuple[str, dict[str, Any]], ...]
    checks: AcceptChecks


def compose(
    rules: AcceptRules,
    app_key: str,
    event: MobileReceiverMessageEvent,
    templates: Sequence[Template],
    now_ms: int,
) -> Composed | Rejection:
    template = select_template(templates, app_key, event)
    name = template.name if template else ""
    try:
        text = rules.renderer.render(template.body if template else rules.default_template, event)
    except RenderError as exc:
        which = f"template {name!r}" if template else "the default template"
        return Rejection(code=RENDER_FAILED, reason=f"{which} cannot render this event: {exc}")
    encoding = sms_encoding(text, method=rules.long_messages)
    if encoding.segments > rules.max_segments:
        return Rejection(
            code=TOO_LONG,
            reason=(
                f"the text needs {encoding.segments} SMS segments ({encoding.alphabet}); "
                f"at most {rules.max_segments} are allowed"
            ),
        )
    if rules.routes and choose_route(rules.routes, event.mobile_receiver, name) is None:
        return Rejection(code=NO_ROUTE, reason="no configured route takes this receiver")
    urgent = is_urgent(template.urgent if template else False, event.data())
    due_at = None if urgent or rules.quiet is None else rules.quiet.deferral(now_ms)
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    if due_at is not None:
        notes = (("deferred", {"reason": "quiet_hours", "until_ms": due_at}),)
    cap_rules = rules.receiver_rules + (_template_rules(template.limits) if template else ())
    return Composed(
        text=text,
        template=name,
        encoding=encoding.alphabet,
        segments=encoding.segments,
        urgent=urgent,
        due_at_ms=due_at,
        # Time spent deferred does not eat into the validity period.
        expires_at_ms=(due_at or now_ms) + rules.validity_ms,
        notes=notes,
        checks=AcceptChecks(
            rules=cap_rules,
            now_ms=now_ms,
            dedupe_since_ms=now_ms - rules.dedupe_window_ms if rules.dedupe_window_ms else None,
            text_digest=digest(text),
        ),
    )


@functools.lru_cache(maxsize=256)
def _template_rules(limits: str) -> tuple[CapRule, ...]:
    return parse_limits(limits, "template")
