"""Request classes, TOP-SDK style: one class per API method, object parameters as value objects.

A request knows its method name and turns itself into application parameters
(``dict[str, str]``).  An object parameter travels as one form field holding
the object's JSON text, and that exact text is what gets signed
(spec/top-protocol.md §4.2), so the serialisation is part of the wire format.

Two serialisations are offered:

``"java"`` (default)
    Byte-identical to the official Java SDK's ``JSONWriter``: keys in the
    alphabetical order of the Java property names, ``null`` omitted, ``/``
    written ``\\/``, ``"`` ``\\`` ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t``
    escaped, other ISO control characters as upper-case ``\\uXXXX``, everything
    else (Chinese included) raw.  With it our requests carry the very bytes, and
    so the very signatures, of spec §3.4.
``"compact"``
    ``JSON.stringify`` style as the Node SDK sends it: declaration (seed) order,
    ``/`` unescaped, non-ASCII raw.

The gateway accepts both; they differ only in bytes, never in meaning.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from iwork_mc.client._exceptions import InvalidRequest

__all__ = [
    "AlibabaIworkMcMsgSendmobileRequest",
    "JSONStyle",
    "MobileReceiverMessageEvent",
    "TopRequest",
]

JSONStyle = Literal["java", "compact"]
"""How object parameters are written as JSON text: ``"java"`` (Java SDK bytes) or ``"compact"``."""

_JAVA_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
# Java's Character.isISOControl: U+0000–U+001F and U+007F–U+009F.
_JAVA_NEEDS_ESCAPE = re.compile('["\\\\/\x00-\x1f\x7f-\x9f]')


class TopRequest(abc.ABC):
    """One TOP API call: the method name and its application parameters.

    Subclasses set :attr:`api_method_name` and implement :meth:`get_app_params`,
    the way every generated request class of the official SDKs does.
    """

    #: The TOP method name, e.g. ``alibaba.iwork.mc.msg.sendmobile``.
    api_method_name: ClassVar[str]

    @abc.abstractmethod
    def get_app_params(self) -> dict[str, str]:
        """The application parameters exactly as they will be sent and signed.

        Returns:
            Parameter name to text value; absent optional parameters are left out.

        Raises:
            InvalidRequest: a required parameter is missing or cannot be encoded.
        """


@dataclass(frozen=True, kw_only=True, slots=True)
class MobileReceiverMessageEvent:
    """The ``MobileReceiverMessageEvent`` object of ``alibaba.iwork.mc.msg.sendmobile``.

    Field names and types are the API page's (TOP ``Number`` is an ``int``).
    ``None`` fields are left out of the JSON text.

    Args:
        msg_key: the caller-chosen unique key of the message; the gateway's idempotency key.
        event_time_millis: the event time in epoch milliseconds.
        source: the calling system, e.g. ``iwork``.
        action: the message event, e.g. ``iwork-action``.
        mobile_receiver: the receiver's mobile number, e.g. ``13888888888``.
        event_type: the message type, ``mobile_receiver`` for this API.
        json_data: the message content, a JSON object as text, e.g. ``{"name":"张三"}``.
        resource_id: optional id of the resource the message is about.
        resource_url: optional URL of that resource.
        sender: the sender's numeric id.
    """

    msg_key: str
    event_time_millis: int
    source: str
    action: str
    mobile_receiver: str
    event_type: str
    json_data: str
    resource_id: str | None = None
    resource_url: str | None = None
    sender: int

    def to_dict(self) -> dict[str, str | int]:
        """The fields that are set, in declaration order.

        Returns:
            Field name to value, ``None`` fields left out.
        """
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }

    def to_json(self, *, style: JSONStyle = "java") -> str:
        """The JSON text sent as ``mobile_receiver_message_event``.

        Args:
            style: ``"java"`` for the Java SDK's exact bytes (the default),
                ``"compact"`` for ``JSON.stringify``-style text.

        Returns:
            Compact JSON text, non-ASCII characters raw.

        Raises:
            InvalidRequest: a field holds a value that is neither ``str`` nor ``int``.
        """
        fields = self.to_dict()
        for name, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidRequest(41, f"client-error:Invalid arguments:{name}")
        if style == "compact":
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        if style == "java":
            return _java_object(fields)
        raise ValueError(f"unknown JSON style {style!r}")


class AlibabaIworkMcMsgSendmobileRequest(TopRequest):
    """``alibaba.iwork.mc.msg.sendmobile``: send a message to a mobile phone user.

    Mirrors the Java SDK's generated class::

        req = AlibabaIworkMcMsgSendmobileRequest()
        req.mobile_receiver_message_event = MobileReceiverMessageEvent(msg_key=…, …)
        answer = client.execute(req)

    Args:
        mobile_receiver_message_event: the event, or its JSON text to send verbatim
            (like Java's ``setMobileReceiverMessageEvent(String)``).
        json_style: how an event object is serialised; see :data:`JSONStyle`.
    """

    api_method_name: ClassVar[str] = "alibaba.iwork.mc.msg.sendmobile"

    def __init__(
        self,
        mobile_receiver_message_event: MobileReceiverMessageEvent | str | None = None,
        *,
        json_style: JSONStyle = "java",
    ) -> None:
        self.mobile_receiver_message_event = mobile_receiver_message_event
        self.json_style: JSONStyle = json_style

    def get_app_params(self) -> dict[str, str]:
        """The one parameter ``mobile_receiver_message_event``, as JSON text.

        Returns:
            ``{"mobile_receiver_message_event": <JSON text>}``.

        Raises:
            InvalidRequest: the event is not set (40) or cannot be encoded (41).
        """
        event = self.mobile_receiver_message_event
        if isinstance(event, str):
            text = event
        elif event is None:
            text = ""
        else:
            text = event.to_json(style=self.json_style)
        if not text.strip():
            raise InvalidRequest(
                40, "client-error:Missing required arguments:mobile_receiver_message_event"
            )
        return {"mobile_receiver_message_event": text}


def _java_object(fields: dict[str, str | int]) -> str:
    # Java's bean introspection lists properties sorted by their camelCase names.
    names = sorted(fields, key=_java_property_name)
    members = (f"{_java_string(name)}:{_java_value(fields[name])}" for name in names)
    return "{" + ",".join(members) + "}"


def _java_property_name(api_name: str) -> str:
    head, *rest = api_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _java_value(value: str | int) -> str:
    return _java_string(value) if isinstance(value, str) else str(value)


def _java_string(text: str) -> str:
    return '"' + _JAVA_NEEDS_ESCAPE.sub(_java_escape, text) + '"'


def _java_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _JAVA_ESCAPES.get(char) or f"\\u{ord(char):04X}"
