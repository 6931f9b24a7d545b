"""Accept-time composition: template, text, length, route, urgency, deferral, checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iwork_mc.compose import TOO_LONG, AcceptRules, Composed, compose, render_text
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import NewMessage, Rejection
from iwork_mc.policies import AcceptChecks, CapRule, QuietHours
from iwork_mc.routing import NO_ROUTE, Route
from iwork_mc.templates import DEFAULT_TEMPLATE, RENDER_FAILED, Renderer, Template, text_digest

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = int(datetime(2026, 11, 26, 12, 0, tzinfo=SHANGHAI).timestamp() * 1000)
MIDNIGHT = int(datetime(2026, 11, 26, 23, 30, tzinfo=SHANGHAI).timestamp() * 1000)
EIGHT_AM = int(datetime(2026, 11, 27, 8, 0, tzinfo=SHANGHAI).timestamp() * 1000)


def rules(**overrides: Any) -> AcceptRules:
    values: dict[str, Any] = {
        "renderer": Renderer(),
        "default_template": DEFAULT_TEMPLATE,
        "max_segments": 10,
    }
    return AcceptRules(**(values | overrides))


@pytest.fixture
def event(event_factory: Callable[..., MobileReceiverMessageEvent]) -> MobileReceiverMessageEvent:
    return event_factory(json_data='{"name": "张三", "floor": 3}')


def composing(
    rules: AcceptRules, app_key: str, event: MobileReceiverMessageEvent, templates: Any, now: int
) -> Composed | Rejection:
    return compose(rules, app_key, event, templates, now, request_id="req-1")


def composed(result: Composed | Rejection) -> NewMessage:
    """The message a composition would store (it must not be a rejection)."""
    assert isinstance(result, Composed), result
    return result.message


def checks_of(result: Composed | Rejection) -> AcceptChecks:
    assert isinstance(result, Composed), result
    return result.checks


def test_no_template_renders_the_default_text(event: MobileReceiverMessageEvent) -> None:
    message = composed(composing(rules(), "app", event, [], NOON))
    assert message.text == "arrived: name: 张三, floor: 3"
    assert message.template == ""
    assert (message.encoding, message.segments) == ("ucs2", 1)


def test_the_matching_template_renders_and_is_named(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="arrival", action="arrived", body="{{ name }} is at floor {{ floor }}")
    message = composed(composing(rules(), "app", event, [template], NOON))
    assert (message.template, message.text) == ("arrival", "张三 is at floor 3")


def test_a_template_missing_a_variable_is_a_business_rejection(
    event: MobileReceiverMessageEvent,
) -> None:
    template = Template(name="arrival", body="Room {{ room }}")
    rejection = composing(rules(), "app", event, [template], NOON)
    assert isinstance(rejection, Rejection)
    assert rejection.code == RENDER_FAILED
    assert "'arrival'" in rejection.reason and "room" in rejection.reason


@pytest.mark.parametrize(
    ("template", "which", "cause"),
    [
        (Template(name="broken", body="Room {% if room %}"), "template 'broken'", "not valid: line 1"),
        (Template(name="empty", body="{% if false %}x{% endif %}"), "template 'empty'", "empty text"),
        (None, "the default template", "needs 'room'"),
    ],
    ids=["syntax-error", "empty-text", "default-template"],
)  # fmt: skip
def test_any_template_that_cannot_render_is_a_business_rejection(
    event: MobileReceiverMessageEvent, template: Template | None, which: str, cause: str
) -> None:
    """A stored body with a syntax error, an empty text, or a failing default template: rejected."""
    templates = [] if template is None else [template]
    rejection = composing(rules(default_template="{{ room }}"), "app", event, templates, NOON)
    assert isinstance(rejection, Rejection)
    assert RENDER_FAILED == rejection.code
    assert rejection.reason.startswith(f"{which} cannot render this event: ")
    assert cause in rejection.reason


def test_texts_over_the_segment_limit_are_refused(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="long", body="{% for i in range(200) %}x{% endfor %}")
    assert composed(composing(rules(max_segments=2), "app", event, [template], NOON)).segments == 2
    template = Template(name="long", body="{% for i in range(307) %}x{% endfor %}")
    rejection = composing(rules(max_segments=2), "app", event, [template], NOON)
    assert isinstance(rejection, Rejection)
    assert rejection.code == TOO_LONG
    assert "3 SMS segments (gsm7)" in rejection.reason


def test_chinese_text_counts_ucs2_segments(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="cn", body="{% for i in range(71) %}张{% endfor %}")
    message = composed(composing(rules(), "app", event, [template], NOON))
    assert (message.encoding, message.segments) == ("ucs2", 2)


def test_a_receiver_no_route_takes_is_refused(event: MobileReceiverMessageEvent) -> None:
    routes = (Route(name="us", channels=("a",), regions=("US",)),)
    rejection = composing(rules(routes=routes), "app", event, [], NOON)
    assert isinstance(rejection, Rejection) and rejection.code == NO_ROUTE
    routes = (Route(name="cn", channels=("a",), regions=("CN",)),)
    assert isinstance(composing(rules(routes=routes), "app", event, [], NOON), Composed)


def test_without_configured_routes_every_receiver_has_one(
    event_factory: Callable[..., MobileReceiverMessageEvent],
) -> None:
    """An empty route list is "no routing": even a number of another region is composed."""
    for receiver in ("+8613888888888", "+14155550100"):
        subject = event_factory(mobile_receiver=receiver)
        assert isinstance(composing(rules(routes=()), "app", subject, [], NOON), Composed)


def test_a_template_route_sees_the_chosen_template_name(
    event: MobileReceiverMessageEvent,
) -> None:
    """Routes by template match the selected template's name; without one, no route takes it."""
    routes = (Route(name="alarms", channels=("a",), templates=("alarm-*",)),)
    alarm = Template(name="alarm-fire", body="fire")
    routed = composed(composing(rules(routes=routes), "app", event, [alarm], NOON))
    assert "alarm-fire" == routed.template
    rejection = composing(rules(routes=routes), "app", event, [], NOON)
    assert isinstance(rejection, Rejection) and NO_ROUTE == rejection.code


def test_quiet_hours_defer_to_the_end_of_the_window(event: MobileReceiverMessageEvent) -> None:
    quiet = QuietHours.parse("22:00-08:00", "Asia/Shanghai")
    message = composed(composing(rules(quiet=quiet), "app", event, [], MIDNIGHT))
    assert message.due_at_ms == EIGHT_AM
    assert message.notes == (("deferred", {"reason": "quiet_hours", "until_ms": EIGHT_AM}),)
    assert message.expires_at_ms == EIGHT_AM + 86_400_000
    assert composed(composing(rules(quiet=quiet), "app", event, [], NOON)).due_at_ms is None


def test_urgent_messages_ignore_quiet_hours(
    event_factory: Callable[..., MobileReceiverMessageEvent],
) -> None:
    quiet = QuietHours.parse("22:00-08:00", "Asia/Shanghai")
    urgent_event = event_factory(json_data='{"urgent": true}')
    assert (
        composed(composing(rules(quiet=quiet), "a", urgent_event, [], MIDNIGHT)).due_at_ms is None
    )
    urgent_template = Template(name="alarm", body="fire", urgent=True)
    plain_event = event_factory()
    message = composed(composing(rules(quiet=quiet), "a", plain_event, [urgent_template], MIDNIGHT))
    assert message.urgent and message.due_at_ms is None


def test_checks_carry_caps_dedupe_and_the_text_digest(event: MobileReceiverMessageEvent) -> None:
    app_cap = CapRule("app", "hour", 5)
    template = Template(name="t", body="hi {{ name }}", limits="day=1")
    checks = checks_of(
        composing(
            rules(receiver_rules=(app_cap,), dedupe_window_ms=60_000), "a", event, [template], NOON
        )
    )
    assert checks.rules == (app_cap, CapRule("template", "day", 1))
    assert checks.dedupe_since_ms == NOON - 60_000
    assert checks.text_digest == text_digest("hi 张三")
    assert checks_of(composing(rules(), "a", event, [], NOON)).dedupe_since_ms is None


def test_the_message_carries_the_call_and_the_fingerprint(
    event: MobileReceiverMessageEvent,
) -> None:
    message = composed(composing(rules(), "app", event, [], NOON))
    assert ("app", "req-1", NOON, event.fingerprint()) == (
        message.app_key, message.request_id, message.accepted_at_ms, message.fingerprint,
    )  # fmt: skip


def test_render_text_is_the_shared_render_and_measure_step(
    event: MobileReceiverMessageEvent,
) -> None:
    """What the dry runs show: the text and its cost, or the plain reason it cannot be sent."""
    ok = render_text(rules(), "Hi {{ name }}", event)
    assert not isinstance(ok, Rejection)
    assert ("Hi 张三", "ucs2", 1) == (ok.text, ok.encoding.alphabet, ok.encoding.segments)
    missing = render_text(rules(), "{{ room }}", event)
    assert Rejection(code=RENDER_FAILED, reason="the template needs 'room'") == missing
    too_long = render_text(rules(max_segments=1), "x" * 161, event)
    assert not isinstance(too_long, Rejection) and too_long.problem is not None
    assert (TOO_LONG, 2) == (too_long.problem.code, too_long.encoding.segments)
    assert None is ok.problem
