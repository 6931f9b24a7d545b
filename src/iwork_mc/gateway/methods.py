"""The TOP methods this gateway serves: a registry from method name to handler.

A handler receives a :class:`TopCall` whose system parameters, app and
signature are already checked, and returns the payload of the success
envelope, or raises :class:`~iwork_mc.top.errors.TopError`.  Adding a method
is adding an entry to the table :func:`build_methods` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from iwork_mc.apps import App
from iwork_mc.events import EventFieldError, EventLimits, parse_event
from iwork_mc.messages import AcceptOutcome, NewMessage
from iwork_mc.store.base import Store
from iwork_mc.top.errors import PlatformCode, TopError, invalid_field, missing_field

__all__ = ["SEND_MOBILE", "MethodHandler", "SendMobile", "TopCall", "business_result"]

SEND_MOBILE = "alibaba.iwork.mc.msg.sendmobile"
EVENT_PARAM = "mobile_receiver_message_event"


@dataclass(frozen=True, slots=True)
class TopCall:
    params: Mapping[str, str]
    app: App
    request_id: str
    now_ms: int


class MethodHandler(Protocol):
    async def __call__(self, call: TopCall) -> Mapping[str, Any]: ...


def business_result(error_code: str = "200", error_msg: str = "success") -> dict[str, Any]:
    """The ``PojoResult`` of the seed: success iff the code is ``200``."""
    ok = error_code == "200"
    return {
        "result": {"content": ok, "error_code": error_code, "error_msg": error_msg, "success": ok}
    }


_ACCEPTED = business_result()
_CONFLICT = business_result(
    "MSG_KEY_CONFLICT", "msg_key was already used by this app for a different event"
)


class SendMobile:
    """``alibaba.iwork.mc.msg.sendmobile``: validate the event, store it durably, answer."""

    def __init__(self, store: Store, limits: EventLimits, max_event_bytes: int) -> None:
        self._store = store
        self._limits = limits
        self._max_event_bytes = max_event_bytes

    async def __call__(self, call: TopCall) -> Mapping[str, Any]:
        raw = call.params.get(EVENT_PARAM, "")
        if not raw.strip():
            raise TopError(PlatformCode.MISSING_REQUIRED_ARGUMENTS, arg=EVENT_PARAM)
        # A UTF-8 character is at most 4 bytes: encode only when the text might be too long.
        if len(raw) * 4 > self._max_event_bytes and len(raw.encode()) > self._max_event_bytes:
            raise TopError(
                PlatformCode.INVALID_ARGUMENTS,
                "isv.invalid-parameter",
                f"{EVENT_PARAM} exceeds {self._max_event_bytes} bytes",
                arg=EVENT_PARAM,
            )
        try:
            event = parse_event(raw, self._limits)
        except EventFieldError as exc:
            if exc.missing:
                raise missing_field(exc.field) from None
            raise invalid_field(exc.field, exc.reason) from None
        result = await self._store.accept(
            NewMessage(
                app_key=call.app.app_key,
                event=event,
                fingerprint=event.fingerprint(),
                request_id=call.request_id,
                accepted_at_ms=call.now_ms,
            )
        )
        return _CONFLICT if result.outcome is AcceptOutcome.CONFLICT else _ACCEPTED


def build_methods(
    store: Store, limits: EventLimits, max_event_chars: int
) -> dict[str, MethodHandler]:
    return {SEND_MOBILE: SendMobile(store, limits, max_event_chars)}
