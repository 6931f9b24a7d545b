"""The SDK's requests on the wire: shared signature vectors, the Java SDK layout (spec §1.3, §3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from iwork_mc.client import (
    DEFAULT_PARTNER_ID,
    AlibabaIworkMcMsgSendmobileRequest,
    TopClient,
)
from iwork_mc.client._base import TopProtocol

from ._support import (
    APP_KEY,
    EVENT_PARAM,
    FORM_CONTENT_TYPE,
    SECRET,
    SEED_EVENT,
    URL,
    FakeClock,
    FakeGateway,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "data" / "signing_vectors.json").read_text("utf-8")
)["vectors"]
JAVA_VECTORS = [v for v in VECTORS if v["name"].startswith("sendmobile-java-")]
NODE_VECTORS = [v for v in VECTORS if v["name"].startswith("sendmobile-node-")]

#: The md5 request body of spec §3.4, byte for byte.
SPEC_BODY = (
    b"mobile_receiver_message_event=%7B%22action%22%3A%22iwork-action%22%2C%22event_time_millis"
    b"%22%3A1505376496485%2C%22event_type%22%3A%22mobile_receiver%22%2C%22json_data%22%3A%22%7B"
    b"%5C%22name%5C%22%3A%5C%22%E5%BC%A0%E4%B8%89%5C%22%7D%22%2C%22mobile_receiver%22%3A%2213888"
    b"888888%22%2C%22msg_key%22%3A%220bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327%22%2C%22resource_id%22"
    b"%3A%221%22%2C%22resource_url%22%3A%22http%3A%5C%2F%5C%2Fwww.aaa.com%22%2C%22sender%22%3A1"
    b"0000%2C%22source%22%3A%22iwork%22%7D"
)


def _java_like_client(gateway: FakeGateway, clock: FakeClock, sign_method: Any) -> TopClient:
    return TopClient(
        URL,
        APP_KEY,
        SECRET,
        sign_method,
        "json",
        partner_id=None,
        transport=gateway.transport(),
        clock=clock,
    )


@pytest.mark.parametrize("vector", JAVA_VECTORS, ids=lambda v: v["name"])
def test_signed_params_reproduce_the_java_vectors(vector: dict[str, Any]) -> None:
    """With the clock at 2017-09-14 16:08:16 GMT+8 and no partner_id, the SDK signs as Java does."""
    protocol = TopProtocol(
        URL,
        vector["params"]["app_key"],
        vector["secret"],
        sign_method=vector["sign_method"],
        format="json",
        partner_id=None,
        simplify=False,
        timeout=10.0,
        clock=FakeClock(),
    )

    system, app = protocol.signed_params(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))

    assert {**vector["params"], "sign": vector["sign"]} == {**system, **app}


@pytest.mark.parametrize("vector", JAVA_VECTORS, ids=lambda v: v["name"])
def test_wire_request_carries_the_java_vector(
    vector: dict[str, Any], gateway: FakeGateway, clock: FakeClock
) -> None:
    """What reaches the gateway is exactly the vector's parameters and signature."""
    with _java_like_client(gateway, clock, vector["sign_method"]) as client:
        client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))

    assert [{**vector["params"], "sign": vector["sign"]}] == gateway.calls


@pytest.mark.parametrize("vector", NODE_VECTORS, ids=lambda v: v["name"])
def test_compact_style_reproduces_the_node_vectors(
    vector: dict[str, Any], gateway: FakeGateway, clock: FakeClock
) -> None:
    """A request with json_style='compact' carries the Node SDK's bytes and signature."""
    request = AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT, json_style="compact")

    with _java_like_client(gateway, clock, vector["sign_method"]) as client:
        client.execute(request)

    assert vector["sign"] == gateway.calls[0]["sign"]


def test_layout_is_the_java_sdks(gateway: FakeGateway, clock: FakeClock) -> None:
    """System parameters travel in the query, the event in a UTF-8 urlencoded body (spec §3.4)."""
    with _java_like_client(gateway, clock, "md5") as client:
        client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))
    request = gateway.requests[0]

    assert "POST" == request.method
    assert FORM_CONTENT_TYPE == request.headers["Content-Type"]
    assert SPEC_BODY == request.content
    assert {
        "method": "alibaba.iwork.mc.msg.sendmobile",
        "v": "2.0",
        "app_key": APP_KEY,
        "timestamp": "2017-09-14 16:08:16",
        "format": "json",
        "sign_method": "md5",
        "sign": "B2BBC9E5301C337625565F2CF67D3983",
    } == dict(request.url.params)
    assert "timestamp=2017-09-14+16%3A08%3A16" in str(request.url)
    assert (URL, [EVENT_PARAM]) == (
        str(request.url.copy_with(query=None)),
        [name for name, _ in parse_qsl(request.content.decode())],
    )


def test_default_partner_id_is_sent_and_signed(top_client: TopClient, gateway: FakeGateway) -> None:
    """By default the SDK names itself in partner_id, which the signature covers."""
    top_client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))

    assert "iwork-mc-sdk-python" == DEFAULT_PARTNER_ID
    assert DEFAULT_PARTNER_ID == gateway.requests[0].url.params["partner_id"]
    assert "hmac-sha256" == gateway.calls[0]["sign_method"]


def test_simplify_is_sent_only_when_enabled(gateway: FakeGateway, clock: FakeClock) -> None:
    """simplify=true is a signed query parameter when asked for, and absent otherwise."""
    transport = gateway.transport()
    gateway.play(b'{"result":{"success":true},"request_id":"r1"}')
    request = AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT)

    with TopClient(URL, APP_KEY, SECRET, simplify=True, transport=transport, clock=clock) as c:
        c.execute(request)
    with TopClient(URL, APP_KEY, SECRET, transport=transport, clock=clock) as c:
        c.execute(request)

    assert ["true", None] == [call.get("simplify") for call in gateway.calls]


def test_session_is_sent_and_signed(top_client: TopClient, gateway: FakeGateway) -> None:
    """A session key, when given, is a signed system parameter in the query."""
    top_client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT), session="s-123")

    assert "s-123" == gateway.requests[0].url.params["session"]


def test_timestamp_is_gmt8(gateway: FakeGateway) -> None:
    """The timestamp is the clock's instant written yyyy-MM-dd HH:mm:ss in GMT+8."""
    clock = FakeClock(now=0.0)
    gateway.clock = clock

    with TopClient(URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock) as client:
        client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))

    assert "1970-01-01 08:00:00" == gateway.calls[0]["timestamp"]


def test_each_request_has_the_client_timeout(gateway: FakeGateway, clock: FakeClock) -> None:
    """Every request carries the client's timeout for connect, read, write and pool."""
    with TopClient(
        URL, APP_KEY, SECRET, timeout=3.0, transport=gateway.transport(), clock=clock
    ) as client:
        client.execute(AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT))

    assert httpx.Timeout(3.0).as_dict() == gateway.requests[0].extensions["timeout"]


@pytest.mark.parametrize(
    "url", [URL + "?tenant=a", URL + "#top", "ftp://mc.example.test/router/rest", "/router/rest"]
)
def test_an_unusable_url_is_refused(url: str) -> None:
    """A URL that is not http(s), or whose query the gateway would see unsigned, is refused."""
    with pytest.raises(ValueError, match="URL"):
        TopClient(url, APP_KEY, SECRET)
