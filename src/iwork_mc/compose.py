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
from typing import TYPE_CHECKING, Any

from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import NewMessage, Rejection
from iwork_mc.policies import AcceptChecks, CapRule, QuietHours, is_urgent, parse_limits
from iwork_mc.routing import NO_ROUTE, Route, choose_route
from iwork_mc.smpp import Encoding, SplitMethod, sms_encoding
from iwork_mc.template_sandbox import Limits
from iwork_mc.templates import RENDER_FAILED, Renderer, RenderError, Template, select_template
from iwork_mc.templates import text_digest as digest

if TYPE_CHECKING:
    from iwork_mc.config import Settings

__all__ = ["TOO_LONG", "AcceptRules", "Composed", "Rendered", "compose", "render_text"]

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

    @classmethod
    def from_settings(cls, settings: Settings) -> AcceptRules:
        return cls(
            renderer=Renderer(
                settings.timezone, limits=Limits(seconds=settings.template_render_timeout_s)
            ),
            default_template=settings.default_template,
            max_segments=settings.max_segments,
            long_messages=settings.smpp.long_messages,
            quiet=settings.quiet,
            receiver_rules=settings.receiver_rules,
            dedupe_window_ms=settings.dedupe_window_s * 1000,
            validity_ms=settings.message_validity_s * 1000,
            routes=settings.routes,
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A text as the receiver would read it, what it costs as SMS, and whether it may be sent."""

    text: str
    encoding: Encoding
    #: Why this text cannot be sent (``MESSAGE_TOO_LONG``), or ``None``.
    problem: Rejection | None = None


@dataclass(frozen=True, slots=True)
class Composed:
    """The message to store, and the policy questions the store answers before storing it."""

    message: NewMessage
    checks: AcceptChecks


def render_text(
    rules: AcceptRules,
    body: str,
    event: MobileReceiverMessageEvent,
    *,
    trial_seconds: float | None = None,
) -> Rendered | Rejection:
    """``body`` rendered for ``event`` and measured, or why it cannot be rendered.

    The one step the accept path and both dry runs (CLI and REST) share.
    ``trial_seconds``: see :meth:`Renderer.render` (raises ``RenderTooSlow``).
    """
    try:
        text = rules.renderer.render(body, event, trial_seconds=trial_seconds)
    except RenderError as exc:
        return Rejection(code=RENDER_FAILED, reason=str(exc))
    encoding = sms_encoding(text, method=rules.long_messages)
    if encoding.segments <= rules.max_segments:
        return Rendered(text, encoding)
    reason = (
        f"the text needs {encoding.segments} SMS segments ({encoding.alphabet}); "
        f"at most {rules.max_segments} are allowed"
    )
    return Rendered(text, encoding, Rejection(code=TOO_LONG, reason=reason))


def compose(
    rules: AcceptRules,
    app_key: str,
    event: MobileReceiverMessageEvent,
    templates: Sequence[Template],
    now_ms: int,
    *,
    request_id: str,
    trial_seconds: float | None = None,
) -> Composed | Rejection:
    template = select_template(templates, app_key, event)
    name = template.name if template else ""
    body = template.body if template else rules.default_template
    rendered = render_text(rules, body, event, trial_seconds=trial_seconds)
    if isinstance(rendered, Rendered) and rendered.problem is not None:
        return rendered.problem
    if isinstance(rendered, Rejection):
        which = f"template {name!r}" if template else "the default template"
        return Rejection(
            code=RENDER_FAILED, reason=f"{which} cannot render this event: {rendered.reason}"
        )
    if rules.routes and choose_route(rules.routes, event.mobile_receiver, name) is None:
        return Rejection(code=NO_ROUTE, reason="no configured route takes this receiver")
    urgent = is_urgent(template.urgent if template else False, event.data())
    due_at = None if urgent or rules.quiet is None else rules.quiet.deferral(now_ms)
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    if due_at is not None:
        notes = (("deferred", {"reason": "quiet_hours", "until_ms": due_at}),)
    cap_rules = rules.receiver_rules + (_template_rules(template.limits) if template else ())
    message = NewMessage(
        app_key=app_key,
        event=event,
        fingerprint=event.fingerprint(),
        request_id=request_id,
        accepted_at_ms=now_ms,
        text=rendered.text,
        template=name,
        encoding=rendered.encoding.alphabet,
        segments=rendered.encoding.segments,
        urgent=urgent,
        due_at_ms=due_at,
        # Time spent deferred does not eat into the validity period.
        expires_at_ms=(due_at or now_ms) + rules.validity_ms,
        notes=notes,
    )
    checks = AcceptChecks(
        rules=cap_rules,
        now_ms=now_ms,
        dedupe_since_ms=now_ms - rules.dedupe_window_ms if rules.dedupe_window_ms else None,
        text_digest=digest(rendered.text),
    )
    return Composed(message, checks)


@functools.lru_cache(maxsize=256)
def _template_rules(limits: str) -> tuple[CapRule, ...]:
    return parse_limits(limits, "template")
