"""Unit tests for iwork_mc.templates: which template an event uses, and what it renders (pure)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.templates import (
    DEFAULT_TEMPLATE,
    Renderer,
    RenderError,
    Template,
    TemplateError,
    default_text,
    select_template,
    text_digest,
)

APP = "12345678"


def event(**overrides: Any) -> MobileReceiverMessageEvent:
    """The seed's example event; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "msg_key": "0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327",
        "event_time_millis": 1505376496485,
        "source": "iwork",
        "action": "iwork-action",
        "mobile_receiver": "+8613888888888",
        "event_type": "mobile_receiver",
        "json_data": '{"name":"张三"}',
        "sender": 10000,
        "resource_id": "1",
        "resource_url": "http://www.aaa.com",
    }
    return MobileReceiverMessageEvent(**(fields | overrides))


def template(
    name: str, *, app: str = "", source: str = "", action: str = "", kind: str = ""
) -> Template:
    return Template(
        name=name, body=name, app_key=app, source=source, action=action, event_type=kind
    )


@pytest.fixture
def renderer() -> Renderer:
    return Renderer("Asia/Shanghai")


# -- select_template ------------------------------------------------------------------

#: The docstring's precedence, most specific first, for app APP and event (iwork, iwork-action, mobile_receiver).
PRECEDENCE = [
    template("A,s,a,t", app=APP, source="iwork", action="iwork-action", kind="mobile_receiver"),
    template("*,s,a,t", source="iwork", action="iwork-action", kind="mobile_receiver"),
    template("A,s,a,*", app=APP, source="iwork", action="iwork-action"),
    template("*,s,a,*", source="iwork", action="iwork-action"),
    template("A,*,a,*", app=APP, action="iwork-action"),
    template("*,*,a,*", action="iwork-action"),
    template("A,*,*,*", app=APP),
    template("*,*,*,*"),
]


@pytest.mark.parametrize("rank", range(len(PRECEDENCE)), ids=[t.name for t in PRECEDENCE])
def test_select_template_follows_the_documented_precedence(rank: int) -> None:
    """Of the templates from ``rank`` down the docstring's table, the first one wins."""
    candidates = PRECEDENCE[rank:]
    assert PRECEDENCE[rank] == select_template(reversed(candidates), APP, event())


def test_no_matching_template_means_the_default() -> None:
    """None (the caller uses the configured default) when no template matches."""
    others = [template("other app", app="87654321"), template("other action", action="left")]
    assert select_template(others, APP, event()) is None


def test_a_template_of_another_app_never_matches() -> None:
    """An app-specific template is not used for another app, however specific it is."""
    mine = template("mine")
    theirs = template(
        "theirs", app="87654321", source="iwork", action="iwork-action", kind="mobile_receiver"
    )
    assert mine == select_template([theirs, mine], APP, event())


def test_event_type_outranks_source_action_and_app_together() -> None:
    """A template giving only event_type beats one giving app, source and action."""
    by_type = template("type", kind="mobile_receiver")
    by_rest = template("rest", app=APP, source="iwork", action="iwork-action")
    assert by_type == select_template([by_rest, by_type], APP, event())


def test_source_outranks_action_and_app() -> None:
    """A template giving only source beats one giving app and action."""
    by_source = template("source", source="iwork")
    by_rest = template("rest", app=APP, action="iwork-action")
    assert by_source == select_template([by_rest, by_source], APP, event())


fields = st.sampled_from(["", "x", "y"])


@st.composite
def template_sets(draw: st.DrawFn) -> list[Template]:
    """Templates with distinct selection keys (the store refuses a second one)."""
    keys = draw(st.lists(st.tuples(fields, fields, fields, fields), unique=True, max_size=30))
    return [
        Template(name=f"t{i}", body="b", app_key=a, source=s, action=c, event_type=t)
        for i, (a, s, c, t) in enumerate(keys)
    ]


@given(template_sets(), st.sampled_from(["x", "y"]), fields, fields, fields, st.randoms())
def test_the_selected_template_matches_and_none_more_specific_does(
    templates: list[Template], app: str, source: str, action: str, kind: str, rng: Any
) -> None:
    """The choice matches the event, no matching template is more specific, and order is moot."""
    subject = event(source=source or "z", action=action or "z", event_type=kind or "z")
    chosen = select_template(templates, app, subject)
    matching = [t for t in templates if t.matches(app, subject)]
    if not matching:
        assert chosen is None
        return
    assert chosen is not None
    assert chosen.matches(app, subject)
    assert all(t.specificity <= chosen.specificity for t in matching)
    shuffled = list(templates)
    rng.shuffle(shuffled)
    assert chosen == select_template(shuffled, app, subject)


# -- Renderer: variables --------------------------------------------------------------


def test_the_default_template_renders_the_seed_example(renderer: Renderer) -> None:
    """DEFAULT_TEMPLATE gives the README's text for the seed's event."""
    assert "iwork-action: name: 张三 http://www.aaa.com" == renderer.render(
        DEFAULT_TEMPLATE, event()
    )


def test_the_default_template_lists_every_member_and_skips_an_absent_url(
    renderer: Renderer,
) -> None:
    """Members are joined by ", " in order, non-strings as JSON; no URL, no trailing space."""
    subject = event(json_data='{"name":"张三","floor":3,"tags":["a"]}', resource_url=None)
    assert 'iwork-action: name: 张三, floor: 3, tags: ["a"]' == renderer.render(
        DEFAULT_TEMPLATE, subject
    )


def test_the_default_template_with_empty_json_data_is_the_action(renderer: Renderer) -> None:
    """With no members, the text is the action (and the URL)."""
    assert "iwork-action http://www.aaa.com" == renderer.render(
        DEFAULT_TEMPLATE, event(json_data="{}")
    )


def test_json_data_members_are_variables(renderer: Renderer) -> None:
    """Each json_data member is a variable by its own name."""
    subject = event(json_data='{"name":"张三","room":"A-301"}')
    assert "张三 → A-301" == renderer.render("{{ name }} → {{ room }}", subject)


def test_data_is_the_whole_json_data_object(renderer: Renderer) -> None:
    """``data`` reaches members by key, including names that are not identifiers."""
    subject = event(json_data='{"visitor name":"李四"}')
    assert "李四" == renderer.render("{{ data['visitor name'] }}", subject)


def test_event_fields_are_variables(renderer: Renderer) -> None:
    """source, action, event_type, msg_key, sender, resource_id and resource_url are set."""
    body = "{{ source }}|{{ action }}|{{ event_type }}|{{ sender }}|{{ resource_id }}|{{ resource_url }}|{{ msg_key }}"
    assert (
        "iwork|iwork-action|mobile_receiver|10000|1|http://www.aaa.com|0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327"
        == renderer.render(body, event())
    )


def test_event_fields_win_over_json_data_members(renderer: Renderer) -> None:
    """A json_data member named like an event field does not replace it."""
    subject = event(json_data='{"source":"forged","action":"forged"}')
    assert "iwork iwork-action" == renderer.render("{{ source }} {{ action }}", subject)


def test_event_time_is_in_the_renderer_zone(renderer: Renderer) -> None:
    """event_time is an aware datetime in the configured zone; the millis stay as given."""
    text = renderer.render(
        "{{ event_time.strftime('%Y-%m-%d %H:%M %Z') }} {{ event_time_millis }}", event()
    )
    expected = datetime.fromtimestamp(1505376496.485, ZoneInfo("Asia/Shanghai"))
    assert f"{expected:%Y-%m-%d %H:%M} CST 1505376496485" == text


def test_an_absent_resource_url_is_none(renderer: Renderer) -> None:
    """resource_url is None when the event has none, so templates can test for it."""
    body = "{% if resource_url is none %}no link{% endif %}"
    assert "no link" == renderer.render(body, event(resource_url=None))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"张三"', "张三"),
        ("3", "3"),
        ("true", "true"),
        ("null", "null"),
        ('["a",1]', '["a",1]'),
        ('{"k":"值"}', '{"k":"值"}'),
    ],
)
def test_the_plain_filter_keeps_strings_and_writes_the_rest_as_compact_json(
    renderer: Renderer, value: str, expected: str
) -> None:
    """Strings as they are; numbers, booleans, null, lists, objects as compact JSON."""
    subject = event(json_data=f'{{"v":{value}}}')
    assert expected == renderer.render("{{ v | plain }}", subject)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=5))
def test_data_plain_round_trips_json_data(members: dict[str, str]) -> None:
    """``data | plain`` is JSON that reads back as json_data."""
    subject = event(json_data=json.dumps(members, ensure_ascii=False))
    text = Renderer().render("[{{ data | plain }}]", subject)
    assert members == json.loads(text[1:-1])


def test_the_text_is_trimmed(renderer: Renderer) -> None:
    """Leading and trailing whitespace and newlines are dropped."""
    assert "hello" == renderer.render("\n  hello \n\n", event())


# -- Renderer: errors -----------------------------------------------------------------


def test_an_undefined_variable_is_a_render_error_naming_it(renderer: Renderer) -> None:
    """StrictUndefined: a variable the event lacks fails at render time, by name."""
    with pytest.raises(RenderError, match="the template needs 'floor'"):
        renderer.render("floor {{ floor }}", event())


def test_a_missing_member_of_data_is_a_render_error(renderer: Renderer) -> None:
    """Looking up a member json_data lacks fails too, not renders as empty."""
    with pytest.raises(RenderError, match="floor"):
        renderer.render("{{ data.floor }}", event())


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__len__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ data.__class__ }}",
    ],
)
def test_the_sandbox_blocks_attribute_escapes(renderer: Renderer, body: str) -> None:
    """Reaching Python internals through dunder attributes is a RenderError ("unsafe")."""
    with pytest.raises(RenderError, match="unsafe"):
        renderer.render(body, event())


def test_the_sandbox_caps_ranges(renderer: Renderer) -> None:
    """A huge range() is refused instead of looping for ever."""
    with pytest.raises(RenderError, match="a range longer than 10000 is not allowed"):
        renderer.render("{% for i in range(10**9) %}{% endfor %}x", event())


def test_an_error_of_the_template_logic_is_a_render_error(renderer: Renderer) -> None:
    """Arithmetic and type errors inside a template fail as RenderError with their kind."""
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        renderer.render("{{ 1 / 0 }}", event())
    with pytest.raises(RenderError, match="TypeError"):
        renderer.render("{{ event_time | plain }}", event())


def test_a_syntax_error_is_a_template_error_with_its_line(renderer: Renderer) -> None:
    """compile() names the line of the error."""
    with pytest.raises(TemplateError, match=r"^line 3: "):
        renderer.compile("first\nsecond\n{% if %}")


def test_rendering_a_template_with_a_syntax_error_is_a_render_error(renderer: Renderer) -> None:
    """render() reports an invalid template as a RenderError that keeps the line."""
    with pytest.raises(RenderError, match="the template is not valid: line 2: "):
        renderer.render("a\n{{ x", event())


@pytest.mark.parametrize("body", ["", "   ", "\n\n", "{% if false %}x{% endif %}"])
def test_an_empty_text_is_a_render_error(renderer: Renderer, body: str) -> None:
    """A template that renders nothing (or only whitespace) cannot be sent."""
    with pytest.raises(RenderError, match="empty text"):
        renderer.render(body, event())


# -- compiling and digests ------------------------------------------------------------


def test_compile_reuses_a_compiled_template(renderer: Renderer) -> None:
    """The same body is compiled once."""
    assert renderer.compile("{{ name }}") is renderer.compile("{{ name }}")


def test_the_compile_cache_forgets_the_least_recently_used() -> None:
    """Past cache_size bodies, the least recently used one is compiled again."""
    small = Renderer(cache_size=2)
    first = small.compile("a")
    small.compile("b")
    assert first is small.compile("a")  # "a" is now the most recent
    small.compile("c")  # evicts "b"
    assert first is small.compile("a")


def test_text_digest_is_sha256_hex() -> None:
    """The dedupe digest is the SHA-256 of the UTF-8 text, in hex."""
    assert "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" == text_digest("")
    assert text_digest("张三") != text_digest("张 三")


@pytest.mark.parametrize(
    "body",
    ["{{ 'a' * 10**9 }}", "{{ [0] * 100000 }}", "{{ 100000 * 'ab' }}", "{{ 10 ** (10 ** 10) }}"],
)
def test_templates_cannot_build_huge_values(renderer: Renderer, body: str) -> None:
    """Apps write templates too (REST): repeats and powers are bounded, not just attributes."""
    with pytest.raises(RenderError, match="went over a limit"):
        renderer.render(body, event())


def test_small_repeats_and_powers_still_work(renderer: Renderer) -> None:
    assert "ababab 1024" == renderer.render("{{ 'ab' * 3 }} {{ 2 ** 10 }}", event())


def test_a_missing_data_member_is_named_plainly(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match=r"needs 'floor' \(a member the event's data lacks\)"):
        renderer.render("{{ data.floor }}", event())


def test_messages_stored_without_a_text_get_the_default_templates_text() -> None:
    """default_text is what the worker sends for rows stored before accept-time rendering."""
    assert "iwork-action: name: 张三 http://www.aaa.com" == default_text(event())
