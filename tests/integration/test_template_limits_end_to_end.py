"""Template limits through every door: TOP calls, /v1 and the CLI (issue 9, defect 1).

A tenant's template that would run, allocate or recurse without bound gets a
clear answer on every path (TEMPLATE_RENDER_FAILED, a 4xx, an ``error:`` line),
never code 10, a 500 or a traceback; and a render that uses its whole time
budget leaves the gateway's event loop serving everyone else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cli_admin import (  # the CLI fixtures, shared rather than copied
    EVENT,
    _keep_structlog_config,  # noqa: F401 - an autouse fixture
    error,
    iwork,  # noqa: F401 - a fixture
    sqlite_db,  # noqa: F401 - a fixture
)
from typer.testing import Result

from iwork_mc.apps import App
from iwork_mc.client import RestAPIError, RestClient
from iwork_mc.config import Settings
from iwork_mc.templates import Template

from servers import GatewayThread
from topcalls import event_json, java_layout, signed

DEEP_BRACKETS = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
DEEP_FORS = "{% for a in [1] %}" * 25 + "x" + "{% endfor %}" * 25
NESTED_LOOPS = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}x"
MACRO_RECURSION = "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}"
#: Within every limit but time: 2**30 macro calls.
FAN_OUT = (
    "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(30) }}x"
)
#: The render time limit of this module's gateway: long enough to see the loop run meanwhile.
RENDER_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("template-limits"),
        app_cache_ttl_s=0,
        template_cache_ttl_s=0,
        template_render_timeout_s=RENDER_TIMEOUT_S,
    )
    with GatewayThread(settings) as gw:
        yield gw


@pytest.fixture(scope="module")
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # Before the fix, NESTED_LOOPS held the gateway for many seconds: fail, don't hang.
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def rest(gateway: GatewayThread, app: App) -> Iterator[RestClient]:
    with RestClient(f"http://127.0.0.1:{gateway.port}", app.app_key, app.secret) as client:
        yield client


def stored(gateway: GatewayThread, body: str) -> str:
    """Store a template (as an operator could, past every check) for a fresh action."""
    action = f"a-{secrets.token_hex(4)}"
    template = Template(name=action, action=action, body=body)
    gateway.run(gateway.store.insert_template(template))  # type: ignore[union-attr]
    return action


def send(http: httpx.Client, gw: GatewayThread, app: App, action: str) -> dict[str, Any]:
    event = event_json(action=action, msg_key=f"k-{time.time_ns()}")
    call = signed(app.app_key, app.secret, event=event, format="json")
    response = http.post(gw.url, **java_layout(call))
    assert 200 == response.status_code
    answer: dict[str, Any] = response.json()
    assert "error_response" not in answer, answer
    return dict(answer["alibaba_iwork_mc_msg_sendmobile_response"]["result"])


@pytest.mark.parametrize(
    "body, limit",
    [
        (NESTED_LOOPS, "loops ran more than 10000 times"),
        (MACRO_RECURSION, "calls nest deeper than 32"),
        (DEEP_BRACKETS, "nests too deeply"),
        (DEEP_FORS, "blocks nest deeper than 10"),
        ("{{ 'x'|center(20000000) }}", "a width of center 20000000 is above 65536"),
    ],
    ids=["nested loops", "macro recursion", "deep brackets", "deep fors", "center"],
)
def test_a_top_call_through_a_template_over_a_limit_is_declined_quickly(
    gateway: GatewayThread,
    app: App,
    http: httpx.Client,
    capfd: pytest.CaptureFixture[str],
    body: str,
    limit: str,
) -> None:
    """TEMPLATE_RENDER_FAILED naming the limit, within the time limit; nothing stored,
    and no traceback in the gateway's log (before: code 10, or a gateway held for minutes)."""
    action = stored(gateway, body)
    before = gateway.message_count()
    started = time.perf_counter()
    result = send(http, gateway, app, action)
    assert time.perf_counter() - started < RENDER_TIMEOUT_S + 2
    assert (False, "TEMPLATE_RENDER_FAILED") == (result["success"], result["error_code"])
    assert f"template '{action}' cannot render this event" in result["error_msg"]
    assert limit in result["error_msg"]
    assert before == gateway.message_count()
    assert "Traceback" not in "".join(capfd.readouterr())


def test_a_render_using_its_whole_time_budget_leaves_the_event_loop_free(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """While one call's render runs to its deadline, the gateway's event loop keeps
    running other work every few milliseconds (before: held for the whole render)."""
    action = stored(gateway, FAN_OUT)

    async def watch(call: Any) -> float:
        """The longest the loop went without running this task, until ``call`` is done."""
        longest, last = 0.0, time.perf_counter()
        deadline = last + 10
        while not call.done() and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        return longest

    with ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        call = pool.submit(send, http, gateway, app, action)
        longest_gap = gateway.run(watch(call))
        result = call.result(10)
    assert "ran longer than 500 ms" in result["error_msg"]
    assert time.perf_counter() - started >= RENDER_TIMEOUT_S
    assert longest_gap < RENDER_TIMEOUT_S / 2, f"the loop was held {longest_gap * 1000:.0f} ms"


@pytest.mark.parametrize(
    "body, limit",
    [
        (DEEP_BRACKETS, "nests too deeply"),
        ("{{ x" + "|e" * 3000 + " }}", "nest"),
        (DEEP_FORS, "blocks nest deeper than 10"),
        ("{% if true %}" * 120 + "x" + "{% endif %}" * 120, "blocks nest deeper than 10"),
        ("{% include 'other' %}", "include, import and extends are not available"),
    ],
    ids=["brackets", "filters", "fors", "ifs", "include"],
)
def test_creating_a_template_that_cannot_be_bounded_is_422(
    rest: RestClient, body: str, limit: str
) -> None:
    """POST /v1/templates answers 422 template_too_complex naming the limit (before: 500)."""
    with pytest.raises(RestAPIError) as excinfo:
        rest.create_template(f"t-{secrets.token_hex(4)}", body)
    assert (422, "template_too_complex") == (
        excinfo.value.status_code,
        excinfo.value.body["code"],
    )
    assert limit in excinfo.value.body["message"]


def test_creating_a_template_runs_none_of_its_filters(rest: RestClient) -> None:
    """A body whose filters would build gigabytes is stored at once (compiling folds no
    filter); its dry run is refused with the limit named, as an accept would be."""
    name = f"wide-{secrets.token_hex(4)}"
    started = time.perf_counter()
    rest.create_template(name, "{{ 'x'|center(100000000) }}")
    assert time.perf_counter() - started < 2
    dry_run = rest.render_template(json.loads(event_json()), name=name)
    assert dry_run["ok"] is False
    assert "a width of center 100000000 is above 65536" in dry_run["error"]


def test_the_dry_run_of_a_body_over_a_limit_is_answered(rest: RestClient) -> None:
    """POST /v1/templates/render with such a body: ok=false and the limit (not a 500)."""
    dry_run = rest.render_template(json.loads(event_json()), body=NESTED_LOOPS)
    assert (False, None) == (dry_run["ok"], dry_run["text"])
    assert "loops ran more than 10000 times" in dry_run["error"]


# -- the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, limit",
    [
        (DEEP_BRACKETS, "body: the template nests too deeply"),
        (DEEP_FORS, "body: line 1: blocks nest deeper than 10"),
        ("{% extends 'base' %}", "include, import and extends are not available"),
    ],
    ids=["brackets", "fors", "extends"],
)
def test_cli_create_refuses_what_cannot_be_bounded(
    sqlite_db: str,  # noqa: F811 - the imported fixture
    iwork: Callable[..., Result],  # noqa: F811
    body: str,
    limit: str,
) -> None:
    """``templates create`` exits 2 with one error line (before: a traceback)."""
    result = iwork(sqlite_db, "templates", "create", "t1", "--body", body, code=2)
    assert limit in error(result)
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_render_over_a_limit_is_an_error_line(
    sqlite_db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
) -> None:
    """``templates render --body`` over the loop budget: exit 2 and the limit named."""
    event = json.dumps(EVENT, ensure_ascii=False)
    result = iwork(
        sqlite_db, "templates", "render", "--event", event, "--body", NESTED_LOOPS, code=2
    )
    assert "render:" in error(result)
    assert "loops ran more than 10000 times" in error(result)


def test_cli_import_names_each_template_that_cannot_be_bounded(
    sqlite_db: str,  # noqa: F811
    iwork: Callable[..., Result],  # noqa: F811
    tmp_path: Path,
) -> None:
    """``templates import`` writes nothing and names the template and its limit."""
    file = tmp_path / "templates.toml"
    file.write_text(
        f"[templates.fine]\nbody = 'hi'\n\n[templates.deep]\nbody = '''{DEEP_FORS}'''\n",
        encoding="utf-8",
    )
    result = iwork(sqlite_db, "templates", "import", str(file), code=2)
    assert "templates.deep: body: line 1: blocks nest deeper than 10" in error(result)
    assert (
        "[]" == result.stdout.strip()
        or "fine" not in iwork(sqlite_db, "templates", "list", "--json").stdout
    )
