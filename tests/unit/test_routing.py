"""Routes: first match wins; prefixes, regions and template patterns; fallback steps."""

from __future__ import annotations

from iwork_mc.routing import Route, choose_route, needs_region

MOBILE = Route(name="mobile", channels=("cmcc", "backup"), prefixes=("+86138", "+86139"))
ALARMS = Route(name="alarms", channels=("fast",), templates=("alarm-*",))
CHINA = Route(name="china", channels=("any-cn",), regions=("CN",))
EVERYTHING = Route(name="rest", channels=("sandbox",))


def test_the_first_matching_route_wins() -> None:
    routes = [MOBILE, ALARMS, CHINA, EVERYTHING]
    assert choose_route(routes, "+8613800000000", "CN", "") is MOBILE
    assert choose_route(routes, "+8615000000000", "CN", "alarm-fire") is ALARMS
    assert choose_route(routes, "+8615000000000", "CN", "") is CHINA
    assert choose_route(routes, "+14155550100", "US", "") is EVERYTHING


def test_no_match_means_no_route() -> None:
    assert choose_route([MOBILE, CHINA], "+14155550100", "US", "") is None


def test_every_condition_of_a_route_must_hold() -> None:
    route = Route(name="r", channels=("a",), prefixes=("+86",), templates=("door",))
    assert route.matches("+8613800000000", None, "door")
    assert not route.matches("+8613800000000", None, "other")
    assert not route.matches("+14155550100", None, "door")


def test_steps_walk_the_channels_in_order() -> None:
    assert [MOBILE.channel_at(step) for step in range(3)] == ["cmcc", "backup", None]


def test_regions_are_looked_up_only_when_a_route_uses_them() -> None:
    assert not needs_region([MOBILE, ALARMS])
    assert needs_region([MOBILE, CHINA])
