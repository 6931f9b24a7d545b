"""Unit tests for iwork_mc.policies: caps, opt-out, dedupe, quiet hours and urgency (pure).

Clocks are fixed instants built from wall-clock times in named zones, so each
quiet-hours case reads as "at 23:30 in Shanghai, the message waits until 08:00".
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from iwork_mc.policies import (
    DUPLICATE_CONTENT,
    OPTED_OUT,
    RATE_LIMITED,
    WINDOWS_MS,
    AcceptChecks,
    CapRule,
    CountQuery,
    PolicyError,
    QuietHours,
    ReceiverFacts,
    is_urgent,
    parse_limits,
)

NOW_MS = 1_700_000_000_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR_MS = 3_600_000


def at(zone: ZoneInfo, *fields: int, fold: int = 0) -> int:
    """Epoch ms of a wall-clock time in ``zone``."""
    return int(datetime(*fields, tzinfo=zone, fold=fold).timestamp() * 1000)  # type: ignore[misc]


def local(zone: ZoneInfo, epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, zone)


def facts(*counts: int, opted_out: bool = False, duplicate_text: bool = False) -> ReceiverFacts:
    return ReceiverFacts(opted_out=opted_out, counts=counts, duplicate_text=duplicate_text)


# -- parse_limits ---------------------------------------------------------------------


def test_parse_limits_reads_every_window() -> None:
    """minute, hour and day each become a cap rule of the given scope, in order."""
    assert (
        CapRule("app", "minute", 2),
        CapRule("app", "hour", 10),
        CapRule("app", "day", 20),
    ) == parse_limits("minute=2,hour=10,day=20", "app")


def test_parse_limits_of_an_empty_text_is_no_rule() -> None:
    """ "" (and stray commas and spaces) means no cap."""
    assert () == parse_limits("", "global")
    assert () == parse_limits(" , ,", "global")


def test_parse_limits_tolerates_spaces_and_case() -> None:
    """Spaces around items and numbers, and upper-case windows, are accepted."""
    assert (CapRule("template", "hour", 5),) == parse_limits(" HOUR = 5 ", "template")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("week=3", "the window must be minute, hour or day"),
        ("=5", "the window must be minute, hour or day"),
        ("hour", "the limit must be a whole number of at least 1"),
        ("hour=", "the limit must be a whole number of at least 1"),
        ("hour=0", "the limit must be a whole number of at least 1"),
        ("hour=-1", "the limit must be a whole number of at least 1"),
        ("hour=+5", "the limit must be a whole number of at least 1"),
        ("hour=1.5", "the limit must be a whole number of at least 1"),
        ("hour=ten", "the limit must be a whole number of at least 1"),
        ("minute=²", "the limit must be a whole number of at least 1"),
        ("hour=5,hour=6", "a window is given twice"),
        ("hour=5, HOUR=6", "a window is given twice"),
    ],
)
def test_parse_limits_rejects_bad_items_with_a_clear_message(text: str, message: str) -> None:
    """Each bad setting raises PolicyError quoting the item and saying what is wrong."""
    with pytest.raises(PolicyError, match=message) as caught:
        parse_limits(text, "app")
    assert repr(text.split(",")[0].strip()) in str(caught.value) or repr(text) in str(caught.value)


@given(
    st.dictionaries(
        st.sampled_from(sorted(WINDOWS_MS)), st.integers(min_value=1, max_value=10**6), min_size=1
    ),
    st.sampled_from(["app", "global", "template"]),
)
def test_parse_limits_reads_back_what_was_written(limits: dict[str, int], scope: str) -> None:
    """Any set of windows and positive limits, written out, parses to the same rules."""
    text = ",".join(f"{window}={limit}" for window, limit in limits.items())
    rules = parse_limits(text, scope)  # type: ignore[arg-type]
    assert limits == {rule.window: rule.limit for rule in rules}
    assert {scope} == {rule.scope for rule in rules}


def test_a_cap_rule_looks_back_over_its_window() -> None:
    """since_ms is now minus the window, and count_queries carries it with the scope."""
    rules = (CapRule("app", "minute", 1), CapRule("global", "day", 9))
    checks = AcceptChecks(rules=rules, now_ms=NOW_MS)
    assert (
        CountQuery("app", NOW_MS - 60_000),
        CountQuery("global", NOW_MS - 86_400_000),
    ) == checks.count_queries


# -- AcceptChecks.decide --------------------------------------------------------------


def test_decide_accepts_when_nothing_declines() -> None:
    """No opt-out, no duplicate, every count below its limit: accepted."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 3),), now_ms=NOW_MS)
    assert checks.decide(facts(2)) is None


def test_decide_passes_one_below_the_limit() -> None:
    """count == limit - 1 passes: this message is the limit-th."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 10),), now_ms=NOW_MS)
    assert checks.decide(facts(9)) is None


def test_decide_rejects_at_the_limit() -> None:
    """count == limit rejects with RECEIVER_RATE_LIMITED and a reason naming the cap."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 10),), now_ms=NOW_MS)
    rejection = checks.decide(facts(10))
    assert rejection is not None
    assert RATE_LIMITED == rejection.code
    assert (
        "the receiver already had 10 messages in the last hour from this app (limit 10)"
        == rejection.reason
    )


@pytest.mark.parametrize(
    ("scope", "words"),
    [("app", "from this app"), ("global", "from all apps"), ("template", "from this template")],
)
def test_a_rate_limit_reason_names_its_scope(scope: str, words: str) -> None:
    """The reason says whose messages were counted."""
    checks = AcceptChecks(rules=(CapRule(scope, "day", 1),), now_ms=NOW_MS)  # type: ignore[arg-type]
    rejection = checks.decide(facts(1))
    assert rejection is not None
    assert rejection.reason.endswith(f"{words} (limit 1)")


def test_the_first_exceeded_cap_is_reported() -> None:
    """With several caps over their limits, the reason names the first rule."""
    rules = (CapRule("app", "minute", 1), CapRule("global", "day", 1))
    rejection = AcceptChecks(rules=rules, now_ms=NOW_MS).decide(facts(5, 5))
    assert rejection is not None
    assert "in the last minute from this app" in rejection.reason


def test_opt_out_wins_over_everything() -> None:
    """An opted-out receiver is RECEIVER_OPTED_OUT even when also duplicate and over caps."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 1),), now_ms=NOW_MS)
    rejection = checks.decide(facts(7, opted_out=True, duplicate_text=True))
    assert rejection is not None
    assert (OPTED_OUT, "the receiver has opted out of messages") == (
        rejection.code,
        rejection.reason,
    )


def test_duplicate_content_wins_over_caps() -> None:
    """The same text within the dedupe window is DUPLICATE_CONTENT, before any cap."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 1),), now_ms=NOW_MS)
    rejection = checks.decide(facts(7, duplicate_text=True))
    assert rejection is not None
    assert DUPLICATE_CONTENT == rejection.code


def test_decide_needs_one_count_per_rule() -> None:
    """Facts with a count missing are a programming error, not an acceptance."""
    checks = AcceptChecks(rules=(CapRule("app", "hour", 1), CapRule("app", "day", 2)), now_ms=0)
    with pytest.raises(ValueError):
        checks.decide(facts(0))


@st.composite
def rules_and_counts(draw: st.DrawFn) -> tuple[tuple[CapRule, ...], tuple[int, ...]]:
    windows = draw(st.lists(st.sampled_from(sorted(WINDOWS_MS)), unique=True))
    rules = tuple(
        CapRule(
            draw(st.sampled_from(["app", "global", "template"])),
            window,
            draw(st.integers(min_value=1, max_value=50)),
        )
        for window in windows
    )
    counts = tuple(draw(st.integers(min_value=0, max_value=60)) for _ in rules)
    return rules, counts


@given(rules_and_counts(), st.booleans(), st.booleans())
def test_decide_rejects_exactly_when_some_policy_is_hit(
    drawn: tuple[tuple[CapRule, ...], tuple[int, ...]], opted_out: bool, duplicate: bool
) -> None:
    """Rejected iff opted out, or duplicate, or some count is at or over its limit."""
    rules, counts = drawn
    checks = AcceptChecks(rules=rules, now_ms=NOW_MS)
    rejection = checks.decide(facts(*counts, opted_out=opted_out, duplicate_text=duplicate))
    over = any(count >= rule.limit for rule, count in zip(rules, counts, strict=True))
    assert (opted_out or duplicate or over) == (rejection is not None)
    if rejection is not None:
        expected = OPTED_OUT if opted_out else DUPLICATE_CONTENT if duplicate else RATE_LIMITED
        assert expected == rejection.code


# -- QuietHours.parse -----------------------------------------------------------------


def test_quiet_hours_parse_reads_a_window_and_a_zone() -> None:
    """ "22:00-08:00" in Asia/Shanghai is a window spanning midnight."""
    assert QuietHours(time(22, 0), time(8, 0), SHANGHAI) == QuietHours.parse(
        "22:00-08:00", "Asia/Shanghai"
    )


def test_quiet_hours_parse_tolerates_spaces_and_one_digit_hours() -> None:
    """ " 7:00 - 9:30 " is 07:00–09:30."""
    assert QuietHours(time(7, 0), time(9, 30), SHANGHAI) == QuietHours.parse(
        " 7:00 - 9:30 ", "Asia/Shanghai"
    )


def test_empty_quiet_hours_mean_none() -> None:
    """An empty or blank setting turns quiet hours off."""
    assert QuietHours.parse("", "Asia/Shanghai") is None
    assert QuietHours.parse("   ", "Asia/Shanghai") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("22-08", "expected HH:MM-HH:MM"),
        ("22:00", "expected HH:MM-HH:MM"),
        ("22:0-08:00", "expected HH:MM-HH:MM"),
        ("22:00-08:00x", "expected HH:MM-HH:MM"),
        ("24:00-08:00", "not a time of day"),
        ("22:00-08:60", "not a time of day"),
        ("08:00-08:00", "start and end are the same"),
    ],
)
def test_quiet_hours_parse_rejects_bad_windows(text: str, message: str) -> None:
    """A malformed window raises PolicyError quoting the setting."""
    with pytest.raises(PolicyError, match=message) as caught:
        QuietHours.parse(text, "Asia/Shanghai")
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "America", "../etc/passwd", "Asia/Shanghai "])
def test_quiet_hours_parse_rejects_unknown_zones(zone: str) -> None:
    """Any zone that is not a zone (a directory of zones too) is a PolicyError."""
    with pytest.raises(PolicyError, match="is unknown"):
        QuietHours.parse("22:00-08:00", zone)


# -- QuietHours.deferral --------------------------------------------------------------

NIGHT = QuietHours(time(22, 0), time(8, 0), SHANGHAI)
LUNCH = QuietHours(time(12, 0), time(13, 30), SHANGHAI)


def test_outside_the_window_nothing_is_deferred() -> None:
    """At 15:00 in Shanghai, a 22:00–08:00 window defers nothing."""
    assert NIGHT.deferral(at(SHANGHAI, 2024, 5, 1, 15, 0)) is None


def test_before_midnight_the_deferral_is_the_next_morning() -> None:
    """At 23:30, a 22:00–08:00 window defers to 08:00 the next day."""
    assert at(SHANGHAI, 2024, 5, 2, 8, 0) == NIGHT.deferral(at(SHANGHAI, 2024, 5, 1, 23, 30))


def test_after_midnight_the_deferral_is_the_same_morning() -> None:
    """At 03:00, a 22:00–08:00 window defers to 08:00 the same day."""
    assert at(SHANGHAI, 2024, 5, 2, 8, 0) == NIGHT.deferral(at(SHANGHAI, 2024, 5, 2, 3, 0))


def test_a_daytime_window_defers_to_its_end_the_same_day() -> None:
    """At 12:45, a 12:00–13:30 window defers to 13:30."""
    assert at(SHANGHAI, 2024, 5, 1, 13, 30) == LUNCH.deferral(at(SHANGHAI, 2024, 5, 1, 12, 45))


def test_the_window_start_is_inside() -> None:
    """Exactly at the start (22:00:00.000) the message is deferred."""
    assert at(SHANGHAI, 2024, 5, 2, 8, 0) == NIGHT.deferral(at(SHANGHAI, 2024, 5, 1, 22, 0))


def test_the_window_end_is_outside() -> None:
    """Exactly at the end (08:00:00.000) nothing is deferred."""
    assert NIGHT.deferral(at(SHANGHAI, 2024, 5, 2, 8, 0)) is None
    assert LUNCH.deferral(at(SHANGHAI, 2024, 5, 1, 13, 30)) is None


def test_one_millisecond_before_the_end_is_inside() -> None:
    """At 07:59:59.999 the message waits the last millisecond."""
    end = at(SHANGHAI, 2024, 5, 2, 8, 0)
    assert end == NIGHT.deferral(end - 1)


def test_one_millisecond_before_the_start_is_outside() -> None:
    """At 21:59:59.999 nothing is deferred yet."""
    assert NIGHT.deferral(at(SHANGHAI, 2024, 5, 1, 22, 0) - 1) is None


def test_the_window_is_read_in_its_own_zone() -> None:
    """23:00 in Berlin is 06:00 in Shanghai (summer): inside Shanghai's night window."""
    now = at(BERLIN, 2024, 7, 1, 0, 0)  # 06:00 in Shanghai
    assert at(SHANGHAI, 2024, 7, 1, 8, 0) == NIGHT.deferral(now)


BERLIN_NIGHT = QuietHours(time(22, 0), time(8, 0), BERLIN)


def test_a_night_across_the_spring_change_is_an_hour_shorter() -> None:
    """31 March 2024, Berlin: 23:00 CET to 08:00 CEST is 8 hours of real time, not 9."""
    now = at(BERLIN, 2024, 3, 30, 23, 0)
    deferral = BERLIN_NIGHT.deferral(now)
    assert at(BERLIN, 2024, 3, 31, 8, 0) == deferral
    assert 8 * HOUR_MS == deferral - now  # type: ignore[operator]


def test_a_night_across_the_autumn_change_is_an_hour_longer() -> None:
    """27 October 2024, Berlin: 23:00 CEST to 08:00 CET is 10 hours of real time, not 9."""
    now = at(BERLIN, 2024, 10, 26, 23, 0)
    deferral = BERLIN_NIGHT.deferral(now)
    assert at(BERLIN, 2024, 10, 27, 8, 0) == deferral
    assert 10 * HOUR_MS == deferral - now  # type: ignore[operator]


def test_an_end_inside_the_spring_gap_lands_after_the_gap() -> None:
    """A window ending 02:30 on the night 02:00–03:00 does not exist ends after the clocks jump."""
    window = QuietHours(time(1, 0), time(2, 30), BERLIN)
    now = at(BERLIN, 2024, 3, 31, 1, 30)
    deferral = window.deferral(now)
    assert deferral is not None
    assert deferral > now
    assert local(BERLIN, deferral).time() >= time(3, 0)
    assert window.deferral(deferral) is None


def test_the_repeated_autumn_hour_defers_to_the_second_end() -> None:
    """In the second 02:10 of 27 October (CET), a 01:00–02:30 window ends at 02:30 CET."""
    window = QuietHours(time(1, 0), time(2, 30), BERLIN)
    now = at(BERLIN, 2024, 10, 27, 2, 10, fold=1)
    assert at(BERLIN, 2024, 10, 27, 2, 30, fold=1) == window.deferral(now)


def test_the_first_autumn_hour_defers_to_the_first_end() -> None:
    """In the first 02:10 of 27 October (CEST), a 01:00–02:30 window ends at 02:30 CEST."""
    window = QuietHours(time(1, 0), time(2, 30), BERLIN)
    now = at(BERLIN, 2024, 10, 27, 2, 10, fold=0)
    assert at(BERLIN, 2024, 10, 27, 2, 30, fold=0) == window.deferral(now)


ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
clock_times = st.builds(
    time, st.integers(min_value=0, max_value=23), st.sampled_from([0, 1, 15, 29, 30, 45, 59])
)
instants = st.integers(
    min_value=at(ZoneInfo("UTC"), 2024, 1, 1), max_value=at(ZoneInfo("UTC"), 2025, 12, 31)
)


@given(clock_times, clock_times, st.sampled_from(ZONES), instants)
def test_a_deferral_is_in_the_future_and_outside_the_window(
    start: time, end: time, zone: str, now_ms: int
) -> None:
    """Whenever a message is deferred, it is to a later instant that is not quiet."""
    assume(start != end)
    quiet = QuietHours(start, end, ZoneInfo(zone))
    deferral = quiet.deferral(now_ms)
    if deferral is not None:
        assert deferral > now_ms
        assert quiet.deferral(deferral) is None


@given(clock_times, clock_times, st.sampled_from(ZONES), instants)
def test_a_deferral_is_at_most_a_day_and_an_hour_away(
    start: time, end: time, zone: str, now_ms: int
) -> None:
    """No window, DST or not, holds a message longer than 25 hours."""
    assume(start != end)
    deferral = QuietHours(start, end, ZoneInfo(zone)).deferral(now_ms)
    if deferral is not None:
        assert deferral - now_ms <= timedelta(hours=25) / timedelta(milliseconds=1)


@given(clock_times, clock_times, instants)
def test_without_dst_deferral_is_exactly_the_wall_clock_window(
    start: time, end: time, now_ms: int
) -> None:
    """In a zone without DST, deferred iff the local time is in [start, end), to the next end."""
    assume(start != end)
    quiet = QuietHours(start, end, SHANGHAI)
    clock = local(SHANGHAI, now_ms).time()
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    deferral = quiet.deferral(now_ms)
    assert inside == (deferral is not None)
    if deferral is not None:
        assert end == local(SHANGHAI, deferral).time()


# -- is_urgent ------------------------------------------------------------------------


def test_an_urgent_template_is_urgent() -> None:
    """A template marked urgent makes every message it renders urgent."""
    assert is_urgent(True, {})


def test_json_data_urgent_true_is_urgent() -> None:
    """An event whose json_data says "urgent": true is urgent."""
    assert is_urgent(False, {"urgent": True})


@pytest.mark.parametrize("value", ["true", 1, "yes", None, False])
def test_only_the_json_boolean_true_is_urgent(value: object) -> None:
    """Truthy look-alikes ("true", 1) do not make a message urgent."""
    assert not is_urgent(False, {"urgent": value})


def test_no_urgent_flag_is_not_urgent() -> None:
    """A plain template and json_data without "urgent" are not urgent."""
    assert not is_urgent(False, {"name": "张三"})


def test_a_window_whose_open_part_falls_in_the_spring_gap_defers_to_the_next_day() -> None:
    """02:45–02:30 leaves only 02:30–02:45 open, which 31 March 2024 skips: wait a day."""
    window = QuietHours(time(2, 45), time(2, 30), BERLIN)
    deferral = window.deferral(at(BERLIN, 2024, 3, 31, 1, 0))
    assert at(BERLIN, 2024, 4, 1, 2, 30) == deferral
    assert window.deferral(deferral) is None
