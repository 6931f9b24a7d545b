"""Unit tests for the request classes and their JSON serialisation (spec/top-protocol.md §4.2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iwork_mc.client import (
    AlibabaIworkMcMsgSendmobileRequest,
    InvalidRequest,
    MobileReceiverMessageEvent,
)

from ._support import EVENT_PARAM, SEED_EVENT, SEED_EVENT_JAVA_JSON

VECTORS: dict[str, dict[str, Any]] = {
    vector["name"]: vector
    for vector in json.loads(
        (Path(__file__).parents[2] / "data" / "signing_vectors.json").read_text("utf-8")
    )["vectors"]
}


def test_java_style_is_the_java_sdk_bytes() -> None:
    """The default serialisation of the seed's event is the Java SDK's exact text."""
    assert SEED_EVENT_JAVA_JSON == SEED_EVENT.to_json()
    assert VECTORS["sendmobile-java-md5"]["params"][EVENT_PARAM] == SEED_EVENT.to_json()


def test_compact_style_is_the_node_sdk_bytes() -> None:
    """The compact serialisation is JSON.stringify's text: seed order, no `\\/`."""
    expected = VECTORS["sendmobile-node-md5"]["params"][EVENT_PARAM]

    assert expected == SEED_EVENT.to_json(style="compact")


def test_none_fields_are_left_out() -> None:
    """Optional fields that are None do not appear in the JSON text."""
    event = dataclasses.replace(SEED_EVENT, resource_id=None, resource_url=None)

    assert "resource_id" not in event.to_json()
    assert "resource_url" not in event.to_json(style="compact")
    assert {"resource_id", "resource_url"}.isdisjoint(event.to_dict())


def test_java_style_escapes_like_json_writer() -> None:
    """Java escapes `/`, the short escapes and ISO controls (upper-case hex); all else is raw."""
    event = dataclasses.replace(SEED_EVENT, json_data='{"t":"a/b\t\n\x01\x7f\x85 张三 😀 \u2028"}')

    text = event.to_json()

    expected = '"json_data":"{\\"t\\":\\"a\\/b\\t\\n\\u0001\\u007F\\u0085 张三 😀 \u2028\\"}"'
    assert expected in text


@given(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none() | st.text(),
)
def test_both_styles_parse_back_to_the_fields(text: str, number: int, url: str | None) -> None:
    """Whatever the field values, both serialisations are JSON meaning exactly the fields."""
    event = dataclasses.replace(
        SEED_EVENT, json_data=text, msg_key=text, sender=number, resource_url=url
    )

    assert event.to_dict() == json.loads(event.to_json())
    assert event.to_dict() == json.loads(event.to_json(style="compact"))


def test_request_names_its_method() -> None:
    """The request class carries the TOP method name."""
    assert "alibaba.iwork.mc.msg.sendmobile" == AlibabaIworkMcMsgSendmobileRequest.api_method_name


def test_app_params_hold_the_event_json() -> None:
    """The one application parameter is the event's Java-style JSON text."""
    request = AlibabaIworkMcMsgSendmobileRequest()
    request.mobile_receiver_message_event = SEED_EVENT

    assert {EVENT_PARAM: SEED_EVENT_JAVA_JSON} == request.get_app_params()


def test_app_params_follow_the_json_style() -> None:
    """A request built with json_style='compact' sends the compact text."""
    request = AlibabaIworkMcMsgSendmobileRequest(SEED_EVENT, json_style="compact")

    assert {EVENT_PARAM: SEED_EVENT.to_json(style="compact")} == request.get_app_params()


def test_app_params_send_json_text_verbatim() -> None:
    """An event given as JSON text is sent exactly as given."""
    text = '{"msg_key":"k","sender":"10000"}'

    assert {EVENT_PARAM: text} == AlibabaIworkMcMsgSendmobileRequest(text).get_app_params()


@pytest.mark.parametrize("event", [None, "", "  "])
def test_missing_event_raises_invalid_request(event: str | None) -> None:
    """A request without an event is refused before sending, like the Java SDK's check."""
    with pytest.raises(InvalidRequest) as info:
        AlibabaIworkMcMsgSendmobileRequest(event).get_app_params()

    assert 40 == info.value.code
    assert "client-error:Missing required arguments:mobile_receiver_message_event" == info.value.msg


def test_unencodable_field_raises_invalid_request() -> None:
    """A field holding neither str nor int is refused with code 41 and its name."""
    event = dataclasses.replace(SEED_EVENT, sender=1.5)  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest) as info:
        event.to_json()

    assert (41, "client-error:Invalid arguments:sender") == (info.value.code, info.value.msg)


def test_event_is_frozen() -> None:
    """An event cannot change after it is built, so retries resend the same one."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        SEED_EVENT.msg_key = "other"  # type: ignore[misc]


def test_event_fields_follow_the_seed() -> None:
    """The value object has the seed's fields, in the seed's order."""
    expected = [
        "msg_key",
        "event_time_millis",
        "source",
        "action",
        "mobile_receiver",
        "event_type",
        "json_data",
        "resource_id",
        "resource_url",
        "sender",
    ]

    assert expected == [field.name for field in dataclasses.fields(MobileReceiverMessageEvent)]
