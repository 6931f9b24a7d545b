"""Bad input that only one backend used to notice is refused as bad input on every backend.

PostgreSQL cannot hold a NUL character in a text value, so a NUL that reached it
was answered as a store fault (code 15, which clients retry forever).  Each case
runs on a real gateway over SQLite and over PostgreSQL and must get the
documented answer for bad input, the same on both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iwork_mc.apps import App

from servers import GatewayThread, gateway_on
from topcalls import event_json, java_layout, signed


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    with gateway_on(request.param, tmp_path_factory.mktemp("bad-input")) as gw:
        yield gw


@pytest.fixture(scope="module")
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


def call(gateway: GatewayThread, params: dict[str, str]) -> dict[str, Any]:
    layout = java_layout(params)
    response = httpx.post(gateway.url, params={**layout["params"], "format": "json"},
                          content=layout["content"], headers=layout["headers"], timeout=10)  # fmt: skip
    assert 200 == response.status_code
    answer: dict[str, Any] = response.json()
    return answer


def test_an_app_key_with_a_nul_is_an_unknown_app_key(gateway: GatewayThread, app: App) -> None:
    """A NUL in app_key is answered 29 isv.appkey-not-exists, never a store fault."""
    params = signed(app.app_key + "\x00", app.secret, format="json")
    error = call(gateway, params)["error_response"]
    assert (29, "isv.appkey-not-exists") == (error["code"], error["sub_code"])


@pytest.mark.parametrize(
    "json_data",
    ['{"name":"\\u0000"}', '{"a":{"b":["x\\u0000y"]}}', '{"\\u0000":"key"}'],
    ids=["value", "nested", "key"],
)
def test_a_nul_inside_json_data_is_an_invalid_parameter(
    gateway: GatewayThread, app: App, json_data: str
) -> None:
    """An escaped NUL anywhere in json_data is 50 isv.invalid-parameter naming json_data."""
    event = event_json(json_data=json_data, msg_key=f"nul-{json_data}")
    error = call(gateway, signed(app.app_key, app.secret, event=event, format="json"))
    error = error["error_response"]
    assert (50, "isv.invalid-parameter") == (error["code"], error["sub_code"])
    assert "json_data" in error["sub_msg"]
    assert "NUL" in error["sub_msg"]


def test_an_escaped_backslash_before_u0000_is_not_a_nul(gateway: GatewayThread, app: App) -> None:
    """The six characters \\u0000 written with an escaped backslash are text, and accepted."""
    json_data = json.dumps({"name": "C:\\u0000"})  # the value holds a backslash, not a NUL
    event = event_json(json_data=json_data, msg_key="backslash-u0000")
    answer = call(gateway, signed(app.app_key, app.secret, event=event, format="json"))
    assert answer["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"] is True


@pytest.mark.parametrize("field", ["msg_key", "source", "action", "event_type", "resource_id"])
def test_a_nul_in_an_event_string_is_an_invalid_parameter(
    gateway: GatewayThread, app: App, field: str
) -> None:
    """A NUL in any string of the event is 50 isv.invalid-parameter naming the field."""
    event = event_json(**{field: "a\x00b"})
    error = call(gateway, signed(app.app_key, app.secret, event=event, format="json"))
    error = error["error_response"]
    assert (50, "isv.invalid-parameter") == (error["code"], error["sub_code"])
    assert field in error["sub_msg"]
