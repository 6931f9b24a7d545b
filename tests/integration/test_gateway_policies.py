"""Business answers at accept time, over real HTTP: templates, length, routes, policies.

A valid request the message center declines gets ``result.success=false``
with an UPPER_SNAKE ``error_code`` (DESIGN.md) and nothing is stored; a
quiet-hours deferral is not a rejection: the message is stored, queued for
the end of the window, and the decision is on its timeline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from iwork_mc.apps import App
from iwork_mc.config import Settings
from iwork_mc.messages import MessageStatus
from iwork_mc.policies import OptOut
from iwork_mc.routing import Route
from iwork_mc.templates import Template

from servers import GatewayThread
from topcalls import event_json, java_layout, signed

_counter = iter(range(10_000_000))


def receiver() -> str:
    """A fresh valid CN mobile number (139 block), so caps never leak between tests."""
    return f"1395{next(_counter) % 10_000_000:07d}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("policies"),
        app_cache_ttl_s=0,
        template_cache_ttl_s=0,
        receiver_limits_per_app="minute=2",
        dedupe_window_s=60,
        max_segments=2,
        routes=(Route(name="cn-mobile", channels=("sandbox",), prefixes=("+861",)),),
    )
    with GatewayThread(settings) as gw:
        yield gw


@pytest.fixture(scope="module")
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def send(http: httpx.Client, gw: GatewayThread, app: App, **event: Any) -> dict[str, Any]:
    event.setdefault("msg_key", f"k-{time.time_ns()}")
    call = signed(app.app_key, app.secret, event=event_json(**event), format="json")
    response = http.post(gw.url, **java_layout(call))
    assert 200 == response.status_code
    body = response.json()["alibaba_iwork_mc_msg_sendmobile_response"]
    return dict(body["result"])


def declined(code: str, reason_part: str, result: dict[str, Any]) -> None:
    assert (False, False, code) == (result["success"], result["content"], result["error_code"])
    assert reason_part in result["error_msg"]


def test_the_stored_text_is_the_rendered_template(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    gateway.run(
        gateway.store.insert_template(  # type: ignore[union-attr]
            Template(
                name="visit", source="iwork", action="visit", body="{{ name }} 到访 {{ room }}"
            )
        )
    )
    to = receiver()
    result = send(
        http, gateway, app, msg_key="tpl-1", action="visit", mobile_receiver=to,
        json_data='{"name":"张三","room":"A-301"}',
    )  # fmt: skip
    assert result["success"] is True
    message = gateway.run(gateway.store.get_message(app.app_key, "tpl-1"))  # type: ignore[union-attr]
    assert message is not None
    assert (message.text, message.template, message.encoding, message.segments) == (
        "张三 到访 A-301", "visit", "ucs2", 1,
    )  # fmt: skip


def test_a_template_that_cannot_render_the_event_is_declined_and_nothing_stored(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    gateway.run(
        gateway.store.insert_template(  # type: ignore[union-attr]
            Template(name="meeting", action="meeting", body="Meeting in {{ room }}")
        )
    )
    before = gateway.message_count()
    result = send(http, gateway, app, action="meeting", mobile_receiver=receiver())
    declined("TEMPLATE_RENDER_FAILED", "room", result)
    assert before == gateway.message_count()


def test_a_stored_template_with_a_syntax_error_is_declined_and_nothing_stored(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """A body the REST API would refuse, written to the database directly, is an answer too."""
    gateway.run(
        gateway.store.insert_template(  # type: ignore[union-attr]
            Template(name="broken", action="broken", body="Hello\n{% if name %}{{ name }}")
        )
    )
    before = gateway.message_count()
    result = send(http, gateway, app, action="broken", mobile_receiver=receiver())
    declined("TEMPLATE_RENDER_FAILED", "template 'broken' cannot render", result)
    assert "line 2" in result["error_msg"]
    assert before == gateway.message_count()


def test_a_text_over_the_segment_limit_is_declined(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    result = send(
        http, gateway, app, mobile_receiver=receiver(), json_data='{"note":"' + "长" * 200 + '"}'
    )
    declined("MESSAGE_TOO_LONG", "at most 2 are allowed", result)


def test_a_receiver_no_route_takes_is_declined(tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path,
        app_cache_ttl_s=0,
        allowed_regions=(),  # every region may be accepted…
        routes=(Route(name="cn", channels=("sandbox",), regions=("CN",)),),  # …but only CN routed
    )
    with GatewayThread(settings) as gw, httpx.Client(timeout=10) as http:
        app = gw.create_app()
        declined(
            "NO_ROUTE", "no configured route", send(http, gw, app, mobile_receiver="+85291234567")
        )
        assert 0 == gw.message_count()
        assert send(http, gw, app, mobile_receiver="+8613950000001")["success"] is True


def test_an_opted_out_receiver_is_declined(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    to = receiver()
    gateway.run(
        gateway.store.add_opt_out(  # type: ignore[union-attr]
            OptOut(app_key=app.app_key, receiver="+86" + to, reason="asked", created_at_ms=0)
        )
    )
    declined("RECEIVER_OPTED_OUT", "opted out", send(http, gateway, app, mobile_receiver=to))


def test_the_per_app_cap_declines_the_third_message_in_a_minute(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    to = receiver()
    for n in range(2):
        assert send(http, gateway, app, mobile_receiver=to, json_data=f'{{"n":{n}}}')["success"]
    result = send(http, gateway, app, mobile_receiver=to, json_data='{"n":3}')
    declined(
        "RECEIVER_RATE_LIMITED", "2 messages in the last minute from this app (limit 2)", result
    )
    # Another app's messages are not counted by the per-app cap.
    other = gateway.create_app()
    assert send(http, gateway, other, mobile_receiver=to, json_data='{"n":4}')["success"]


def test_the_same_text_to_the_same_receiver_within_the_window_is_declined(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    to = receiver()
    assert send(http, gateway, app, mobile_receiver=to, json_data='{"door":"open"}')["success"]
    result = send(http, gateway, app, mobile_receiver=to, json_data='{"door":"open"}')
    declined("DUPLICATE_CONTENT", "dedupe window", result)
    # Another text to the receiver, or the same text to another, is no duplicate.
    assert send(http, gateway, app, mobile_receiver=to, json_data='{"door":"shut"}')["success"]
    assert send(http, gateway, app, mobile_receiver=receiver(), json_data='{"door":"open"}')[
        "success"
    ]


def test_a_repeated_msg_key_is_answered_as_before_even_when_a_policy_now_declines(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    to = receiver()
    first = send(http, gateway, app, msg_key="repeat-1", mobile_receiver=to)
    assert first["success"] is True
    gateway.run(
        gateway.store.add_opt_out(  # type: ignore[union-attr]
            OptOut(app_key="*", receiver="+86" + to, reason="", created_at_ms=0)
        )
    )
    assert send(http, gateway, app, msg_key="repeat-1", mobile_receiver=to)["success"] is True


def test_quiet_hours_defer_a_message_without_declining_it(tmp_path: Any) -> None:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    window = f"{start:%H:%M}-{end:%H:%M}"
    settings = Settings(data_dir=tmp_path, app_cache_ttl_s=0, quiet_hours=window)
    with GatewayThread(settings) as gw, httpx.Client(timeout=10) as http:
        app = gw.create_app()
        assert send(http, gw, app, msg_key="night-1")["success"] is True
        urgent = send(http, gw, app, msg_key="night-2", json_data='{"urgent":true}')
        assert urgent["success"] is True
        store = gw.store
        assert store is not None
        deferred = gw.run(store.get_message(app.app_key, "night-1"))
        assert deferred is not None and deferred.status is MessageStatus.QUEUED
        timeline = gw.run(store.timeline(deferred.id))
        assert ["accepted", "deferred"] == [entry.kind for entry in timeline]
        until = timeline[1].detail["until_ms"]
        assert abs(until - end.replace(second=0, microsecond=0).timestamp() * 1000) < 1000
        # Nothing is due before the window ends, except the urgent message.
        claimed = gw.run(
            store.claim_due(worker_id="w", now_ms=int(time.time() * 1000), lease_ms=1000, limit=10)
        )
        assert ["night-2"] == [message.msg_key for message in claimed]
