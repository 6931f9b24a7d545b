"""The JSON shapes of the ``/v1`` REST API, as Pydantic models (they make the OpenAPI schema).

Every instant is given twice: ``<name>_ms`` (epoch milliseconds, exact) and
``<name>`` (ISO 8601 in UTC, for people).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from iwork_mc.callbacks import MAX_CALLBACK_URL
from iwork_mc.events import EventLimits
from iwork_mc.messages import Message, MessageStatus, TimelineEntry
from iwork_mc.policies import OptOut
from iwork_mc.templates import MAX_BODY, MAX_LIMITS, NAME_PATTERN, Template

__all__ = [
    "CallbackIn",
    "CallbackOut",
    "ErrorBody",
    "ErrorOut",
    "EventOut",
    "MessageDetail",
    "MessageOut",
    "MessagePage",
    "OptOutIn",
    "OptOutOut",
    "RenderIn",
    "RenderOut",
    "Responses",
    "StatusCounts",
    "TemplateIn",
    "TemplateOut",
    "TemplateUpdate",
    "TimelineOut",
    "iso",
]

#: Template selection fields are as long as the event fields they match.
_EVENT = EventLimits()


class _Input(BaseModel):
    """A request body: unknown fields and NUL characters (which no store keeps) refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters (\\u0000)")
        return value


#: The ``responses=`` of a route: extra answers for the OpenAPI schema.
Responses = dict[int | str, dict[str, Any]]


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 in UTC: ``2023-11-14T22:13:20.000Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="A stable, machine-readable code, e.g. `invalid_signature`.")
    message: str = Field(description="A sentence for people.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of a request that failed validation."
    )
    line: int | None = Field(default=None, description="The template line of a syntax error.")


class ErrorOut(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


class EventOut(BaseModel):
    """The ``mobile_receiver_message_event`` as accepted (receiver in E.164)."""

    msg_key: str
    event_time_millis: int
    event_time: str
    source: str
    action: str
    mobile_receiver: str
    event_type: str
    json_data: str
    sender: int
    resource_id: str | None
    resource_url: str | None


class MessageOut(BaseModel):
    id: int = Field(description="The store's id; pages are cut with `before_id`.")
    msg_key: str
    status: MessageStatus
    request_id: str = Field(description="The request_id of the TOP call that accepted it.")
    accepted_at_ms: int
    accepted_at: str
    updated_at_ms: int
    updated_at: str
    expires_at_ms: int | None
    expires_at: str | None
    attempts: int
    channel: str | None
    channel_ref: str | None
    last_error: str | None
    text: str = Field(description="What the receiver reads.")
    template: str = Field(description='The template that rendered `text`; "" for the default.')
    encoding: str = Field(description="`gsm7` or `ucs2`.")
    segments: int
    urgent: bool
    event: EventOut

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        event = message.event
        return cls(
            id=message.id,
            msg_key=message.msg_key,
            status=message.status,
            request_id=message.request_id,
            accepted_at_ms=message.accepted_at_ms,
            accepted_at=iso(message.accepted_at_ms),
            updated_at_ms=message.updated_at_ms,
            updated_at=iso(message.updated_at_ms),
            expires_at_ms=message.expires_at_ms,
            expires_at=_iso_or_none(message.expires_at_ms),
            attempts=message.attempts,
            channel=message.channel,
            channel_ref=message.channel_ref,
            last_error=message.last_error,
            text=message.text,
            template=message.template,
            encoding=message.encoding,
            segments=message.segments,
            urgent=message.urgent,
            event=EventOut(
                msg_key=event.msg_key,
                event_time_millis=event.event_time_millis,
                event_time=iso(event.event_time_millis),
                source=event.source,
                action=event.action,
                mobile_receiver=event.mobile_receiver,
                event_type=event.event_type,
                json_data=event.json_data,
                sender=event.sender,
                resource_id=event.resource_id,
                resource_url=event.resource_url,
            ),
        )


class TimelineOut(BaseModel):
    at_ms: int
    at: str
    kind: str = Field(description="`accepted`, `claimed`, `submitted`, `receipt`, `requeued`…")
    status: MessageStatus = Field(description="The message's status after this entry.")
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineOut:
        return cls(
            at_ms=entry.at_ms,
            at=iso(entry.at_ms),
            kind=entry.kind,
            status=entry.status,
            detail=entry.detail,
        )


class MessageDetail(MessageOut):
    """A message with its whole history, oldest entry first."""

    timeline: list[TimelineOut]


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="Newest (highest id) first.")
    next_before_id: int | None = Field(
        description="Pass as `before_id` for the next page; null on the last page."
    )


class StatusCounts(BaseModel):
    counts: dict[MessageStatus, int] = Field(description="Every status, zeros included.")
    total: int
    accepted_from_ms: int | None
    accepted_until_ms: int | None


class TemplateUpdate(_Input):
    """A template's content; an empty selector field matches any value."""

    body: str = Field(min_length=1, max_length=MAX_BODY, description="Jinja2 (sandboxed) text.")
    source: str = Field(default="", max_length=_EVENT.source)
    action: str = Field(default="", max_length=_EVENT.action)
    event_type: str = Field(default="", max_length=_EVENT.event_type)
    urgent: bool = Field(default=False, description="Sent even in quiet hours.")
    limits: str = Field(
        default="", max_length=MAX_LIMITS, description='Per-receiver caps, e.g. "hour=1,day=3".'
    )


class TemplateIn(TemplateUpdate):
    name: str = Field(pattern=NAME_PATTERN, description="Unique among all templates.")


class TemplateOut(BaseModel):
    name: str
    body: str
    source: str
    action: str
    event_type: str
    urgent: bool
    limits: str
    shared: bool = Field(description="A template of every app: visible, not changeable.")
    created_at_ms: int
    created_at: str
    updated_at_ms: int
    updated_at: str

    @classmethod
    def of(cls, template: Template) -> TemplateOut:
        return cls(
            name=template.name,
            body=template.body,
            source=template.source,
            action=template.action,
            event_type=template.event_type,
            urgent=template.urgent,
            limits=template.limits,
            shared=template.app_key == "",
            created_at_ms=template.created_at_ms,
            created_at=iso(template.created_at_ms),
            updated_at_ms=template.updated_at_ms,
            updated_at=iso(template.updated_at_ms),
        )


class RenderIn(_Input):
    """A dry run: which template an event would use and what it would read."""

    event: dict[str, Any] | str = Field(
        description="The `mobile_receiver_message_event`, as an object or as its JSON text."
    )
    body: str | None = Field(
        default=None, max_length=MAX_BODY, description="Render this text instead of a stored one."
    )
    name: str | None = Field(default=None, description="Render this stored template.")


class RenderOut(BaseModel):
    template: str = Field(
        description='The template used: its name, "" for the default, "(body)" for `body`.'
    )
    ok: bool
    text: str | None = Field(description="The rendered text; null when rendering failed.")
    encoding: str | None = Field(description="`gsm7` or `ucs2`.")
    units: int | None = Field(description="GSM-7 septets or UCS-2 code units.")
    segments: int | None = Field(description="How many SMS the receiver gets.")
    error: str | None = Field(description="Why the template cannot render this event.")


class OptOutIn(_Input):
    reason: str = Field(default="", max_length=500)


class OptOutOut(BaseModel):
    receiver: str = Field(description="E.164.")
    reason: str
    all_apps: bool = Field(description='An operator\'s opt-out of every app ("*"): read-only.')
    created_at_ms: int
    created_at: str

    @classmethod
    def of(cls, opt_out: OptOut) -> OptOutOut:
        return cls(
            receiver=opt_out.receiver,
            reason=opt_out.reason,
            all_apps=opt_out.app_key == "*",
            created_at_ms=opt_out.created_at_ms,
            created_at=iso(opt_out.created_at_ms),
        )


class CallbackIn(_Input):
    url: str = Field(max_length=MAX_CALLBACK_URL, description="An http or https URL.")


class CallbackOut(BaseModel):
    url: str | None
