"""Accept-time composition: template, text, length, route, urgency, deferral, checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iwork_mc.compose import TOO_LONG, AcceptRules, Composed, compose
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import Rejection
from iwork_mc.policies import CapRule, QuietHours
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


def composed(result: Composed | Rejection) -> Composed:
    assert isinstance(result, Composed), result
    return result


def test_no_template_renders_the_default_text(event: MobileReceiverMessageEvent) -> None:
    message = composed(compose(rules(), "app", event, [], NOON))
    assert message.text == "arrived: name: 张三, floor: 3"
    assert message.template == ""
    assert (message.encoding, message.segments) == ("ucs2", 1)


def test_the_matching_template_renders_and_is_named(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="arrival", action="arrived", body="{{ name }} is at floor {{ floor }}")
    message = composed(compose(rules(), "app", event, [template], NOON))
    assert (message.template, message.text) == ("arrival", "张三 is at floor 3")


def test_a_template_missing_a_variable_is_a_business_rejection(
    event: MobileReceiverMessageEvent,
) -> None:
    template = Template(name="arrival", body="Room {{ room }}")
    rejection = compose(rules(), "app", event, [template], NOON)
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
    rejection = compose(rules(default_template="{{ room }}"), "app", event, templates, NOON)
    assert isinstance(rejection, Rejection)
    assert RENDER_FAILED == rejection.code
    assert rejection.reason.startswith(f"{which} cannot render this event: ")
    assert cause in rejection.reason


def test_texts_over_the_segment_limit_are_refused(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="long", body="{% for i in range(200) %}x{% endfor %}")
    assert composed(compose(rules(max_segments=2), "app", event, [template], NOON)).segments == 2
    template = Template(name="long", body="{% for i in range(307) %}x{% endfor %}")
    rejection = compose(rules(max_segments=2), "app", event, [template], NOON)
    assert isinstance(rejection, Rejection)
    assert rejection.code == TOO_LONG
    assert "3 SMS segments (gsm7)" in rejection.reason


def test_chinese_text_counts_ucs2_segments(event: MobileReceiverMessageEvent) -> None:
    template = Template(name="cn", body="{% for i in range(71) %}张{% endfor %}")
    message = composed(compose(rules(), "app", event, [template], NOON))
    assert (message.encoding, message.segments) == ("ucs2", 2)


def test_a_receiver_no_route_takes_is_refused(event: MobileReceiverMessageEvent) -> None:
    routes = (Route(name="us", channels=("a",), regions=("US",)),)
    rejection = compose(rules(routes=routes), "app", event, [], NOON)
    assert isinstance(rejection, Rejection) and rejection.code == NO_ROUTE
    routes = (Route(name="cn", channels=("a",), regions=("CN",)),)
    assert isinstance(compose(rules(routes=routes), "app", event, [], NOON), Composed)


def test_without_configured_routes_every_receiver_has_one(
    event_factory: Callable[..., MobileReceiverMessageEvent],
) -> None:
    """An empty route list is "no routing": even a number of another region is composed."""
    for receiver in ("+8613888888888", "+14155550100"):
        subject = event_factory(mobile_receiver=receiver)
        assert isinstance(compose(rules(routes=()), "app", subject, [], NOON), Composed)


def test_a_template_route_sees_the_chosen_template_name(
    event: MobileReceiverMessageEvent,
) -> None:
    """Routes by template match the selected template's name; without one, no route takes it."""
    routes = (Route(name="alarms", channels=("a",), templates=("alarm-*",)),)
    alarm = Template(name="alarm-fire", body="fire")
    routed = composed(compose(rules(routes=routes), "app", event, [alarm], NOON))
    assert "alarm-fire" == routed.template
    rejection = compose(rules(routes=routes), "app", event, [], NOON)
    assert isinstance(rejection, Rejection) and NO_ROUTE == rejection.code


def test_quiet_hours_defer_to_the_end_of_the_window(event: MobileReceiverMessageEvent) -> None:
    quiet = QuietHours.parse("22:00-08:00", "Asia/Shanghai")
    message = composed(compose(rules(quiet=quiet), "app", event, [], MIDNIGHT))
    assert message.due_at_ms == EIGHT_AM
    assert message.notes == (("deferred", {"reason": "quiet_hours", "until_ms": EIGHT_AM}),)
    assert message.expires_at_ms == EIGHT_AM + 86_400_000
    assert composed(compose(rules(quiet=quiet), "app", event, [], NOON)).due_at_ms is None


def test_urgent_messages_ignore_quiet_hours(
    event_factory: Callable[..., MobileReceiverMessageEvent],
) -> None:
    quiet = QuietHours.parse("22:00-08:00", "Asia/Shanghai")
    urgent_event = event_factory(json_data='{"urgent": true}')
    assert composed(compose(rules(quiet=quiet), "a", urgent_event, [], MIDNIGHT)).due_at_ms is None
    urgent_template = Template(name="alarm", body="fire", urgent=True)
    plain_event = event_factory()
    message = composed(compose(rules(quiet=quiet), "a", plain_event, [urgent_template], MIDNIGHT))
    assert message.urgent and message.due_at_ms is None


def test_checks_carry_caps_dedupe_and_the_text_digest(event: MobileReceiverMessageEvent) -> None:
    app_cap = CapRule("app", "hour", 5)
    template = Template(name="t", body="hi {{ name }}", limits="day=1")
    message = composed(
        compose(
            rules(receiver_rules=(app_cap,), dedupe_window_ms=60_000), "a", event, [template], NOON
        )
    )
    assert message.checks.rules == (app_cap, CapRule("template", "day", 1))
    assert message.checks.dedupe_since_ms == NOON - 60_000
    assert message.checks.text_digest == text_digest("hi 张三")
    no_dedupe = composed(compose(rules(), "a", event, [], NOON))
    assert no_dedupe.checks.dedupe_since_ms is None
