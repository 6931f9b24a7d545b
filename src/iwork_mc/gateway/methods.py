"""The TOP methods this gateway serves: a registry from method name to handler.

A handler receives a :class:`TopCall` whose system parameters, app and
signature are already checked, and returns the payload of the success
envelope, or raises :class:`~iwork_mc.top.errors.TopError`.  Adding a method
is adding an entry to the table :func:`build_methods` returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from iwork_mc import tracing
from iwork_mc.apps import App
from iwork_mc.compose import AcceptRules, compose
from iwork_mc.config import Settings
from iwork_mc.events import EventFieldError, EventLimits, MobileReceiverMessageEvent, parse_event
from iwork_mc.gateway.directory import TemplateCatalog
from iwork_mc.gateway.rendering import render_off_loop_if_slow
from iwork_mc.messages import AcceptOutcome, Rejection
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
    """``alibaba.iwork.mc.msg.sendmobile``: validate, compose, store durably, answer.

    A valid request can still be declined on business grounds (a template
    that cannot render the event, a text too long, no route, a receiver
    policy): the answer is then ``result.success=false`` with an error_code.
    """

    def __init__(
        self,
        store: Store,
        limits: EventLimits,
        max_event_bytes: int,
        rules: AcceptRules,
        templates: TemplateCatalog,
    ) -> None:
        self._store = store
        self._limits = limits
        self._max_event_bytes = max_event_bytes
        self._rules = rules
        self._templates = templates

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
        app_key = call.app.app_key
        templates = await self._templates.current(call.now_ms / 1000)
        composed = await render_off_loop_if_slow(
            lambda trial_seconds: compose(
                self._rules,
                app_key,
                event,
                templates,
                call.now_ms,
                request_id=call.request_id,
                trial_seconds=trial_seconds,
            )
        )
        if isinstance(composed, Rejection):
            return await self._declined(app_key, event, composed)
        message = composed.message
        trace_parent = tracing.current_parent()
        if trace_parent:
            message = dataclasses.replace(message, trace_parent=trace_parent)
        result = await self._store.accept(message, composed.checks)
        if result.outcome is AcceptOutcome.REJECTED and result.rejection is not None:
            return business_result(result.rejection.code, result.rejection.reason)
        return _CONFLICT if result.outcome is AcceptOutcome.CONFLICT else _ACCEPTED

    async def _declined(
        self, app_key: str, event: MobileReceiverMessageEvent, rejection: Rejection
    ) -> Mapping[str, Any]:
        # A repeat of a message accepted before (say, before its template
        # changed) still gets the answer the first call got.
        existing = await self._store.get_message(app_key, event.msg_key)
        if existing is not None:
            return _ACCEPTED if existing.fingerprint == event.fingerprint() else _CONFLICT
        return business_result(rejection.code, rejection.reason)


def build_methods(store: Store, settings: Settings) -> dict[str, MethodHandler]:
    send_mobile = SendMobile(
        store,
        settings.event_limits,
        settings.max_event_bytes,
        AcceptRules.from_settings(settings),
        TemplateCatalog(store, settings.template_cache_ttl_s),
    )
    return {SEND_MOBILE: send_mobile}
