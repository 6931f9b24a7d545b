"""``MobileReceiverMessageEvent``: parsing and validation of the one parameter of sendmobile.

Pure: a JSON text in, a normalised :class:`MobileReceiverMessageEvent` out, or
an :class:`EventFieldError` naming the field and the reason.  The gateway turns
that error into the seed's documented answer (code 50, ``isv.invalid-parameter``
or ``isv.missing-parameter``, ``非法参数:<field> <reason>``).

Official SDKs serialise the object differently (spec/top-protocol.md §4.2):
key order, ``\\/`` escapes and numbers written as strings all vary, so
:meth:`MobileReceiverMessageEvent.fingerprint` is computed from the parsed,
normalised object and two serialisations of one event have one fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

__all__ = [
    "EventFieldError",
    "EventLimits",
    "InvalidNumber",
    "MobileReceiverMessageEvent",
    "e164",
    "parse_event",
]

_INT64_MAX = 2**63 - 1
_INTEGER_TEXT = re.compile(r"-?\d{1,19}", re.ASCII)
# C0/C1 control characters have no business in identifiers or URLs, and lone
# surrogates (legal in JSON escapes) cannot be stored or answered as UTF-8.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A lone surrogate can only enter json_data as a \uD800-\uDFFF escape (the text
# itself came from UTF-8); only texts with such an escape need the full check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NUL_ESCAPE = re.compile(r"\\u0000")


class EventFieldError(ValueError):
    """A field of the event is absent (``missing=True``) or invalid."""

    def __init__(self, field: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason
        self.missing = missing


@dataclass(frozen=True, kw_only=True)
class EventLimits:
    """Length limits (in characters) and receiver rules (docs/reference/sendmobile.md)."""

    msg_key: int = 128
    source: int = 64
    action: int = 128
    event_type: int = 64
    json_data: int = 8192
    resource_id: int = 128
    resource_url: int = 2048
    #: Region assumed for numbers written without ``+`` and a country code.
    default_region: str = "CN"
    #: Regions whose numbers are accepted; empty means every region.
    allowed_regions: frozenset[str] = frozenset({"CN"})


@dataclass(frozen=True, kw_only=True, slots=True)
class MobileReceiverMessageEvent:
    """One validated event; ``mobile_receiver`` is in E.164 (``+8613888888888``)."""

    msg_key: str
    event_time_millis: int
    source: str
    action: str
    mobile_receiver: str
    event_type: str
    json_data: str
    sender: int
    resource_id: str | None = None
    resource_url: str | None = None
    #: ``json_data`` parsed, kept by :func:`parse_event` so it is parsed once per call.
    #: Read it through :meth:`data`; never mutate it.
    parsed_data: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def data(self) -> dict[str, Any]:
        """``json_data`` as an object."""
        if self.parsed_data is not None:
            return self.parsed_data
        parsed: dict[str, Any] = json.loads(self.json_data)
        return parsed

    def to_dict(self) -> dict[str, Any]:
        return {
            "msg_key": self.msg_key,
            "event_time_millis": self.event_time_millis,
            "source": self.source,
            "action": self.action,
            "mobile_receiver": self.mobile_receiver,
            "event_type": self.event_type,
            "json_data": self.json_data,
            "sender": self.sender,
            "resource_id": self.resource_id,
            "resource_url": self.resource_url,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical form: equal for equal events, whatever the wire bytes."""
        canonical = self.to_dict()
        # json_data is itself JSON: compare what it means, not how it was spelt.
        canonical["json_data"] = self.data()
        text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_event(raw: str, limits: EventLimits) -> MobileReceiverMessageEvent:
    """Parse and validate the JSON text of ``mobile_receiver_message_event``.

    Raises:
        EventFieldError: the text is not a JSON object, or a field is missing or invalid.
            ``field`` is ``mobile_receiver_message_event`` when the whole text is wrong.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise EventFieldError("mobile_receiver_message_event", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise EventFieldError("mobile_receiver_message_event", "must be a JSON object")
    # Fields are checked in the documented order; the first problem is the one reported.
    msg_key = _text(data, "msg_key", limits.msg_key)
    event_time_millis = _integer(data, "event_time_millis", minimum=0)
    source = _text(data, "source", limits.source)
    action = _text(data, "action", limits.action)
    mobile_receiver = _receiver(data, limits.default_region, limits.allowed_regions)
    event_type = _text(data, "event_type", limits.event_type)
    json_data, parsed_data = _json_object_text(data, "json_data", limits.json_data)
    return MobileReceiverMessageEvent(
        msg_key=msg_key,
        event_time_millis=event_time_millis,
        source=source,
        action=action,
        mobile_receiver=mobile_receiver,
        event_type=event_type,
        json_data=json_data,
        sender=_integer(data, "sender", minimum=0),
        resource_id=_text(data, "resource_id", limits.resource_id, required=False),
        resource_url=_url(data, "resource_url", limits.resource_url),
        parsed_data=parsed_data,
    )


def _present(data: Mapping[str, Any], field: str, required: bool) -> Any:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise EventFieldError(field, "is required", missing=True)
        return None
    return value


def _text(data: Mapping[str, Any], field: str, limit: int, *, required: bool = True) -> Any:
    value = _present(data, field, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventFieldError(field, "must be a string")
    text = str(value)
    if len(text) > limit:
        raise EventFieldError(field, f"must be at most {limit} characters")
    if _CONTROL.search(text):
        raise EventFieldError(field, "must not contain control characters")
    return text


def _integer(data: Mapping[str, Any], field: str, *, minimum: int) -> int:
    value = _present(data, field, required=True)
    if isinstance(value, bool):
        raise EventFieldError(field, "must be a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise EventFieldError(field, "must be an integer number")
    if not minimum <= value <= _INT64_MAX:
        raise EventFieldError(field, f"must be between {minimum} and {_INT64_MAX}")
    return value


def _json_object_text(
    data: Mapping[str, Any], field: str, limit: int
) -> tuple[str, dict[str, Any]]:
    text: str = _present(data, field, required=True)
    if not isinstance(text, str):
        raise EventFieldError(field, "must be a string holding a JSON object")
    if len(text) > limit:
        raise EventFieldError(field, f"must be at most {limit} characters")
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise EventFieldError(field, "is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise EventFieldError(field, "must be a JSON object")
    if _NUL_ESCAPE.search(text) and _holds_nul(parsed):
        # A NUL can reach the message text through a template; no store keeps one.
        raise EventFieldError(field, "must not contain NUL characters (\\u0000)")
    if _SURROGATE_ESCAPE.search(text):
        try:
            # Escaped lone surrogates parse, but could never be stored or sent as UTF-8.
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise EventFieldError(field, "must not contain lone surrogates") from None
    return text, parsed


def _holds_nul(parsed: dict[str, Any]) -> bool:
    """Whether any key or string value, at any depth, holds a NUL character."""
    pending: list[Any] = [parsed]
    while pending:  # a loop, not recursion: nesting is as deep as json.loads allowed
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are accepted by Python's json module but are not JSON.
    raise ValueError(f"{name} is not JSON")


def _url(data: Mapping[str, Any], field: str, limit: int) -> str | None:
    text = _text(data, field, limit, required=False)
    if text is None:
        return None
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise EventFieldError(field, "must be an http or https URL")
    return str(text.strip())


def _receiver(data: Mapping[str, Any], default_region: str, allowed: Collection[str]) -> str:
    text = _text(data, "mobile_receiver", 32)
    e164, problem = _normalised(text, default_region, frozenset(allowed))
    if problem:
        raise EventFieldError("mobile_receiver", problem)
    return e164


class InvalidNumber(ValueError):
    """Not a phone number, or not a valid one; the message says which."""


@functools.lru_cache(maxsize=65_536)
def _parsed(text: str, default_region: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidNumber("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("is not a valid phone number")
    return number


def e164(text: str, default_region: str) -> str:
    """Any valid phone number as E.164 (``13888888888`` → ``+8613888888888`` in CN).

    For filters and opt-out lists: unlike an event's receiver, a landline or a
    number of another region is fine here.  Raises :class:`InvalidNumber`.
    """
    number = _parsed(text.strip(), default_region)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


# A park's receivers repeat (the same staff, day after day), and validating a
# number is the most expensive step of an accept: remember the answers.
@functools.lru_cache(maxsize=65_536)
def _normalised(text: str, default_region: str, allowed: frozenset[str]) -> tuple[str, str]:
    """``(E.164, "")`` for an acceptable mobile number, or ``("", why not)``."""
    try:
        number = _parsed(text, default_region)
    except InvalidNumber as exc:
        return "", str(exc)
    region = phonenumbers.region_code_for_number(number)
    if allowed and region not in allowed:
        return "", f"region {region} is not allowed"
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return "", "is not a mobile number"
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)), ""


_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
