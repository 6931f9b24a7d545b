"""``/v1/templates``: the calling app's templates, the shared ones (read-only) and dry runs."""

from __future__ import annotations

import asyncio
import json
import re

from fastapi import APIRouter, Response

from iwork_mc import audit
from iwork_mc.compose import render_text
from iwork_mc.events import EventFieldError, parse_event
from iwork_mc.gateway.rendering import render_off_loop_if_slow
from iwork_mc.gateway.rest_auth import RestError
from iwork_mc.gateway.rest_common import Caller, CallerDep, ContextDep, RestContext
from iwork_mc.gateway.rest_models import (
    ErrorOut,
    RenderIn,
    RenderOut,
    Responses,
    TemplateIn,
    TemplateOut,
    TemplateUpdate,
)
from iwork_mc.messages import Rejection
from iwork_mc.policies import PolicyError, parse_limits
from iwork_mc.store.base import TemplateExists
from iwork_mc.templates import (
    Template,
    TemplateError,
    TemplateTooComplex,
    select_template,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/templates", tags=["templates"])

#: The template name a dry run reports for a ``body`` given in the request.
GIVEN_BODY = "(body)"
_LINE = re.compile(r"^line (\d+):")

_INVALID: Responses = {
    422: {
        "model": ErrorOut,
        "description": "A syntax error (with `line`), a template too complex, or bad limits.",
    }
}
_NOT_FOUND: Responses = {
    404: {"model": ErrorOut, "description": "No template of this app has that name."}
}
_READ_ONLY: Responses = {403: {"model": ErrorOut, "description": "A shared template: read-only."}}
_EXISTS: Responses = {409: {"model": ErrorOut, "description": "The name or the selector is taken."}}


def _visible(template: Template | None, caller: Caller) -> Template | None:
    if template is None or template.app_key not in ("", caller.app_key):
        return None
    return template


async def _compile(context: RestContext, body: str) -> None:
    # Compiling a body of up to 8192 characters can take a few hundred ms: off the loop.
    try:
        await asyncio.to_thread(context.rules.renderer.compile, body)
    except TemplateError as exc:
        match = _LINE.match(str(exc))
        raise RestError(
            422,
            "template_too_complex"
            if isinstance(exc, TemplateTooComplex)
            else "template_syntax_error",
            str(exc),
            line=int(match.group(1)) if match else None,
        ) from None


async def _validate(context: RestContext, update: TemplateUpdate) -> None:
    await _compile(context, update.body)
    try:
        parse_limits(update.limits, "template")
    except PolicyError as exc:
        raise RestError(422, "invalid_limits", str(exc)) from None


def _not_found() -> RestError:
    return RestError(404, "template_not_found", "this app has no template with that name")


def _exists() -> RestError:
    return RestError(
        409,
        "template_exists",
        "a template with this name, or with the same source, action and event_type, exists",
    )


async def _own(context: RestContext, caller: Caller, name: str) -> Template:
    """The calling app's template ``name``, which it may change: 404 if unseen, 403 if shared."""
    existing = _visible(await context.store.get_template(name), caller)
    if existing is None:
        raise _not_found()
    if existing.app_key == "":
        raise RestError(403, "read_only", "a shared template cannot be changed through the API")
    return existing


def _build(name: str, update: TemplateUpdate, caller: Caller, created_at_ms: int) -> Template:
    return Template(
        name=name,
        body=update.body,
        app_key=caller.app_key,
        source=update.source,
        action=update.action,
        event_type=update.event_type,
        urgent=update.urgent,
        limits=update.limits,
        created_at_ms=created_at_ms,
        updated_at_ms=caller.now_ms,
    )


@router.get("", response_model=list[TemplateOut], summary="List templates")
async def list_templates(caller: CallerDep, context: ContextDep) -> list[TemplateOut]:
    """The calling app's templates and the shared ones, by name."""
    templates = await context.store.list_templates()
    return [TemplateOut.of(t) for t in templates if _visible(t, caller) is not None]


@router.post(
    "",
    response_model=TemplateOut,
    status_code=201,
    responses={**_INVALID, **_EXISTS},
    summary="Create a template",
)
async def create_template(
    template: TemplateIn, caller: CallerDep, context: ContextDep
) -> TemplateOut:
    """A new template of the calling app; its body must compile and its limits parse."""
    await _validate(context, template)
    stored = _build(template.name, template, caller, caller.now_ms)
    try:
        change = audit.template_changed(
            audit.app_actor(caller.app_key),
            caller.now_ms,
            audit.AuditAction.TEMPLATE_CREATE,
            stored,
        )
        await context.store.insert_template(stored, audit=change)
    except TemplateExists:
        raise _exists() from None
    return TemplateOut.of(stored)


# Declared before /{name} so that "render" is never taken for a template's name.
@router.post(
    "/render",
    response_model=RenderOut,
    responses={
        404: {"model": ErrorOut, "description": "`name` names no template of this app."},
        422: {"model": ErrorOut, "description": "An invalid event or a syntax error in `body`."},
    },
    summary="Render an event without sending it",
)
async def render(request: RenderIn, caller: CallerDep, context: ContextDep) -> RenderOut:
    """Which template an event would use, the text it would read and what it would cost.

    With ``body``, that text is rendered; with ``name``, that template; with
    neither, the template the gateway would choose for the event. A template
    that cannot render the event is answered with ``ok: false`` and ``error``.
    """
    raw = request.event if isinstance(request.event, str) else json.dumps(request.event)
    try:
        event = parse_event(raw, context.settings.event_limits)
    except EventFieldError as exc:
        raise RestError(422, "invalid_event", str(exc), field=exc.field) from None
    if request.body is not None:
        await _compile(context, request.body)
        name, body = GIVEN_BODY, request.body
    elif request.name is not None:
        chosen = _visible(await context.store.get_template(request.name), caller)
        if chosen is None:
            raise _not_found()
        name, body = chosen.name, chosen.body
    else:
        templates = await context.store.list_templates()
        selected = select_template(templates, caller.app_key, event)
        default = ("", context.settings.default_template)
        name, body = default if selected is None else (selected.name, selected.body)
    rendered = await render_off_loop_if_slow(
        lambda trial_seconds: render_text(context.rules, body, event, trial_seconds=trial_seconds)
    )
    if isinstance(rendered, Rejection):
        return RenderOut(
            template=name, ok=False, text=None, encoding=None, units=None, segments=None,
            error=rendered.reason,
        )  # fmt: skip
    problem = rendered.problem
    return RenderOut(
        template=name, ok=problem is None, text=rendered.text,
        encoding=rendered.encoding.alphabet, units=rendered.encoding.units,
        segments=rendered.encoding.segments, error=None if problem is None else problem.reason,
    )  # fmt: skip


@router.get("/{name}", response_model=TemplateOut, responses=_NOT_FOUND, summary="Read a template")
async def get_template(name: str, caller: CallerDep, context: ContextDep) -> TemplateOut:
    """One of the calling app's templates, or a shared one."""
    template = _visible(await context.store.get_template(name), caller)
    if template is None:
        raise _not_found()
    return TemplateOut.of(template)


@router.put(
    "/{name}",
    response_model=TemplateOut,
    responses={**_NOT_FOUND, **_READ_ONLY, **_INVALID, **_EXISTS},
    summary="Replace a template",
)
async def replace_template(
    name: str, template: TemplateUpdate, caller: CallerDep, context: ContextDep
) -> TemplateOut:
    """Replace the content of one of the calling app's templates (its name stays)."""
    existing = await _own(context, caller, name)
    await _validate(context, template)
    stored = _build(name, template, caller, existing.created_at_ms)
    try:
        change = audit.template_changed(
            audit.app_actor(caller.app_key),
            caller.now_ms,
            audit.AuditAction.TEMPLATE_UPDATE,
            stored,
        )
        updated = await context.store.update_template(stored, audit=change)
    except TemplateExists:
        raise _exists() from None
    if not updated:
        raise _not_found()
    return TemplateOut.of(stored)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={**_NOT_FOUND, **_READ_ONLY},
    summary="Delete a template",
)
async def delete_template(name: str, caller: CallerDep, context: ContextDep) -> Response:
    """Delete one of the calling app's templates."""
    await _own(context, caller, name)
    change = audit.template_deleted(audit.app_actor(caller.app_key), caller.now_ms, name=name)
    if not await context.store.delete_template(name, audit=change):
        raise _not_found()
    return Response(status_code=204)
