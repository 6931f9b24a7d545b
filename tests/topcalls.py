"""Building TOP calls the way each official SDK family lays them out (spec §1.3)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from iwork_mc.top import params, signing

METHOD = "alibaba.iwork.mc.msg.sendmobile"

SEED_FIELDS: dict[str, Any] = {
    "msg_key": "0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327",
    "event_time_millis": 1505376496485,
    "source": "iwork",
    "action": "iwork-action",
    "mobile_receiver": "13888888888",
    "event_type": "mobile_receiver",
    "json_data": '{"name":"张三"}',
    "resource_id": "1",
    "resource_url": "http://www.aaa.com",
    "sender": 10000,
}

SEED_SUCCESS_XML = (
    '<?xml version="1.0" encoding="utf-8" ?><alibaba_iwork_mc_msg_sendmobile_response>'
    "<result><content>true</content><error_code>200</error_code><error_msg>success</error_msg>"
    "<success>true</success></result><request_id>{request_id}</request_id>"
    "</alibaba_iwork_mc_msg_sendmobile_response>"
)


def event_json(**overrides: Any) -> str:
    """The seed's event (with overrides; ``None`` removes a field) as the Java SDK writes it."""
    fields = {**SEED_FIELDS, **overrides}
    fields = {k: v for k, v in fields.items() if v is not None}
    text = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("/", "\\/")


def system_params(
    app_key: str, *, sign_method: str | None = "hmac-sha256", **extra: str
) -> dict[str, str]:
    base = {
        "method": METHOD,
        "app_key": app_key,
        "timestamp": params.format_timestamp(int(time.time() * 1000)),
        "v": "2.0",
    }
    if sign_method is not None:
        base["sign_method"] = sign_method
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def signed(
    app_key: str, secret: str, *, event: str | None = None, sign_method: str | None = "hmac-sha256",
    **extra: str,
) -> dict[str, str]:  # fmt: skip
    """Every parameter of a call, signed; ``event`` defaults to the seed's."""
    call = system_params(app_key, sign_method=sign_method, **extra)
    call["mobile_receiver_message_event"] = event_json() if event is None else event
    method = sign_method if sign_method in signing.SIGN_METHODS else None
    call["sign"] = signing.sign(call, secret, method)  # type: ignore[arg-type]
    return call


def java_layout(call: dict[str, str]) -> dict[str, Any]:
    """System parameters in the query, the event in an urlencoded body (Java/Python/PHP SDKs)."""
    body = {k: v for k, v in call.items() if k not in params.SYSTEM_PARAMS}
    query = {k: v for k, v in call.items() if k in params.SYSTEM_PARAMS}
    return {
        "params": query,
        "content": urlencode(body).encode(),
        "headers": {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
    }


def node_layout(call: dict[str, str]) -> dict[str, Any]:
    """Everything, sign included, as multipart form fields (the Node SDK)."""
    boundary = "----iworkmcboundary7MA4YWxkTrZu0gW"
    parts = []
    for name, value in call.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8")
    return {
        "content": body,
        "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    }


def get_layout(call: dict[str, str]) -> dict[str, Any]:
    """Everything in a GET query string (hand-written clients)."""
    return {"params": call}
