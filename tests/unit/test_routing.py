"""Routes: first match wins; prefixes, regions and template patterns; fallback steps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iwork_mc.routing import Route, choose_route, region_of

MOBILE = Route(name="mobile", channels=("cmcc", "backup"), prefixes=("+86138", "+86139"))
ALARMS = Route(name="alarms", channels=("fast",), templates=("alarm-*",))
CHINA = Route(name="china", channels=("any-cn",), regions=("CN",))
EVERYTHING = Route(name="rest", channels=("sandbox",))


def test_the_first_matching_route_wins() -> None:
    routes = [MOBILE, ALARMS, CHINA, EVERYTHING]
    assert choose_route(routes, "+8613800000000", "") is MOBILE
    assert choose_route(routes, "+8615000000000", "alarm-fire") is ALARMS
    assert choose_route(routes, "+8615000000000", "") is CHINA
    assert choose_route(routes, "+14155550100", "") is EVERYTHING


def test_no_match_means_no_route() -> None:
    assert choose_route([MOBILE, CHINA], "+14155550100", "") is None


def test_an_empty_route_list_routes_nothing() -> None:
    """choose_route itself has no default: with no routes, nothing matches."""
    assert choose_route([], "+8613800000000", "") is None


def test_a_region_route_does_not_match_an_unknown_region() -> None:
    """A number whose region could not be found (None) matches no region route."""
    assert not CHINA.matches("+8613800000000", None, "")
    assert EVERYTHING.matches("+8613800000000", None, "")


def test_every_condition_of_a_route_must_hold() -> None:
    route = Route(name="r", channels=("a",), prefixes=("+86",), templates=("door",))
    assert route.matches("+8613800000000", None, "door")
    assert not route.matches("+8613800000000", None, "other")
    assert not route.matches("+14155550100", None, "door")


def test_steps_walk_the_channels_in_order() -> None:
    assert ("cmcc", "backup") == MOBILE.order_for(1) == MOBILE.order_for(2)


SPLIT = Route(name="split", channels=("cheap", "dear", "spare"), weights=(70, 30, 0))
keys = st.integers(min_value=1, max_value=2**63 - 1)


@given(keys)
def test_a_weighted_split_is_a_permutation_and_the_same_on_every_call(key: int) -> None:
    """A retry, or another worker, draws the same first channel for the same message."""
    order = SPLIT.order_for(key)
    assert order == SPLIT.order_for(key)
    assert sorted(order) == sorted(SPLIT.channels)
    assert "spare" != order[0]  # a zero weight is never a first choice
    assert tuple(c for c in SPLIT.channels if c != order[0]) == order[1:]


def test_a_weighted_split_follows_its_weights() -> None:
    """Over 10,000 message ids, a 70/30 split sends 70 % ± 2 % first to the heavier channel."""
    firsts = [SPLIT.order_for(key)[0] for key in range(1, 10_001)]
    assert 6_800 <= firsts.count("cheap") <= 7_200
    assert 10_000 == firsts.count("cheap") + firsts.count("dear")


def test_regions_are_looked_up_only_when_a_route_uses_them() -> None:
    """Without region routes the receiver is never parsed (so even nonsense routes)."""
    assert choose_route([MOBILE, ALARMS, EVERYTHING], "not-a-number", "") is EVERYTHING
    assert choose_route([CHINA], "not-a-number", "") is None


def test_the_region_of_a_number() -> None:
    assert ("CN", "US", None) == (
        region_of("+8613800000000"), region_of("+14155550100"), region_of("not-a-number"),
    )  # fmt: skip
