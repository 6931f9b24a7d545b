"""Unit tests for iwork_mc.events: parsing and validating ``mobile_receiver_message_event``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iwork_mc.events import EventFieldError, EventLimits, MobileReceiverMessageEvent, parse_event

VECTORS_FILE = Path(__file__).parents[1] / "data" / "signing_vectors.json"
_VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]
#: The seed's event as each official client serialises it (spec §3.4–§3.5).
SERIALISATIONS = {
    client: next(v for v in _VECTORS if v["name"] == f"sendmobile-{client}-md5")["params"][
        "mobile_receiver_message_event"
    ]
    for client in ("java", "node", "php")
}

LIMITS = EventLimits()

#: The seed's example event, as a Python dict.
SEED: dict[str, Any] = {
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
SEED_EVENT = MobileReceiverMessageEvent(
    msg_key="0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327",
    event_time_millis=1505376496485,
    source="iwork",
    action="iwork-action",
    mobile_receiver="+8613888888888",
    event_type="mobile_receiver",
    json_data='{"name":"张三"}',
    sender=10000,
    resource_id="1",
    resource_url="http://www.aaa.com",
)
REQUIRED = [
    "msg_key",
    "event_time_millis",
    "source",
    "action",
    "mobile_receiver",
    "event_type",
    "json_data",
    "sender",
]
_ABSENT = object()


def _parse(limits: EventLimits = LIMITS, **changes: Any) -> MobileReceiverMessageEvent:
    """Parse the seed event with ``changes`` applied (``_ABSENT`` removes a key)."""
    data = {**SEED, **changes}
    data = {k: v for k, v in data.items() if v is not _ABSENT}
    return parse_event(json.dumps(data, ensure_ascii=False), limits)


def _error(limits: EventLimits = LIMITS, **changes: Any) -> EventFieldError:
    with pytest.raises(EventFieldError) as error:
        _parse(limits, **changes)
    return error.value


# -- the seed event, three clients ----------------------------------------------------------------


@pytest.mark.parametrize("client", list(SERIALISATIONS))
def test_client_serialisations_parse_to_seed_event(client: str) -> None:
    """The Java, Node and PHP serialisations of the seed's event parse to one event."""
    assert SEED_EVENT == parse_event(SERIALISATIONS[client], LIMITS)


@pytest.mark.parametrize("client", list(SERIALISATIONS))
def test_client_serialisations_share_fingerprint(client: str) -> None:
    """The three serialisations of the seed's event have one fingerprint."""
    expected = parse_event(SERIALISATIONS["java"], LIMITS).fingerprint()

    assert expected == parse_event(SERIALISATIONS[client], LIMITS).fingerprint()


def test_php_serialisation_really_differs() -> None:
    """The PHP text has strings for numbers, ``\\u`` escapes and ``\\/``, unlike Java's."""
    php = SERIALISATIONS["php"]

    assert ('"sender":"10000"' in php, "\\u5f20\\u4e09" in php, "http:\\/\\/" in php) == (
        True,
        True,
        True,
    )


def test_fingerprint_is_sha256_hex() -> None:
    """A fingerprint is 64 lower-case hex digits."""
    fingerprint = SEED_EVENT.fingerprint()

    assert (64, True) == (len(fingerprint), set(fingerprint) <= set("0123456789abcdef"))


@pytest.mark.parametrize(
    "change",
    [
        {"msg_key": "other"},
        {"sender": 10001},
        {"event_time_millis": 1505376496486},
        {"json_data": '{"name":"李四"}'},
        {"mobile_receiver": "13888888889"},
        {"resource_id": _ABSENT},
    ],
    ids=["msg_key", "sender", "time", "json_data", "receiver", "resource_id"],
)
def test_fingerprint_differs_for_different_events(change: dict[str, Any]) -> None:
    """Changing any one field changes the fingerprint."""
    assert SEED_EVENT.fingerprint() != _parse(**change).fingerprint()


def test_fingerprint_ignores_json_data_spelling() -> None:
    """json_data is compared by meaning: whitespace and key order do not matter."""
    respelt = _parse(json_data='{ "name" : "\\u5f20\\u4e09" }')

    assert SEED_EVENT.fingerprint() == respelt.fingerprint()


# -- receivers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "receiver",
    [
        "13888888888",
        "+8613888888888",
        "8613888888888",
        "008613888888888",
        "+86 138 8888 8888",
        "138-8888-8888",
        13888888888,
    ],
    ids=["national", "e164", "cc-no-plus", "idd", "spaced", "dashed", "json-number"],
)
def test_receiver_normalises_to_e164(receiver: Any) -> None:
    """Chinese mobile numbers in any usual spelling normalise to ``+8613888888888``."""
    assert "+8613888888888" == _parse(mobile_receiver=receiver).mobile_receiver


@pytest.mark.parametrize(
    "receiver",
    ["01062345678", "+861062345678", "1388888", "+86138888888889", "hello", "+"],
    ids=["landline", "landline-e164", "too-short", "too-long", "letters", "plus-only"],
)
def test_receiver_rejected(receiver: str) -> None:
    """Landlines and malformed numbers are refused on mobile_receiver."""
    error = _error(mobile_receiver=receiver)

    assert ("mobile_receiver", False) == (error.field, error.missing)


def test_us_number_rejected_by_default_regions() -> None:
    """A US number is refused when only CN is allowed (the default)."""
    error = _error(mobile_receiver="+12015550123")

    assert ("mobile_receiver", "region US is not allowed") == (error.field, error.reason)


@pytest.mark.parametrize(
    "allowed", [frozenset(), frozenset({"US"}), frozenset({"CN", "US"})], ids=["any", "US", "CN+US"]
)
def test_us_number_accepted_when_allowed(allowed: frozenset[str]) -> None:
    """A US number is accepted when every region, or US, is allowed."""
    limits = EventLimits(allowed_regions=allowed)

    assert "+12015550123" == _parse(limits, mobile_receiver="+12015550123").mobile_receiver


def test_receiver_over_limit() -> None:
    """A receiver over 32 characters is refused before any phone parsing."""
    error = _error(mobile_receiver="1" * 33)

    assert ("mobile_receiver", "must be at most 32 characters") == (error.field, error.reason)


# -- missing fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize(
    "value", [_ABSENT, None, "", "  "], ids=["absent", "null", "empty", "blank"]
)
def test_missing_required_field(field: str, value: Any) -> None:
    """An absent, null or blank required field is reported missing, by name."""
    error = _error(**{field: value})

    assert (field, True) == (error.field, error.missing)


@pytest.mark.parametrize("field", ["resource_id", "resource_url"])
@pytest.mark.parametrize("value", [_ABSENT, None, ""], ids=["absent", "null", "empty"])
def test_optional_field_absent(field: str, value: Any) -> None:
    """An absent, null or empty optional field parses as None."""
    assert None is getattr(_parse(**{field: value}), field)


def test_unknown_keys_are_ignored() -> None:
    """Keys the API does not define are ignored."""
    assert SEED_EVENT == _parse(receiver=123, extra={"a": [1]}, MSG_KEY="x")


# -- wrong types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", True),
        ("sender", False),
        ("sender", 1.5),
        ("sender", "abc"),
        ("sender", "1e3"),
        ("sender", "+10000"),
        ("sender", "１００００"),
        ("sender", -1),
        ("sender", "-1"),
        ("sender", [10000]),
        ("sender", {"id": 10000}),
        ("sender", 2**63),
        ("event_time_millis", 2**63),
        ("event_time_millis", "9223372036854775808"),
        ("event_time_millis", "12345678901234567890"),
        ("event_time_millis", -1505376496485),
        ("event_time_millis", 1e300),
        ("msg_key", 1.5),
        ("msg_key", True),
        ("msg_key", ["k"]),
        ("source", {"a": 1}),
        ("resource_id", False),
    ],
    ids=[
        "sender-true",
        "sender-false",
        "sender-1.5",
        "sender-abc",
        "sender-exponent-text",
        "sender-plus-text",
        "sender-fullwidth-digits",
        "sender-negative",
        "sender-negative-text",
        "sender-array",
        "sender-object",
        "sender-over-int64",
        "time-over-int64",
        "time-over-int64-text",
        "time-20-digits",
        "time-negative",
        "time-1e300",
        "msg_key-float",
        "msg_key-bool",
        "msg_key-array",
        "source-object",
        "resource_id-bool",
    ],
)
def test_wrong_type(field: str, value: Any) -> None:
    """A value of the wrong type or out of range is refused on its field."""
    error = _error(**{field: value})

    assert (field, False) == (error.field, error.missing)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sender", "10000", 10000),
        ("sender", " 10000 ", 10000),
        ("sender", 10000.0, 10000),
        ("sender", 0, 0),
        ("event_time_millis", "1505376496485", 1505376496485),
        ("event_time_millis", 2**63 - 1, 2**63 - 1),
        ("event_time_millis", str(2**63 - 1), 2**63 - 1),
        ("msg_key", 12345, "12345"),
        ("resource_id", 1, "1"),
    ],
    ids=[
        "sender-text",
        "sender-padded-text",
        "sender-integral-float",
        "sender-zero",
        "time-text",
        "time-int64-max",
        "time-int64-max-text",
        "msg_key-number",
        "resource_id-number",
    ],
)
def test_lenient_typing(field: str, value: Any, expected: Any) -> None:
    """Numbers may come as numeric strings and string fields as numbers (PHP, spec §4.3)."""
    assert expected == getattr(_parse(**{field: value}), field)


# -- lengths --------------------------------------------------------------------------------------


def _of_length(field: str, length: int) -> str:
    """A valid value of ``field`` exactly ``length`` characters long."""
    if field == "json_data":
        return '{"a":"' + "x" * (length - 8) + '"}'
    if field == "resource_url":
        return "https://a.cn/" + "x" * (length - 13)
    return "张" * length


LIMITED = ["msg_key", "source", "action", "event_type", "json_data", "resource_id", "resource_url"]


@pytest.mark.parametrize("field", LIMITED)
def test_value_at_limit_is_accepted(field: str) -> None:
    """A value exactly at its EventLimits length is accepted."""
    value = _of_length(field, getattr(LIMITS, field))

    assert value == getattr(_parse(LIMITS, **{field: value}), field)


@pytest.mark.parametrize("field", LIMITED)
def test_value_over_limit_is_refused(field: str) -> None:
    """A value one character over its EventLimits length is refused on its field."""
    limit = getattr(LIMITS, field)
    error = _error(LIMITS, **{field: _of_length(field, limit + 1)})

    assert (field, f"must be at most {limit} characters") == (error.field, error.reason)


def test_limits_are_configurable() -> None:
    """A smaller configured limit is enforced."""
    error = _error(EventLimits(msg_key=8), msg_key="123456789")

    assert "msg_key" == error.field


# -- control characters and surrogates ------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["msg_key", "source", "action", "event_type", "resource_id", "mobile_receiver"]
)
@pytest.mark.parametrize("char", ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85"], ids=repr)
def test_control_character_refused(field: str, char: str) -> None:
    """A control character in a text field is refused on that field."""
    error = _error(LIMITS, **{field: f"{SEED[field]}{char}x"})

    assert (field, False) == (error.field, error.missing)


@pytest.mark.parametrize("field", ["msg_key", "source", "action", "event_type", "resource_id"])
def test_lone_surrogate_refused(field: str) -> None:
    """A lone surrogate (valid as a JSON ``\\ud800`` escape, not as text) is refused."""
    raw = json.dumps({**SEED, field: "placeholder"}).replace("placeholder", "k\\ud800")

    with pytest.raises(EventFieldError) as error:
        parse_event(raw, LIMITS)

    assert field == error.value.field


def test_lone_surrogate_in_json_data_does_not_break_fingerprint() -> None:
    """json_data holding an escaped lone surrogate is refused, or else fingerprinted."""
    try:
        event = _parse(json_data='{"name":"\\ud800"}')
    except EventFieldError as error:
        assert "json_data" == error.field
    else:
        assert 64 == len(event.fingerprint())


def test_json_data_may_span_lines() -> None:
    """JSON whitespace (newlines, tabs) inside json_data is fine."""
    json_data = '{\n\t"name": "张三"\n}'

    assert json_data == _parse(json_data=json_data).json_data


# -- json_data and resource_url -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["not json", "{", '{"a":1}x', "[1,2]", '"text"', "42", "null", '{"a":NaN}', '{"a":Infinity}'],
    ids=[
        "garbage",
        "truncated",
        "trailing",
        "array",
        "string",
        "number",
        "null",
        "NaN",
        "Infinity",
    ],
)
def test_json_data_must_hold_a_json_object(value: str) -> None:
    """json_data must be the text of a JSON object (RFC 8259: no NaN or Infinity)."""
    error = _error(json_data=value)

    assert ("json_data", False) == (error.field, error.missing)


@pytest.mark.parametrize(
    "value", [{"name": "张三"}, ["a"], 42, True], ids=["object", "array", "number", "bool"]
)
def test_json_data_must_be_a_string(value: Any) -> None:
    """json_data sent as a JSON value instead of a string is refused."""
    error = _error(json_data=value)

    assert ("json_data", "must be a string holding a JSON object") == (error.field, error.reason)


def test_json_data_is_kept_as_sent() -> None:
    """json_data is kept verbatim, not re-serialised."""
    json_data = '{"b": 1, "a": "张三"}'

    assert json_data == _parse(json_data=json_data).json_data


@pytest.mark.parametrize(
    "url",
    [
        "ftp://www.aaa.com/file",
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "www.aaa.com",
        "http://",
        "https:///path",
    ],
    ids=["ftp", "javascript", "JAVASCRIPT", "data", "file", "no-scheme", "no-host", "empty-host"],
)
def test_resource_url_refused(url: str) -> None:
    """resource_url must be an http or https URL with a host."""
    error = _error(resource_url=url)

    assert ("resource_url", False) == (error.field, error.missing)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.aaa.com/a?b=1#c",
        "http://www.aaa.com",
        "HTTPS://WWW.AAA.COM",
        "http://[::1]:8080/",
    ],
    ids=["https", "http", "upper-case", "ipv6"],
)
def test_resource_url_accepted(url: str) -> None:
    """http and https URLs with a host are accepted as sent."""
    assert url == _parse(resource_url=url).resource_url


# -- the whole text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "{", "[]", json.dumps([SEED]), '"text"', "null", "42"],
    ids=["empty", "garbage", "truncated", "empty-array", "array", "string", "null", "number"],
)
def test_whole_text_must_be_a_json_object(raw: str) -> None:
    """A text that is not a JSON object is refused on mobile_receiver_message_event."""
    with pytest.raises(EventFieldError) as error:
        parse_event(raw, LIMITS)

    assert ("mobile_receiver_message_event", False) == (error.value.field, error.value.missing)


def test_deep_nesting_is_refused_not_crashing() -> None:
    """Pathologically nested JSON is refused as invalid, without a RecursionError."""
    with pytest.raises(EventFieldError) as error:
        parse_event("[" * 100_000 + "]" * 100_000, LIMITS)

    assert "mobile_receiver_message_event" == error.value.field


# -- properties -----------------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).filter(lambda s: s.strip() != "")
_int64 = st.integers(min_value=0, max_value=2**63 - 1)
# NUL is refused anywhere in json_data (it cannot be stored on PostgreSQL).
_json_text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=5)
_json_object = st.dictionaries(
    _json_text, st.one_of(_json_text, st.integers(), st.booleans()), max_size=4
)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "msg_key": draw(_text),
        "event_time_millis": draw(_int64),
        "source": draw(_text),
        "action": draw(_text),
        "mobile_receiver": draw(st.sampled_from(["13888888888", "+8613912345678"])),
        "event_type": draw(_text),
        "json_data": json.dumps(draw(_json_object), ensure_ascii=False),
        "sender": draw(_int64),
    }
    if draw(st.booleans()):
        event["resource_id"] = draw(_text)
    if draw(st.booleans()):
        event["resource_url"] = "https://www.aaa.com/" + draw(st.text("abc/?=&", max_size=10))
    return event


@st.composite
def _serialisations(draw: st.DrawFn, event: dict[str, Any]) -> str:
    """One client's text of ``event``: any key order, numbers maybe as strings, any escapes."""
    keys = draw(st.permutations(list(event)))
    data = {}
    for key in keys:
        value = event[key]
        if key in ("sender", "event_time_millis") and draw(st.booleans()):
            value = str(value)
        data[key] = value
    text = json.dumps(
        data,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
    )
    if draw(st.booleans()):
        text = text.replace("/", "\\/")
    return text


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fingerprint_invariant_under_serialisation(data: st.DataObject) -> None:
    """Two client serialisations of one event parse to one event with one fingerprint."""
    event = data.draw(_events(), label="event")
    first = parse_event(data.draw(_serialisations(event), label="first"), LIMITS)
    second = parse_event(data.draw(_serialisations(event), label="second"), LIMITS)

    assert (first, first.fingerprint()) == (second, second.fingerprint())
