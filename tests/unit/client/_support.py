"""Test doubles for the SDK tests: a fake clock and a fake gateway that checks like the real one.

``FakeGateway`` is an ``httpx.MockTransport`` handler.  It reads each request the
way the gateway does (query and urlencoded body merged, the body winning), runs
the pure system-parameter checks of ``iwork_mc.top.params`` and verifies the
signature with ``iwork_mc.top.signing.verify``, then plays the next scripted
answer.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from iwork_mc.client import MobileReceiverMessageEvent
from iwork_mc.top import params, signing

URL = "https://mc.example.test/router/rest"
APP_KEY = "12345678"
SECRET = "helloworld"
METHOD = "alibaba.iwork.mc.msg.sendmobile"
EVENT_PARAM = "mobile_receiver_message_event"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
#: 2017-09-14 16:08:16 GMT+8: the seed's event_time_millis truncated to seconds (spec §3.4).
SEED_EPOCH_SECONDS = 1505376496.0
REQUEST_ID = "abc123"

SEED_EVENT = MobileReceiverMessageEvent(
    msg_key="0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327",
    event_time_millis=1505376496485,
    source="iwork",
    action="iwork-action",
    mobile_receiver="13888888888",
    event_type="mobile_receiver",
    json_data='{"name":"张三"}',
    resource_id="1",
    resource_url="http://www.aaa.com",
    sender=10000,
)
#: The seed's event as the Java SDK writes it (spec §3.4).
SEED_EVENT_JAVA_JSON = (
    '{"action":"iwork-action","event_time_millis":1505376496485,"event_type":"mobile_receiver",'
    '"json_data":"{\\"name\\":\\"张三\\"}","mobile_receiver":"13888888888",'
    '"msg_key":"0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327","resource_id":"1",'
    '"resource_url":"http:\\/\\/www.aaa.com","sender":10000,"source":"iwork"}'
)

SEED_RESULT = {"content": True, "error_code": "200", "error_msg": "success", "success": True}
SEED_SUCCESS_JSON = json.dumps(
    {"alibaba_iwork_mc_msg_sendmobile_response": {"result": SEED_RESULT, "request_id": REQUEST_ID}},
    separators=(",", ":"),
).encode()
SEED_SUCCESS_XML = (
    b'<?xml version="1.0" encoding="utf-8" ?><alibaba_iwork_mc_msg_sendmobile_response><result>'
    b"<content>true</content><error_code>200</error_code><error_msg>success</error_msg>"
    b"<success>true</success></result><request_id>abc123</request_id>"
    b"</alibaba_iwork_mc_msg_sendmobile_response>"
)
SEED_SUCCESS_SIMPLIFIED = json.dumps(
    {"result": SEED_RESULT, "request_id": REQUEST_ID}, separators=(",", ":")
).encode()
SEED_ERROR_JSON = json.dumps(
    {
        "error_response": {
            "code": 50,
            "msg": "Remote service error",
            "sub_code": "isv.invalid-parameter",
            "sub_msg": "非法参数",
            "request_id": REQUEST_ID,
        }
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode()
SEED_ERROR_XML = (
    '<?xml version="1.0" encoding="utf-8" ?><error_response><code>50</code>'
    "<msg>Remote service error</msg><sub_code>isv.invalid-parameter</sub_code>"
    "<sub_msg>非法参数</sub_msg><request_id>abc123</request_id></error_response>"
).encode()
REJECTED_JSON = json.dumps(
    {
        "alibaba_iwork_mc_msg_sendmobile_response": {
            "result": {
                "content": False,
                "error_code": "MSG_KEY_CONFLICT",
                "error_msg": "msg_key was used for a different event",
                "success": False,
            },
            "request_id": REQUEST_ID,
        }
    },
    separators=(",", ":"),
).encode()


def error_json(
    code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None
) -> bytes:
    """An ``error_response`` JSON body."""
    body: dict[str, Any] = {"code": code, "msg": msg}
    if sub_code is not None:
        body["sub_code"] = sub_code
    if sub_msg is not None:
        body["sub_msg"] = sub_msg
    body["request_id"] = REQUEST_ID
    return json.dumps({"error_response": body}, separators=(",", ":")).encode()


@dataclass
class FakeClock:
    """A clock that reads ``now`` and then moves it on by ``tick``; ``sleep`` moves it too."""

    now: float = SEED_EPOCH_SECONDS
    tick: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        return now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


Answer = bytes | httpx.Response | Exception


class FakeGateway:
    """An ``httpx.MockTransport`` handler that checks requests as the gateway will."""

    def __init__(self, clock: FakeClock, secret: str = SECRET) -> None:
        self.clock = clock
        self.secret = secret
        self.script: deque[Answer] = deque()
        self.requests: list[httpx.Request] = []
        #: The merged parameters of every request received.
        self.calls: list[dict[str, str]] = []

    def play(self, *answers: Answer) -> FakeGateway:
        """Queue answers; a ``bytes`` body is sent with status 200, an exception is raised."""
        self.script.extend(answers)
        return self

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def events(self) -> list[dict[str, Any]]:
        """The parsed event of every request received."""
        return [json.loads(call[EVENT_PARAM]) for call in self.calls]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        merged = self.check(request)
        self.calls.append(merged)
        answer = self.script.popleft() if self.script else SEED_SUCCESS_JSON
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, content=answer)

    def check(self, request: httpx.Request) -> dict[str, str]:
        """Merge query and body and check them the way the gateway does."""
        assert "POST" == request.method
        assert FORM_CONTENT_TYPE == request.headers["Content-Type"]
        query = _unique(request.url.params.multi_items())
        body = _unique(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        # The Java SDK layout: system parameters in the query, the rest in the body.
        assert set() == set(query) - params.SYSTEM_PARAMS
        assert set() == set(body) & params.SYSTEM_PARAMS
        merged = {**query, **body}
        params.check_method(merged, {METHOD})
        params.check_app_key(merged)
        params.check_timestamp(merged, int(self.clock.now * 1000), 10 * 60 * 1000)
        params.check_version(merged)
        params.check_format(merged)
        params.check_signature(merged, [self.secret])
        method = merged["sign_method"]
        assert method in signing.SIGN_METHODS
        assert signing.verify(merged, [self.secret], method, merged["sign"])
        return merged


def _unique(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    items = list(pairs)
    result = dict(items)
    assert len(items) == len(result), f"duplicate parameters in {items}"
    return result
