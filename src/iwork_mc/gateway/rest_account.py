"""``/v1/opt-outs`` and ``/v1/callback``: the calling app's receiver opt-outs and callback URL."""

from __future__ import annotations

from fastapi import APIRouter, Response

from iwork_mc import audit
from iwork_mc.callbacks import InvalidCallbackURL, check_callback_url
from iwork_mc.gateway.rest_auth import RestError
from iwork_mc.gateway.rest_common import CallerDep, ContextDep, normalise_receiver
from iwork_mc.gateway.rest_models import (
    CallbackIn,
    CallbackOut,
    ErrorOut,
    OptOutIn,
    OptOutOut,
    Responses,
)
from iwork_mc.policies import OptOut

__all__ = ["router"]

router = APIRouter(prefix="/v1")

_INVALID_NUMBER: Responses = {422: {"model": ErrorOut, "description": "Not a valid phone number."}}


@router.get("/opt-outs", response_model=list[OptOutOut], tags=["opt-outs"], summary="List opt-outs")
async def list_opt_outs(caller: CallerDep, context: ContextDep) -> list[OptOutOut]:
    """Receivers who get no messages from the calling app (and from every app), newest first."""
    opt_outs = await context.store.list_opt_outs(caller.app_key)
    return [OptOutOut.of(opt_out) for opt_out in opt_outs]


@router.put(
    "/opt-outs/{receiver}",
    response_model=OptOutOut,
    responses={
        201: {"model": OptOutOut, "description": "Opted out now."},
        **_INVALID_NUMBER,
    },
    tags=["opt-outs"],
    summary="Opt a receiver out",
)
async def add_opt_out(
    receiver: str,
    caller: CallerDep,
    context: ContextDep,
    response: Response,
    opt_out: OptOutIn | None = None,
) -> OptOutOut:
    """Send nothing more from the calling app to ``receiver`` (any spelling; kept in E.164).

    Answers 201 when recorded now, 200 with the existing record (its reason
    unchanged) when the receiver was already opted out.
    """
    number = normalise_receiver(receiver, context.settings.default_region)
    record = OptOut(
        app_key=caller.app_key,
        receiver=number,
        reason=opt_out.reason if opt_out is not None else "",
        created_at_ms=caller.now_ms,
    )
    change = audit.opt_out_added(
        audit.app_actor(caller.app_key), caller.now_ms, app_key=caller.app_key, receiver=number
    )
    if await context.store.add_opt_out(record, audit=change):
        response.status_code = 201
        return OptOutOut.of(record)
    for existing in await context.store.list_opt_outs(caller.app_key):
        if existing.receiver == number and existing.app_key == caller.app_key:
            return OptOutOut.of(existing)
    return OptOutOut.of(record)  # removed meanwhile by another request


@router.delete(
    "/opt-outs/{receiver}",
    status_code=204,
    response_class=Response,
    responses={
        404: {"model": ErrorOut, "description": "The receiver is not opted out of this app."},
        **_INVALID_NUMBER,
    },
    tags=["opt-outs"],
    summary="Opt a receiver back in",
)
async def remove_opt_out(receiver: str, caller: CallerDep, context: ContextDep) -> Response:
    """Remove the calling app's opt-out of ``receiver`` (an all-apps opt-out stays)."""
    number = normalise_receiver(receiver, context.settings.default_region)
    change = audit.opt_out_removed(
        audit.app_actor(caller.app_key), caller.now_ms, app_key=caller.app_key, receiver=number
    )
    if not await context.store.remove_opt_out(caller.app_key, number, audit=change):
        raise RestError(404, "opt_out_not_found", "the receiver is not opted out of this app")
    return Response(status_code=204)


@router.get("/callback", response_model=CallbackOut, tags=["callback"], summary="Read")
async def get_callback(caller: CallerDep, context: ContextDep) -> CallbackOut:
    """Where status changes of the calling app's messages are POSTed; null: nowhere."""
    app = await context.store.get_app(caller.app_key)
    return CallbackOut(url=app.callback_url if app is not None else None)


@router.put(
    "/callback",
    response_model=CallbackOut,
    responses={
        422: {
            "model": ErrorOut,
            "description": "Not an http(s) URL, or a host callbacks may not reach "
            "(loopback, private, link-local/metadata, local names).",
        }
    },
    tags=["callback"],
    summary="Set the status callback URL",
)
async def set_callback(callback: CallbackIn, caller: CallerDep, context: ContextDep) -> CallbackOut:
    """POST every status change of the calling app's messages to ``url`` from now on.

    The host must be public, unless the operator allows it (``callback_allow_hosts``).
    """
    try:
        url = check_callback_url(callback.url, context.settings.callback_allow_list)
    except InvalidCallbackURL as exc:
        raise RestError(422, "invalid_url", f"url: {exc}") from None
    change = audit.callback_url_set(
        audit.app_actor(caller.app_key), caller.now_ms, app_key=caller.app_key, url=url
    )
    app = await context.store.set_callback_url(caller.app_key, url, audit=change)
    return CallbackOut(url=app.callback_url if app is not None else url)


@router.delete(
    "/callback",
    status_code=204,
    response_class=Response,
    tags=["callback"],
    summary="Stop status callbacks",
)
async def clear_callback(caller: CallerDep, context: ContextDep) -> Response:
    """Stop POSTing status changes of the calling app's messages."""
    change = audit.callback_url_set(
        audit.app_actor(caller.app_key), caller.now_ms, app_key=caller.app_key, url=None
    )
    await context.store.set_callback_url(caller.app_key, None, audit=change)
    return Response(status_code=204)
