"""The operator web console under ``/console``: server-rendered pages, htmx, no CDN.

Who may use it: operator accounts made with ``iwork-mc operators create``.  Each
request carries a signed session cookie (:mod:`iwork_mc.console.sessions`);
every POST must carry the session's CSRF token (a form field, or the
``X-CSRF-Token`` header htmx sends), or it is refused with 403 and changes
nothing.  Sign-in failures count per operator in the store, so the lock-out
holds across processes.  Pages read and change state only through the
:class:`~iwork_mc.store.base.Store` and the same rule functions the CLI and the
REST API use (template checks, rendering, requeue).

Receivers are masked in lists unless the operator asks to see them; nothing
personal is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iwork_mc import audit, messages, operators, privacy
from iwork_mc.apps import App, new_app_key, new_secret
from iwork_mc.cli.templates import template_problems
from iwork_mc.compose import AcceptRules, Rendered, render_text
from iwork_mc.config import Settings
from iwork_mc.console import charts
from iwork_mc.console.sessions import COOKIE, Session, SessionCodec, load_secret_key
from iwork_mc.events import EventFieldError, InvalidNumber, e164, parse_event
from iwork_mc.gateway import wire
from iwork_mc.messages import REQUEUE_FROM, MessageQuery, MessageStatus
from iwork_mc.policies import OptOut
from iwork_mc.store.base import AppExists, Store, StoreError, StoreUnavailable, TemplateExists
from iwork_mc.templates import Template

__all__ = ["create_console_app"]

log = structlog.get_logger("iwork_mc.console")

PAGE = 50
#: Password checks run at once at most (argon2 takes ~64 MiB and tens of ms each): a
#: flood of sign-ins queues here instead of eating memory or the event loop.
_CONCURRENT_VERIFICATIONS = 2
#: The overview chart: the last 24 hours, hour by hour.
_BUCKET_MS = 3_600_000
_BUCKETS = 24
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
#: The event a template preview renders, around the operator's sample json_data.
_PREVIEW_EVENT = {
    "msg_key": "preview",
    "source": "console",
    "action": "preview",
    "mobile_receiver": "+8613800000000",
    "event_type": "preview",
    "sender": 0,
}

#: Paths under /console/templates/ that are pages, not template names.
_RESERVED_TEMPLATE_NAMES = frozenset({"new", "preview"})

Handler = Callable[[Request], Awaitable[Response]]


class _Refused(Exception):
    """Answer with ``response`` instead (sign-in needed, CSRF refused)."""

    def __init__(self, response: Response) -> None:
        self.response = response


class Console:
    """The console's pages, around an opened store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        channel_health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.channel_health = channel_health
        self.rules = AcceptRules.from_settings(settings)
        self.zone = ZoneInfo(settings.timezone)
        secret_key = load_secret_key(settings.console_secret_key, settings.data_dir)
        self.codec = SessionCodec(secret_key, settings.console_session_s)
        self._ref_key = hashlib.sha256(b"opt-out-ref:" + secret_key.encode()).digest()
        self._verifying = asyncio.Semaphore(_CONCURRENT_VERIFICATIONS)
        self.lock_out = operators.LockOut(
            settings.console_max_failed_sign_ins, settings.console_lockout_s * 1000
        )
        self.env = Environment(
            loader=PackageLoader("iwork_mc.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = self._when
        self.env.filters["mask"] = privacy.mask_phone
        self.env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=1)
        self.env.filters["ref"] = self.opt_out_ref

    # -- plumbing -------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _when(self, ms: int | None) -> str:
        if not ms:
            return ""
        moment = datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def page(
        self, request: Request, template: str, session: Session, status: int = 200, **context: Any
    ) -> HTMLResponse:
        body = self.env.get_template(template).render(
            operator=session.operator,
            csrf=session.csrf,
            path=request.url.path,
            timezone=self.settings.timezone,
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        self._set_cookie(request, response, session)
        return response

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.codec.dumps(session),
            max_age=self.settings.console_session_s,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def session_of(self, request: Request) -> Session:
        return self.codec.loads(request.cookies.get(COOKIE)) or Session.anonymous()

    async def signed_in(self, request: Request) -> Session:
        """The session of a signed-in operator who still exists, or a redirect to sign-in."""
        session = self.session_of(request)
        if session.operator is None or await self.store.get_operator(session.operator) is None:
            raise _Refused(RedirectResponse("/console/sign-in", status_code=303))
        return session

    async def form(self, request: Request, session: Session) -> FormData:
        """The POSTed form, once its CSRF token (field or header) matched the session's."""
        form = await request.form(max_files=0, max_fields=50)
        token = form.get("csrf_token")
        given = token if isinstance(token, str) else request.headers.get("x-csrf-token")
        if not session.csrf_ok(given):
            log.warning("console_csrf_refused", path=request.url.path)
            raise _Refused(
                PlainTextResponse(
                    "CSRF check failed: reload the page and try again.", status_code=403
                )
            )
        return form

    # -- sign-in ----------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        return self.page(request, "sign_in.html", self.session_of(request))

    async def sign_in(self, request: Request) -> Response:
        session = self.session_of(request)
        form = await self.form(request, session)
        name = _text(form, "name")
        password = _text(form, "password")
        now_ms = self.now_ms()
        operator = await self.store.get_operator(name)
        if operator is not None and operator.locked(now_ms):
            log.warning("console_sign_in_locked", operator=name)
            return self._refuse_sign_in(request, session, locked=True)
        async with self._verifying:
            # In a thread: the TOP route shares this event loop.
            verified = await asyncio.to_thread(operators.verify_password, operator, password)
        if not verified:
            if operator is not None:
                await self.store.sign_in_failed(name, now_ms=now_ms, lock_out=self.lock_out)
            log.warning("console_sign_in_failed", known=operator is not None)
            return self._refuse_sign_in(request, session, locked=False)
        assert operator is not None
        await self.store.sign_in_succeeded(name, now_ms=now_ms)
        await self.store.add_audit(audit.signed_in(audit.operator_actor(name), now_ms))
        log.info("console_signed_in", operator=name)
        response = RedirectResponse("/console/", status_code=303)
        self._set_cookie(request, response, Session.signed_in(name))
        return response

    def _refuse_sign_in(self, request: Request, session: Session, *, locked: bool) -> Response:
        # The same words for an unknown name and a wrong password.
        error = (
            "Too many failed sign-ins: this account is locked for a while."
            if locked
            else "Wrong name or password."
        )
        return self.page(request, "sign_in.html", session, status=401, error=error)

    async def sign_out(self, request: Request) -> Response:
        session = self.session_of(request)
        await self.form(request, session)
        response = RedirectResponse("/console/sign-in", status_code=303)
        self._set_cookie(request, response, Session.anonymous())
        return response

    # -- overview -----------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        session = await self.signed_in(request)
        now_ms = self.now_ms()
        since_ms = (now_ms // _BUCKET_MS - (_BUCKETS - 1)) * _BUCKET_MS
        activity = await self.store.activity(since_ms=since_ms, bucket_ms=_BUCKET_MS)
        hours = [
            datetime.fromtimestamp((since_ms + i * _BUCKET_MS) / 1000, UTC)
            .astimezone(self.zone)
            .hour
            for i in range(_BUCKETS)
        ]
        chart = charts.bar_chart(
            activity, since_ms=since_ms, bucket_ms=_BUCKET_MS, buckets=_BUCKETS, hour_of=hours
        )
        counts = await self.store.count_by_status()
        return self.page(
            request,
            "overview.html",
            session,
            chart=chart,
            counts=counts,
            accepted_24h=sum(a.accepted for a in activity),
            delivered_24h=sum(a.delivered for a in activity),
        )

    # -- messages -----------------------------------------------------------------

    async def messages_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        params = request.query_params
        filters = {
            name: params.get(name, "").strip()
            for name in ("msg_key", "receiver", "status", "channel", "from", "until")
        }
        reveal = params.get("reveal") == "1"
        error = None
        found: list[messages.Message] = []
        next_before_id = None
        try:
            query = self._query(filters, params.get("before_id", ""))
        except ValueError as exc:
            error = str(exc)
        else:
            found = await self.store.find_messages(query)
            if len(found) > PAGE:
                found = found[:PAGE]
                next_before_id = found[-1].id
        return self.page(
            request,
            "messages.html",
            session,
            status=400 if error else 200,
            filters=filters,
            statuses=list(MessageStatus),
            messages=found,
            reveal=reveal,
            error=error,
            next_before_id=next_before_id,
        )

    def _query(self, filters: dict[str, str], before_id: str) -> MessageQuery:
        """The search form as a store query; ValueError names a bad field."""
        receiver = None
        if filters["receiver"]:
            try:
                receiver = e164(filters["receiver"], self.settings.default_region)
            except InvalidNumber as exc:
                raise ValueError(f"receiver: {exc}") from None
        statuses = None
        if filters["status"]:
            try:
                statuses = frozenset({MessageStatus(filters["status"])})
            except ValueError:
                raise ValueError(f"status: {filters['status']!r} is not a status") from None
        if len(filters["msg_key"]) > 128 or len(filters["channel"]) > 64:
            raise ValueError("msg_key or channel: too long")
        return MessageQuery(
            statuses=statuses,
            receiver=receiver,
            msg_key=filters["msg_key"] or None,
            channel=filters["channel"] or None,
            accepted_from_ms=self._instant(filters["from"], "from"),
            accepted_until_ms=self._instant(filters["until"], "until"),
            before_id=_positive(before_id, "before_id"),
            limit=PAGE + 1,
        )

    def _instant(self, text: str, name: str) -> int | None:
        if not text:
            return None
        try:
            return messages.parse_instant(text, naive_zone=self.zone)
        except ValueError:
            raise ValueError(f"{name}: expected a date and time, e.g. 2026-12-01T08:00") from None

    async def message_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        return await self._message(request, session, request.path_params["message_id"])

    async def _message(
        self, request: Request, session: Session, message_id: int, notice: str | None = None
    ) -> Response:
        message = await self.store.get_message_by_id(message_id)
        if message is None:
            return self.page(request, "not_found.html", session, status=404, what="message")
        timeline = await self.store.timeline(message.id)
        segments = await self.store.segments(message.id)
        return self.page(
            request,
            "message.html",
            session,
            message=message,
            timeline=timeline,
            segments=segments,
            retryable=message.status in REQUEUE_FROM,
            notice=notice,
        )

    async def retry(self, request: Request) -> Response:
        session = await self.signed_in(request)
        await self.form(request, session)
        message_id: int = request.path_params["message_id"]
        message = await self.store.get_message_by_id(message_id)
        if message is None:
            return self.page(request, "not_found.html", session, status=404, what="message")
        now_ms = self.now_ms()
        expires_at_ms = now_ms + self.settings.message_validity_s * 1000
        requeued = await self.store.requeue(
            message_id,
            now_ms=now_ms,
            expires_at_ms=expires_at_ms,
            by=f"console:{session.operator}",
            audit=audit.message_requeued(
                _actor(session),
                now_ms,
                app_key=message.app_key,
                msg_key=message.msg_key,
                expires_at_ms=expires_at_ms,
            ),
        )
        log.info("console_retry", operator=session.operator, message_id=message_id, ok=requeued)
        notice = (
            "Queued again."
            if requeued
            else f"Not queued: only {', '.join(sorted(REQUEUE_FROM))} messages can be retried."
        )
        return await self._message(request, session, message_id, notice)

    # -- apps ---------------------------------------------------------------------

    async def apps_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        return await self._apps(request, session)

    async def _apps(
        self,
        request: Request,
        session: Session,
        *,
        shown_secret: App | None = None,
        error: str | None = None,
    ) -> Response:
        return self.page(
            request,
            "apps.html",
            session,
            status=400 if error else 200,
            apps=await self.store.list_apps(),
            shown_secret=shown_secret,
            error=error,
        )

    async def create_app(self, request: Request) -> Response:
        session = await self.signed_in(request)
        name = _text(await self.form(request, session), "name").strip()
        if not name or len(name) > 128:
            return await self._apps(request, session, error="name: 1 to 128 characters")
        for _ in range(10):  # app keys are random: retry the rare collision
            app = App(
                app_key=new_app_key(),
                name=name,
                secret=new_secret(),
                enabled=True,
                created_at_ms=self.now_ms(),
            )
            record = audit.app_created(
                _actor(session), app.created_at_ms, app_key=app.app_key, name=name
            )
            try:
                await self.store.insert_app(app, audit=record)
            except AppExists:
                continue
            log.info("console_app_created", operator=session.operator, app_key=app.app_key)
            return await self._apps(request, session, shown_secret=app)
        return await self._apps(request, session, error="no free app_key found; try again")

    async def app_action(self, request: Request) -> Response:
        session = await self.signed_in(request)
        await self.form(request, session)
        app_key: str = request.path_params["app_key"]
        action: str = request.path_params["action"]
        shown = None
        now_ms = self.now_ms()
        if action == "rotate":
            valid_until = now_ms + self.settings.secret_grace_s * 1000
            record = audit.secret_rotated(
                _actor(session), now_ms, app_key=app_key, previous_valid_until_ms=valid_until
            )
            shown = await self.store.rotate_secret(app_key, new_secret(), valid_until, audit=record)
            changed = shown
        elif action in ("enable", "disable"):
            enabled = action == "enable"
            record = audit.app_enabled(_actor(session), now_ms, app_key=app_key, enabled=enabled)
            changed = await self.store.set_app_enabled(app_key, enabled, audit=record)
        else:
            return self.page(request, "not_found.html", session, status=404, what="action")
        if changed is None:
            return self.page(request, "not_found.html", session, status=404, what="app")
        log.info("console_app_changed", operator=session.operator, app_key=app_key, action=action)
        return await self._apps(request, session, shown_secret=shown)

    # -- templates ----------------------------------------------------------------

    async def templates_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        templates = await self.store.list_templates()
        return self.page(request, "templates.html", session, templates=templates)

    async def template_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        name: str = request.path_params["name"]
        template = await self.store.get_template(name)
        if template is None:
            if name != "new":
                return self.page(request, "not_found.html", session, status=404, what="template")
            fields: dict[str, Any] = dict.fromkeys(
                ("name", "app_key", "source", "action", "event_type", "body", "limits"), ""
            )
            fields["urgent"] = False
        else:
            fields = _template_fields(template)
        return self._template_form(request, session, fields, is_new=template is None)

    def _template_form(
        self,
        request: Request,
        session: Session,
        fields: dict[str, Any],
        *,
        is_new: bool,
        problems: list[str] | None = None,
        notice: str | None = None,
    ) -> Response:
        return self.page(
            request,
            "template.html",
            session,
            status=422 if problems else 200,
            fields=fields,
            is_new=is_new,
            problems=problems or [],
            notice=notice,
            sample=fields.get("sample", '{"name": "张三"}'),
        )

    async def save_template(self, request: Request) -> Response:
        session = await self.signed_in(request)
        form = await self.form(request, session)
        name: str = request.path_params["name"]
        is_new = name == "new"
        fields: dict[str, Any] = {
            key: _text(form, key)
            for key in ("name", "app_key", "source", "action", "event_type", "body", "limits")
        }
        fields["urgent"] = form.get("urgent") == "on"
        fields["sample"] = _text(form, "sample")
        if not is_new:
            fields["name"] = name
        checked = {k: v for k, v in fields.items() if k in ("name", "body", "limits")}
        problems = template_problems(
            {**checked, **{k: fields[k] for k in ("source", "action", "event_type")}},
            renderer=self.rules.renderer,
        )
        if is_new and fields["name"] in _RESERVED_TEMPLATE_NAMES:
            problems.append(f"name {fields['name']!r}: taken by the console's own pages")
        if fields["app_key"] and await self.store.get_app(fields["app_key"]) is None:
            problems.append(f"app_key: no app has app_key {fields['app_key']!r}")
        if problems:
            return self._template_form(request, session, fields, is_new=is_new, problems=problems)
        now_ms = self.now_ms()
        existing = None if is_new else await self.store.get_template(name)
        template = Template(
            name=fields["name"],
            body=fields["body"],
            app_key=fields["app_key"],
            source=fields["source"],
            action=fields["action"],
            event_type=fields["event_type"],
            urgent=fields["urgent"],
            limits=fields["limits"],
            created_at_ms=existing.created_at_ms if existing else now_ms,
            updated_at_ms=now_ms,
        )
        kind = audit.AuditAction.TEMPLATE_CREATE if is_new else audit.AuditAction.TEMPLATE_UPDATE
        record = audit.template_changed(_actor(session), now_ms, kind, template)
        try:
            if is_new:
                await self.store.insert_template(template, audit=record)
            elif not await self.store.update_template(template, audit=record):
                return self.page(request, "not_found.html", session, status=404, what="template")
        except TemplateExists:
            problems = ["a template with this name, or the same app, source, action and event_type"]
            return self._template_form(request, session, fields, is_new=is_new, problems=problems)
        log.info("console_template_saved", operator=session.operator, template=template.name)
        if is_new:
            return RedirectResponse(f"/console/templates/{template.name}", status_code=303)
        return self._template_form(request, session, fields, is_new=False, notice="Saved.")

    async def preview(self, request: Request) -> Response:
        """The htmx fragment: the form's body rendered against its sample json_data."""
        session = await self.signed_in(request)
        form = await self.form(request, session)
        body = _text(form, "body")
        problems = template_problems({"body": body}, renderer=self.rules.renderer)
        result: Rendered | str
        if problems:
            result = problems[0]
        else:
            raw = json.dumps(
                {
                    **_PREVIEW_EVENT,
                    "event_time_millis": self.now_ms(),
                    "json_data": _text(form, "sample") or "{}",
                    **{k: _text(form, k) or _PREVIEW_EVENT[k] for k in ("source", "action")},
                    "event_type": _text(form, "event_type") or _PREVIEW_EVENT["event_type"],
                }
            )
            try:
                event = parse_event(raw, self.settings.event_limits)
            except EventFieldError as exc:
                result = f"sample json_data: {exc}" if exc.field == "json_data" else str(exc)
            else:
                rendered = render_text(self.rules, body, event)
                result = rendered.reason if isinstance(rendered, messages.Rejection) else rendered
        return self.page(request, "_preview.html", session, result=result)

    # -- opt-outs -----------------------------------------------------------------

    async def opt_outs_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        return await self._opt_outs(request, session)

    async def _opt_outs(
        self, request: Request, session: Session, *, error: str | None = None
    ) -> Response:
        return self.page(
            request,
            "opt_outs.html",
            session,
            status=400 if error else 200,
            opt_outs=await self.store.list_opt_outs(),
            reveal=request.query_params.get("reveal") == "1",
            error=error,
        )

    async def add_opt_out(self, request: Request) -> Response:
        session = await self.signed_in(request)
        form = await self.form(request, session)
        app_key = _text(form, "app_key").strip() or "*"
        try:
            receiver = e164(_text(form, "receiver"), self.settings.default_region)
        except InvalidNumber as exc:
            return await self._opt_outs(request, session, error=f"receiver: {exc}")
        if app_key != "*" and await self.store.get_app(app_key) is None:
            return await self._opt_outs(request, session, error=f"no app has app_key {app_key!r}")
        reason = _text(form, "reason")[:500]
        opt_out = OptOut(
            app_key=app_key, receiver=receiver, reason=reason, created_at_ms=self.now_ms()
        )
        record = audit.opt_out_added(
            _actor(session), opt_out.created_at_ms, app_key=app_key, receiver=receiver
        )
        await self.store.add_opt_out(opt_out, audit=record)
        log.info("console_opt_out_changed", operator=session.operator, action="add")
        return RedirectResponse("/console/opt-outs", status_code=303)

    def opt_out_ref(self, opt_out: OptOut) -> str:
        """Names an opt-out in a form without putting the (masked) number in the page."""
        text = f"{opt_out.app_key}\n{opt_out.receiver}".encode()
        return hmac.new(self._ref_key, text, "sha256").hexdigest()

    async def remove_opt_out(self, request: Request) -> Response:
        session = await self.signed_in(request)
        ref = _text(await self.form(request, session), "ref")
        for opt_out in await self.store.list_opt_outs():
            if hmac.compare_digest(self.opt_out_ref(opt_out), ref):
                record = audit.opt_out_removed(
                    _actor(session), self.now_ms(), app_key=opt_out.app_key,
                    receiver=opt_out.receiver,
                )  # fmt: skip
                await self.store.remove_opt_out(opt_out.app_key, opt_out.receiver, audit=record)
                log.info("console_opt_out_changed", operator=session.operator, action="remove")
                break
        return RedirectResponse("/console/opt-outs", status_code=303)

    # -- audit trail --------------------------------------------------------------

    async def audit_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        params = request.query_params
        actor = params.get("actor", "").strip()[:200]
        action_text = params.get("action", "")
        error = None
        try:
            action = audit.AuditAction(action_text) if action_text else None
            before_id = _positive(params.get("before_id", ""), "before_id")
        except ValueError as exc:
            action, before_id = None, None
            error = f"action: {action_text!r} is not an action" if action_text else str(exc)
        records = []
        if error is None:
            query = audit.AuditQuery(
                actor=actor or None, action=action, before_id=before_id, limit=PAGE + 1
            )
            records = await self.store.list_audit(query)
        next_before_id = records[PAGE - 1].id if len(records) > PAGE else None
        return self.page(
            request,
            "audit.html",
            session,
            status=400 if error else 200,
            records=records[:PAGE],
            actions=list(audit.AuditAction),
            actor=actor,
            action=action_text,
            error=error,
            next_before_id=next_before_id,
        )

    # -- channels -----------------------------------------------------------------

    async def channels_page(self, request: Request) -> Response:
        session = await self.signed_in(request)
        specs = self.settings.channel_specs
        unmatched = {spec.name: await self.store.unmatched_receipts(spec.name) for spec in specs}
        health = self.channel_health() if self.channel_health is not None else None
        if health is not None and len(specs) == 1:
            health = {specs[0].name: health}
        return self.page(
            request,
            "channels.html",
            session,
            specs=specs,
            routes=self.settings.effective_routes,
            unmatched=unmatched,
            health=health,
        )


def _actor(session: Session) -> str:
    """The audit trail's name for the signed-in operator (``operator:<name>``)."""
    return audit.operator_actor(session.operator or "unknown")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _positive(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise ValueError(f"{name}: expected a positive whole number")
    return int(text)


def _template_fields(template: Template) -> dict[str, Any]:
    return {
        "name": template.name,
        "app_key": template.app_key,
        "source": template.source,
        "action": template.action,
        "event_type": template.event_type,
        "body": template.body,
        "limits": template.limits,
        "urgent": template.urgent,
    }


def _guarded(console: Console, handler: Handler) -> Handler:
    """Turn refusals into their responses and a store outage into a 503 page."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return refused.response
        except StoreError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else None
            log.warning("console_store_error", error=type(exc).__name__, cause=cause)
            status = 503 if isinstance(exc, StoreUnavailable) else 500
            return PlainTextResponse(
                "The message store is unavailable; try again shortly.", status_code=status
            )

    return guarded


def create_console_app(
    settings: Settings,
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    channel_health: Callable[[], dict[str, Any]] | None = None,
) -> ASGIApp:
    """The console as an ASGI app to mount at ``/console`` (the caller owns the store)."""
    console = Console(settings, store, clock=clock, channel_health=channel_health)

    def route(path: str, handler: Handler, method: str = "GET") -> Route:
        return Route(path, _guarded(console, handler), methods=[method])

    app = Starlette(
        routes=[
            route("/", console.overview),
            route("/sign-in", console.sign_in_page),
            route("/sign-in", console.sign_in, "POST"),
            route("/sign-out", console.sign_out, "POST"),
            route("/messages", console.messages_page),
            route("/messages/{message_id:int}", console.message_page),
            route("/messages/{message_id:int}/retry", console.retry, "POST"),
            route("/apps", console.apps_page),
            route("/apps", console.create_app, "POST"),
            route("/apps/{app_key}/{action}", console.app_action, "POST"),
            route("/templates", console.templates_page),
            route("/templates/preview", console.preview, "POST"),
            route("/templates/{name}", console.template_page),
            route("/templates/{name}", console.save_template, "POST"),
            route("/opt-outs", console.opt_outs_page),
            route("/opt-outs/add", console.add_opt_out, "POST"),
            route("/opt-outs/remove", console.remove_opt_out, "POST"),
            route("/channels", console.channels_page),
            route("/audit", console.audit_page),
            Mount("/static", app=StaticFiles(packages=[("iwork_mc.console", "static")])),
        ]
    )
    return _hardened(app, settings.max_body_bytes)


def _hardened(app: ASGIApp, limit: int) -> ASGIApp:
    """Bound the body (before any parsing) and add the security headers to every answer."""
    headers = [
        (b"content-security-policy", _CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]

    async def hardened(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = headers if is_static else [*headers, (b"cache-control", b"no-store")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            body = await wire.read_request_body(scope, receive, limit)
        except wire.BodyTooLarge:
            response = PlainTextResponse(f"The form exceeds {limit} bytes.", status_code=413)
            await response(scope, receive, send_with_headers)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send_with_headers)

    return hardened
