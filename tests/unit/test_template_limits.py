"""Unit tests for the template limits (iwork_mc.template_sandbox through Renderer).

Every probe of issue 9, defect 1, in a small but telling size: each either
allocated or ran without bound, or crashed with a traceback.  Each must now be
refused with the limit named, quickly and in little memory.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from test_templates import event

from iwork_mc.compose import AcceptRules, compose
from iwork_mc.messages import Rejection
from iwork_mc.template_sandbox import Limits
from iwork_mc.templates import (
    Renderer,
    RenderError,
    RenderTooSlow,
    Template,
    TemplateError,
    TemplateTooComplex,
)

#: Far above what a refused probe needs, far below what the unbounded ones took.
MAX_SECONDS = 2.0
MAX_BYTES = 16_000_000


@contextmanager
def bounded() -> Iterator[None]:
    """The block runs in under MAX_SECONDS and allocates under MAX_BYTES at its peak."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f} s"
    assert peak < MAX_BYTES, f"allocated {peak / 1e6:.1f} MB"


@pytest.fixture
def renderer() -> Renderer:
    return Renderer("Asia/Shanghai")


def doubled(rounds: int, step: str) -> str:
    """A namespace value doubled ``rounds`` times by ``step`` (a ``set`` statement)."""
    return (
        "{% set ns = namespace(s='x', l=[1], t=(1,)) %}"
        f"{{% for i in range({rounds}) %}}{step}{{% endfor %}}"
    )


RENDER_PROBES = {
    # CPU: 3,000 x 3,000 loop items (the report's 99,999 x 99,999 ran ~400 s).
    "nested loops": (
        "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}x",
        "loops ran more than 10000 times",
    ),
    "a range longer than the loop budget": (
        "{% for i in range(99999) %}{% endfor %}x",
        "a range longer than 10000",
    ),
    # Memory: strings doubled through a namespace (the report: +116 MB in 0.1 s).
    "doubling with +": (
        doubled(24, "{% set ns.s = ns.s + ns.s %}") + "{{ ns.s|length }}",
        "a joined value would exceed 65536 characters",
    ),
    "doubling with ~": (
        doubled(24, "{% set ns.s = ns.s ~ ns.s %}") + "{{ ns.s|length }}",
        "a joined text (~) would exceed",
    ),
    "doubling a shared list, printed": (
        doubled(60, "{% set ns.l = [ns.l, ns.l] %}") + "{{ ns.l }}",
        "went over a limit",
    ),
    "doubling a shared list, compared": (
        doubled(60, "{% set ns.l = [ns.l, ns.l] %}") + "{{ ns.l == [ns.l] }}",
        "went over a limit",
    ),
    "doubling a shared tuple, hashed": (
        doubled(60, "{% set ns.t = (ns.t, ns.t) %}") + "{{ {ns.t: 1} }}",
        "went over a limit",
    ),
    "a captured block": (
        "{% set s %}{% for i in range(400) %}{{ 'x' * 9000 }}{% endfor %}{% endset %}"
        "{{ s|length }}",
        "produced more than 65536 characters",
    ),
    # Widths.
    "center": ("{{ 'x'|center(20000000) }}", "a width of center 20000000 is above 65536"),
    "indent": ("{{ 'a\nb'|indent(20000000) }}", "a width of indent 20000000 is above 65536"),
    "format filter": ("{{ '%020000000d'|format(1) }}", "a formatted text would exceed"),
    "% operator": ("{{ '%020000000d' % 1 }}", "a formatted text would exceed"),
    "str.format": ("{{ '{:>20000000}'.format(1) }}", "a formatted text would exceed"),
    "ljust": ("{{ 'x'.ljust(20000000) }}", "a width of ljust() 20000000 is above 65536"),
    "rjust": ("{{ 'x'.rjust(20000000) }}", "a width of rjust() 20000000 is above 65536"),
    "zfill": ("{{ 'x'.zfill(20000000) }}", "a width of zfill() 20000000 is above 65536"),
    "to_bytes": ("{{ (1).to_bytes(20000000, 'big') }}", "a length of to_bytes() 20000000"),
    "replace": ("{{ ('a' * 9000)|replace('a', 'b' * 2000) }}", "a replaced text would exceed"),
    "join": ("{{ range(9000)|join('x' * 2000) }}", "a join would exceed"),
    "batch": ("{{ [1]|batch(20000000, 'x')|list }}", "a batch size 20000000 is above"),
    "sum of lists": ("{{ [[1] * 2000] * 2000|sum(start=[]) }}", "went over a limit"),
    # Integers: (((10**64)**64)**64)**8 is a 7-million-bit number.
    "integer chain": ("{{ (((10**64)**64)**64)**8 }}", "numbers larger than 4096 bits"),
    "integer product": ("{{ 10**1000 * 10**1000 }}", "numbers larger than 4096 bits"),
    "lipsum": ("{{ lipsum(5) }}", "needs 'lipsum'"),
    # Recursion: a traceback and HTTP 500 before.
    "macro recursion": (
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
        "calls nest deeper than 32",
    ),
    # Fan-out: 2**30 calls, each well within every other limit.
    "macro fan-out": (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(30) }}x",
        "ran longer than 100 ms",
    ),
}


@pytest.mark.parametrize("body, limit", RENDER_PROBES.values(), ids=RENDER_PROBES.keys())
def test_a_render_over_a_limit_fails_quickly_naming_the_limit(
    renderer: Renderer, body: str, limit: str
) -> None:
    """Each probe is a RenderError naming its limit, in bounded time and memory."""
    renderer.compile(body)
    with bounded(), pytest.raises(RenderError, match=r"went over a limit|needs") as excinfo:
        renderer.render(body, event())
    assert limit in str(excinfo.value)


COMPILE_PROBES = {
    "3,000-deep brackets": ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nests too deeply"),
    "3,000-deep filters": ("{{ x" + "|e" * 3000 + " }}", "nest"),
    "25 nested for": (
        "{% for a in [1] %}" * 25 + "x" + "{% endfor %}" * 25,
        "blocks nest deeper than 10",
    ),
    "120 nested if": ("{% if true %}" * 120 + "x" + "{% endif %}" * 120, "blocks nest deeper"),
    "40 nested lists": ("{{ " + "[" * 40 + "]" * 40 + " }}", "expressions nest deeper than 32"),
    "a 5,000-digit literal": ("{{ " + "9" * 5000 + " }}", "invalid literal"),
    "include": ("{% include 'other' %}", "include, import and extends are not available"),
    "import": ("{% import 'other' as o %}", "include, import and extends are not available"),
    "extends": ("{% extends 'other' %}", "include, import and extends are not available"),
    "a recursive loop": (
        "{% for x in data recursive %}{{ loop(x) }}{% endfor %}",
        "recursive loops are not available",
    ),
    "too long": ("x" * 8193, "longer than 8192 characters"),
}


@pytest.mark.parametrize("body, limit", COMPILE_PROBES.values(), ids=COMPILE_PROBES.keys())
def test_what_cannot_be_bounded_is_refused_at_compile_time(
    renderer: Renderer, body: str, limit: str
) -> None:
    """TemplateTooComplex (a TemplateError) naming the limit; never a RecursionError."""
    with bounded(), pytest.raises(TemplateTooComplex, match=limit):
        renderer.compile(body)


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'x'|center(20000000) }}",
        "{{ '%020000000d'|format(1) }}",
        "{{ 'ab'|replace('a', 'a' * 1)|center(20000000) }}",
    ],
)
def test_compiling_runs_no_filter(renderer: Renderer, body: str) -> None:
    """Jinja2 folds filters on literals while compiling: a create must not build their
    output (the report saw 9.4 GB from POST /v1/templates), nor keep it in the cache."""
    with bounded():
        renderer.compile(body)
    with pytest.raises(RenderError, match=r"is above 65536|would exceed"):
        renderer.render(body, event())


@pytest.mark.parametrize(
    "body, text",
    [
        ("{% for a in [1] %}" * 10 + "x" + "{% endfor %}" * 10, "x"),
        ("{{ " + "(" * 20 + "1" + ")" * 20 + " }}", "1"),
        ("{% for i in range(5000) %}{% endfor %}{{ range(3)|join(',') }}", "0,1,2"),
        ("{{ 'x' * 60000 }}", "x" * 60000),
        ("{{ '%05d|%-4s|' % (42, 'ab') }}{{ '{:>4}'.format('a') }}", "00042|ab  |   a"),
        ("{{ 'a\nb'|indent(2, true) }} {{ 'x'|center(5) }}.", "a\n  b   x  ."),
        (
            "{{ (2 ** 64) * 3 }} {{ [1, 2] + [3] }} {{ [1, 2]|sum }}",
            "55340232221128654848 [1, 2, 3] 3",
        ),
        ("{{ name ~ '!' }} {{ data == {'name': name} }}", "张三! True"),
        (
            "{% set ns = namespace(n=0) %}{% for k in data %}{% set ns.n = ns.n + 1 %}"
            "{% endfor %}{{ ns.n }}",
            "1",
        ),
        ("{{ name|replace('张', 'Zhang ') }} {{ ['a', 'b']|map('upper')|join }}", "Zhang 三 AB"),
        ("{{ event_time.strftime('%H:%M') }} {{ '-'.join(['a', 'b']) }}", "16:08 a-b"),
    ],
)
def test_ordinary_templates_are_well_within_the_limits(
    renderer: Renderer, body: str, text: str
) -> None:
    """Loops, arithmetic, formatting and filters an SMS template uses still render."""
    assert text == renderer.render(body, event())


def test_the_time_limit_is_the_renderers() -> None:
    """Renderer(limits=...) sets the budget: the same fan-out fails at its own deadline."""
    fan_out = (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(30) }}x"
    )
    started = time.perf_counter()
    with pytest.raises(RenderError, match="ran longer than 300 ms"):
        Renderer(limits=Limits(seconds=0.3)).render(fan_out, event())
    assert 0.3 <= time.perf_counter() - started < 0.3 + MAX_SECONDS


def test_each_render_has_its_own_budget(renderer: Renderer) -> None:
    """Loop items are counted per render, not per renderer."""
    body = "{% for i in range(9000) %}{% endfor %}ok"
    for _ in range(3):
        assert "ok" == renderer.render(body, event())


def test_a_compose_over_the_limit_is_a_template_render_failed(renderer: Renderer) -> None:
    """The accept path answers TEMPLATE_RENDER_FAILED, naming the template and the limit."""
    rules = AcceptRules(renderer=renderer, default_template="{{ name }}", max_segments=10)
    loops = Template(name="loops", body="{% for i in range(99999) %}{% endfor %}x")
    composed = compose(rules, "app", event(), [loops], 0, request_id="r")
    assert isinstance(composed, Rejection)
    assert "TEMPLATE_RENDER_FAILED" == composed.code
    assert "template 'loops' cannot render this event" in composed.reason
    assert "a range longer than 10000" in composed.reason


def test_a_syntax_error_is_still_a_plain_template_error(renderer: Renderer) -> None:
    """TemplateTooComplex is only for limits: a syntax error keeps its own class and line."""
    with pytest.raises(TemplateError, match=r"^line 1: ") as excinfo:
        renderer.compile("{% if %}")
    assert not isinstance(excinfo.value, TemplateTooComplex)


def test_a_trial_render_asks_for_more_time_only_when_more_time_would_help(
    renderer: Renderer,
) -> None:
    """A trial (the gateway's inline try) raises RenderTooSlow for a body not compiled yet
    or out of its trial time; it finishes a quick one, and fails other limits at once."""
    fan_out = (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(30) }}x"
    )
    with pytest.raises(RenderTooSlow):
        renderer.render("{{ name }}", event(), trial_seconds=0.005)
    renderer.compile("{{ name }}")
    assert "张三" == renderer.render("{{ name }}", event(), trial_seconds=0.005)
    renderer.compile(fan_out)
    started = time.perf_counter()
    with pytest.raises(RenderTooSlow):
        renderer.render(fan_out, event(), trial_seconds=0.005)
    assert time.perf_counter() - started < 0.05
    loops = "{% for i in range(99999) %}{% endfor %}x"
    renderer.compile(loops)
    with pytest.raises(RenderError, match="a range longer than 10000"):
        renderer.render(loops, event(), trial_seconds=0.005)
