"""The TOP endpoint over real HTTP: every answer of the protocol, byte for byte.

A real uvicorn server on 127.0.0.1 with a real SQLite store; requests laid out
the way each official SDK family sends them (spec/top-protocol.md §1.3).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from iwork_mc.apps import App
from iwork_mc.config import Settings
from iwork_mc.top import signing

from servers import GatewayThread
from topcalls import (
    SEED_SUCCESS_XML,
    event_json,
    get_layout,
    java_layout,
    node_layout,
    signed,
)

REQUEST_ID = re.compile(r"[0-9a-z]{12,13}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    data_dir = tmp_path_factory.mktemp("gateway")
    settings = Settings(data_dir=data_dir, app_cache_ttl_s=0, max_body_bytes=32_768)
    with GatewayThread(settings) as gw:
        yield gw


@pytest.fixture(scope="module")
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def post(http: httpx.Client, gw: GatewayThread, layout: dict[str, Any]) -> httpx.Response:
    response = http.post(gw.url, **layout)
    assert 200 == response.status_code
    return response


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert ["error_response"] == list(body)
    return dict(body["error_response"])


def unique_event(**overrides: Any) -> str:
    return event_json(msg_key=f"k-{time.time_ns()}", **overrides)


# -- success answers ------------------------------------------------------------


def test_seed_request_gets_the_seed_xml_answer(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """The seed's request, Java SDK layout, no format: the seed's XML answer, byte for byte."""
    call = signed(app.app_key, app.secret, event=unique_event())
    response = post(http, gateway, java_layout(call))
    request_id = re.search(r"<request_id>(.*)</request_id>", response.text)
    assert request_id is not None and REQUEST_ID.fullmatch(request_id.group(1))
    assert SEED_SUCCESS_XML.format(request_id=request_id.group(1)).encode() == response.content
    assert "text/xml;charset=UTF-8" == response.headers["content-type"]


def test_json_answer(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """format=json wraps the result in alibaba_iwork_mc_msg_sendmobile_response."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="json")
    response = post(http, gateway, java_layout(call))
    body = response.json()
    request_id = body["alibaba_iwork_mc_msg_sendmobile_response"]["request_id"]
    expected = (
        '{"alibaba_iwork_mc_msg_sendmobile_response":{"result":{"content":true,'
        '"error_code":"200","error_msg":"success","success":true},'
        f'"request_id":"{request_id}"}}}}'
    )
    assert expected.encode() == response.content
    assert "application/json;charset=UTF-8" == response.headers["content-type"]


def test_simplified_json_answer(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """simplify=true drops the root wrapper."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="json", simplify="true")
    body = post(http, gateway, java_layout(call)).json()
    assert ["result", "request_id"] == list(body)
    assert {"content": True, "error_code": "200", "error_msg": "success", "success": True} == body[
        "result"
    ]


def test_request_ids_are_unique(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """Every answer carries its own request_id."""
    ids = set()
    for _ in range(5):
        call = signed(app.app_key, "wrong-secret", format="json")
        ids.add(error_of(post(http, gateway, java_layout(call)))["request_id"])
    assert 5 == len(ids)


@pytest.mark.parametrize(
    "layout",
    [java_layout, node_layout, get_layout],
    ids=["java-query-and-urlencoded-body", "node-multipart", "get-query"],
)
@pytest.mark.parametrize("sign_method", ["md5", "hmac", "hmac-sha256", None])
def test_every_sdk_layout_and_sign_method_is_accepted(
    gateway: GatewayThread, app: App, http: httpx.Client, layout: Any, sign_method: str | None
) -> None:
    """Each SDK family's layout with each sign method (None: legacy) is accepted."""
    call = signed(
        app.app_key, app.secret, event=unique_event(), sign_method=sign_method, format="json"
    )
    request = layout(call)
    response = (
        http.get(gateway.url, **request) if layout is get_layout else post(http, gateway, request)
    )
    assert True is response.json()["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]


def test_python_sdk_style_epoch_millis_and_extra_signed_params(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """Epoch-ms timestamps and extra signed partner_id and session are accepted."""
    call = signed(
        app.app_key, app.secret, event=unique_event(), sign_method="md5", format="json",
        timestamp=str(int(time.time() * 1000)), partner_id="taobao-sdk-python-20180413",
        session="ignored-session",
    )  # fmt: skip
    body = post(http, gateway, java_layout(call)).json()
    assert True is body["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]


def test_empty_parameter_signed_either_way(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """An empty parameter is accepted whether the client signed it (PHP) or not (Java)."""
    for include_empty in (True, False):
        call = {**signed(app.app_key, app.secret, event=unique_event(), format="json")}
        del call["sign"]
        call["target_app_key"] = ""
        to_sign = call if include_empty else {k: v for k, v in call.items() if v}
        call["sign"] = signing.sign(to_sign, app.secret, "hmac-sha256")
        body = post(http, gateway, java_layout(call)).json()
        assert True is body["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]


def test_body_value_wins_over_query(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """A parameter in both the query and the body takes the body's value."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="json")
    layout = java_layout(call)
    layout["params"] = {**layout["params"], "mobile_receiver_message_event": "not json"}
    body = post(http, gateway, layout).json()
    assert True is body["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]


# -- idempotency ----------------------------------------------------------------


def test_identical_repeat_answers_success_and_creates_nothing(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """The same msg_key with the same event answers success and stores one message."""
    event = unique_event()
    post(http, gateway, java_layout(signed(app.app_key, app.secret, event=event)))
    before = gateway.message_count()
    response = post(http, gateway, java_layout(signed(app.app_key, app.secret, event=event)))
    assert "<success>true</success>" in response.text
    assert before == gateway.message_count()


def test_same_event_in_another_serialisation_is_a_repeat(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """Key order, escapes and numbers-as-strings do not make a different event."""
    msg_key = f"k-{time.time_ns()}"
    post(
        http,
        gateway,
        java_layout(signed(app.app_key, app.secret, event=event_json(msg_key=msg_key))),
    )
    before = gateway.message_count()
    php_style = json.dumps(
        {
            "sender": "10000",
            **json.loads(event_json(msg_key=msg_key)),
            "event_time_millis": "1505376496485",
        },
        ensure_ascii=True,
    )
    call = signed(app.app_key, app.secret, event=php_style, format="json")
    body = post(http, gateway, java_layout(call)).json()
    assert True is body["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]
    assert before == gateway.message_count()


def test_same_key_different_event_is_a_conflict(
    gateway: GatewayThread, app: App, http: httpx.Client
) -> None:
    """The same msg_key with a different event answers MSG_KEY_CONFLICT and stores nothing."""
    msg_key = f"k-{time.time_ns()}"
    post(
        http,
        gateway,
        java_layout(signed(app.app_key, app.secret, event=event_json(msg_key=msg_key))),
    )
    before = gateway.message_count()
    other = event_json(msg_key=msg_key, json_data='{"name":"李四"}')
    body = post(
        http, gateway, java_layout(signed(app.app_key, app.secret, event=other, format="json"))
    ).json()
    result = body["alibaba_iwork_mc_msg_sendmobile_response"]["result"]
    assert {"content": False, "success": False, "error_code": "MSG_KEY_CONFLICT"} == {
        k: result[k] for k in ("content", "success", "error_code")
    }
    assert before == gateway.message_count()


def test_msg_keys_are_scoped_per_app(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """Two apps may use the same msg_key for different events."""
    other_app = gateway.create_app()
    msg_key = f"k-{time.time_ns()}"
    post(
        http,
        gateway,
        java_layout(signed(app.app_key, app.secret, event=event_json(msg_key=msg_key))),
    )
    other = event_json(msg_key=msg_key, json_data='{"name":"李四"}')
    response = post(
        http, gateway, java_layout(signed(other_app.app_key, other_app.secret, event=other))
    )
    assert "<success>true</success>" in response.text


# -- errors: each code, exact fields, nothing stored ---------------------------------


def _without(call: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in call.items() if k != name}


def _resign(call: dict[str, str], secret: str, **changes: str) -> dict[str, str]:
    changed = {**_without(call, "sign"), **changes}
    changed["sign"] = signing.sign(changed, secret, "hmac-sha256")
    return changed


ERROR_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("missing method", lambda c, s: _without(c, "method"), {"code": 21, "msg": "Missing method"}),
    ("unknown method", lambda c, s: _resign(c, s, method="taobao.time.get"),
     {"code": 22, "msg": "Invalid method"}),
    ("missing app_key", lambda c, s: _without(c, "app_key"), {"code": 28, "msg": "Missing app key"}),
    ("unknown app_key", lambda c, s: _resign(c, s, app_key="99999999"),
     {"code": 29, "msg": "Invalid app Key", "sub_code": "isv.appkey-not-exists"}),
    ("missing timestamp", lambda c, s: _without(c, "timestamp"),
     {"code": 30, "msg": "Missing timestamp"}),
    ("epoch seconds", lambda c, s: _resign(c, s, timestamp=str(int(time.time()))),
     {"code": 31, "msg": "Invalid timestamp"}),
    ("iso timestamp", lambda c, s: _resign(c, s, timestamp="2026-11-26T12:00:00"),
     {"code": 31, "msg": "Invalid timestamp"}),
    ("stale timestamp", lambda c, s: _resign(c, s, timestamp=str(int(time.time() * 1000) - 11 * 60_000)),
     {"code": 31, "msg": "Invalid timestamp"}),
    ("future timestamp", lambda c, s: _resign(c, s, timestamp=str(int(time.time() * 1000) + 11 * 60_000)),
     {"code": 31, "msg": "Invalid timestamp"}),
    ("missing v", lambda c, s: _without(c, "v"), {"code": 32, "msg": "Missing version"}),
    ("malformed v", lambda c, s: _resign(c, s, v="two"), {"code": 33, "msg": "Invalid version"}),
    ("unsupported v", lambda c, s: _resign(c, s, v="1.0"), {"code": 34, "msg": "Unsupported version"}),
    ("missing sign", lambda c, s: _without(c, "sign"), {"code": 24, "msg": "Missing signature"}),
    ("wrong secret", lambda c, s: _resign(c, "not-the-secret"), {"code": 25, "msg": "Invalid signature"}),
    ("tampered value", lambda c, s: {**c, "mobile_receiver_message_event": unique_event()},
     {"code": 25, "msg": "Invalid signature"}),
    ("unknown sign_method", lambda c, s: {**c, "sign_method": "sha1"},
     {"code": 25, "msg": "Invalid signature"}),
    ("missing event", lambda c, s: _resign(_without(c, "mobile_receiver_message_event"), s),
     {"code": 40, "msg": "Missing required arguments:mobile_receiver_message_event"}),
    ("event too long", lambda c, s: _resign(c, s, mobile_receiver_message_event="x" * 20_000),
     {"code": 41, "msg": "Invalid arguments:mobile_receiver_message_event",
      "sub_code": "isv.invalid-parameter"}),
    ("event not json", lambda c, s: _resign(c, s, mobile_receiver_message_event="{not json"),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.invalid-parameter",
      "sub_msg": "非法参数:mobile_receiver_message_event is not valid JSON"}),
    ("missing msg_key", lambda c, s: _resign(c, s, mobile_receiver_message_event=event_json(msg_key=None)),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.missing-parameter",
      "sub_msg": "非法参数:msg_key is required"}),
    ("bad phone", lambda c, s: _resign(c, s, mobile_receiver_message_event=unique_event(mobile_receiver="12345")),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.invalid-parameter",
      "sub_msg": "非法参数:mobile_receiver is not a valid phone number"}),
    ("json_data not an object", lambda c, s: _resign(c, s, mobile_receiver_message_event=unique_event(json_data="[1]")),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.invalid-parameter",
      "sub_msg": "非法参数:json_data must be a JSON object"}),
    ("ftp resource_url", lambda c, s: _resign(c, s, mobile_receiver_message_event=unique_event(resource_url="ftp://x")),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.invalid-parameter",
      "sub_msg": "非法参数:resource_url must be an http or https URL"}),
    ("sender not a number", lambda c, s: _resign(c, s, mobile_receiver_message_event=unique_event(sender="abc")),
     {"code": 50, "msg": "Remote service error", "sub_code": "isv.invalid-parameter",
      "sub_msg": "非法参数:sender must be an integer number"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_error_answers(
    gateway: GatewayThread, app: App, http: httpx.Client, change: Any, expected: dict[str, Any]
) -> None:
    """Each protocol error answers its exact code, msg and sub_code, and stores nothing."""
    call = change(signed(app.app_key, app.secret, event=unique_event(), format="json"), app.secret)
    before = gateway.message_count()
    error = error_of(post(http, gateway, java_layout(call)))
    assert REQUEST_ID.fullmatch(error.pop("request_id"))
    assert expected == {k: v for k, v in error.items() if k in expected}
    assert set(error) <= {"code", "msg", "sub_code", "sub_msg"}
    assert before == gateway.message_count()


def test_bad_format_answers_23_in_xml(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """An unknown format answers 23, in XML."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="yaml")
    response = post(http, gateway, java_layout(call))
    assert response.text.startswith(
        '<?xml version="1.0" encoding="utf-8" ?><error_response><code>23</code><msg>Invalid format</msg>'
    )


def test_error_in_xml_escapes_text(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """An XML error echoing the caller's text stays well-formed."""
    call = signed(app.app_key, app.secret, event=unique_event(), method="x.<&>")
    response = post(http, gateway, java_layout(call))
    assert "<sub_msg>unknown method x.&lt;&amp;&gt;</sub_msg>" in response.text


def test_disabled_app_answers_11(gateway: GatewayThread, http: httpx.Client) -> None:
    """A disabled app's correctly signed call answers 11 and stores nothing."""
    disabled = gateway.create_app(enabled=False)
    before = gateway.message_count()
    call = signed(disabled.app_key, disabled.secret, event=unique_event(), format="json")
    error = error_of(post(http, gateway, java_layout(call)))
    assert (11, "Insufficient isv permissions", "isv.permission-app-disabled") == (
        error["code"],
        error["msg"],
        error["sub_code"],
    )
    assert before == gateway.message_count()


def test_other_http_methods_answer_9(gateway: GatewayThread, http: httpx.Client) -> None:
    """PUT, DELETE and PATCH answer 9 Http Action Not Allowed."""
    for verb in ("PUT", "DELETE", "PATCH"):
        response = http.request(verb, gateway.url, params={"format": "json"})
        assert 200 == response.status_code
        assert (9, "Http Action Not Allowed") == (
            error_of(response)["code"],
            error_of(response)["msg"],
        )


def test_invalid_utf8_answers_47(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """A body that is not UTF-8 answers 47 Invalid encoding."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="json")
    layout = java_layout(call)
    layout["content"] = b"mobile_receiver_message_event=%FF%FE"
    error = error_of(post(http, gateway, layout))
    assert (47, "Invalid encoding") == (error["code"], error["msg"])


def test_oversized_body_is_refused(gateway: GatewayThread, app: App, http: httpx.Client) -> None:
    """A body over max_body_bytes answers 43 and is not read further."""
    call = signed(app.app_key, app.secret, event=unique_event(), format="json")
    layout = java_layout(call)
    layout["content"] = urlencode({"mobile_receiver_message_event": "x" * 40_000}).encode()
    error = error_of(post(http, gateway, layout))
    assert (43, "isv.request-body-too-large") == (error["code"], error["sub_code"])


def test_rotated_secret_grace(gateway: GatewayThread, http: httpx.Client) -> None:
    """After rotation both secrets work during the grace period; after it only the new one."""
    assert gateway.store is not None
    old = gateway.create_app()
    now_ms = int(time.time() * 1000)
    rotated = gateway.run(gateway.store.rotate_secret(old.app_key, "n" * 32, now_ms + 60_000))
    assert rotated is not None
    for secret in (old.secret, "n" * 32):
        response = post(
            http, gateway, java_layout(signed(old.app_key, secret, event=unique_event()))
        )
        assert "<success>true</success>" in response.text
    gateway.run(gateway.store.rotate_secret(old.app_key, "m" * 32, now_ms - 1))
    response = post(
        http,
        gateway,
        java_layout(signed(old.app_key, "n" * 32, event=unique_event(), format="json")),
    )
    assert 25 == error_of(response)["code"]


def test_flow_control_answers_7(tmp_path: Any, http: httpx.Client) -> None:
    """Calls over an app's rate answer 7 with TOP's ban wording; the admitted ones are stored."""
    settings = Settings(data_dir=tmp_path, app_rate_limit=0.5, app_rate_burst=2)
    with GatewayThread(settings) as gateway:
        app = gateway.create_app()
        answers = [
            post(
                http,
                gateway,
                java_layout(signed(app.app_key, app.secret, event=unique_event(), format="json")),
            ).json()
            for _ in range(3)
        ]
        assert 2 == gateway.message_count()
    assert "alibaba_iwork_mc_msg_sendmobile_response" in answers[1]
    error = answers[2]["error_response"]
    assert (7, "App Call Limited", "accesscontrol.limited-by-app-access-count") == (
        error["code"],
        error["msg"],
        error["sub_code"],
    )
    assert re.fullmatch(r"This ban will last for [12] more seconds", error["sub_msg"])
