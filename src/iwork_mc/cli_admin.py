"""``iwork-mc templates|opt-outs|messages``: the operator's commands on the store.

Each command opens the store named by the settings, refuses a database with
pending migrations (as ``run`` does), does its work and prints a rich table or,
with ``--json``, JSON.  Exit status: 0 done, 1 not found or not possible now,
2 bad input.  Receiver numbers are shown to the operator but never logged.

The shared plumbing (settings, the event loop, error mapping) is
:mod:`iwork_mc.cli`'s; it is imported when a command runs, because ``cli``
imports this module to register the groups.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import phonenumbers
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from iwork_mc.callbacks import InvalidCallbackURL, check_callback_url
from iwork_mc.config import Settings
from iwork_mc.events import EventFieldError, EventLimits, parse_event
from iwork_mc.messages import REQUEUE_FROM, Message, MessageQuery, MessageStatus
from iwork_mc.policies import OptOut, PolicyError, parse_limits
from iwork_mc.privacy import mask_phone
from iwork_mc.smpp._text import SplitMethod, sms_encoding
from iwork_mc.store.base import Store, TemplateExists
from iwork_mc.templates import Renderer, RenderError, Template, TemplateError, select_template

__all__ = [
    "callback_url_problem",
    "messages_cli",
    "opt_outs_cli",
    "templates_cli",
    "with_store",
]

T = TypeVar("T")

templates_cli = typer.Typer(help="Manage message templates (Jinja2 texts chosen per event).")
opt_outs_cli = typer.Typer(help="Manage receivers who get no messages.")
messages_cli = typer.Typer(help="Find, count and retry stored messages.")

out = Console(soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

#: The same rule as the REST API's (gateway/rest_models.py).
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_BODY = 8192
MAX_LIMITS = 200
_LIMITS = EventLimits()
_FIELD_LIMITS = {
    "source": _LIMITS.source,
    "action": _LIMITS.action,
    "event_type": _LIMITS.event_type,
}
DEFAULT_VALIDITY_S = 86_400


# -- plumbing -------------------------------------------------------------------


def _settings(ctx: typer.Context) -> Settings:
    from iwork_mc import cli

    return cli._settings(ctx)


def _fail(message: str, code: int = 1) -> typer.Exit:
    from iwork_mc import cli

    return cli._fail(message, code)


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    from iwork_mc import cli

    return cli._run(with_store(settings, work))


async def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, refuse one with pending migrations, run ``work``, close it."""
    from iwork_mc import cli

    store = cli._create_store(settings)
    await store.open()
    try:
        pending = await store.pending_migrations()
        if pending:
            raise _fail(
                f"the database needs migration(s) {', '.join(pending)}: run `iwork-mc db upgrade`"
            )
        return await work(store)
    finally:
        await store.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _local(ms: int | None) -> str:
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _print_fields(view: dict[str, Any], width: int = 16) -> None:
    for key, value in view.items():
        out.print(f"{key:{width}} {value}", highlight=False)


async def _require_app(store: Store, app_key: str | None) -> None:
    if app_key and await store.get_app(app_key) is None:
        raise _fail(f"no app with app_key {app_key}")


def callback_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a status callback URL, or ``None`` if it can."""
    if len(url) > 2048:
        return "must be at most 2048 characters"
    try:
        check_callback_url(url)
    except InvalidCallbackURL as exc:
        return str(exc)
    return None


def e164(text: str, default_region: str) -> str:
    """``text`` as an E.164 number (``+8613888888888``); exits 2 if it is not one."""
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise _fail(f"{text!r} is not a phone number", 2) from None
    if not phonenumbers.is_valid_number(number):
        raise _fail(f"{text!r} is not a valid phone number", 2)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def instant_ms(text: str, option: str) -> int:
    """Epoch milliseconds, or an ISO 8601 date/time (local time unless it has an offset)."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise _fail(
            f"{option} {text!r}: give epoch milliseconds or an ISO 8601 time "
            "(2026-05-01, 2026-05-01T08:00, 2026-05-01T08:00+08:00)",
            2,
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


# -- templates ----------------------------------------------------------------

AppOption = Annotated[
    str | None, typer.Option("--app", help="Only for this app_key [default: every app].")
]
SourceOption = Annotated[str | None, typer.Option(help="Match this source [default: any].")]
ActionOption = Annotated[str | None, typer.Option(help="Match this action [default: any].")]
EventTypeOption = Annotated[str | None, typer.Option(help="Match this event_type [default: any].")]
UrgentOption = Annotated[
    bool | None, typer.Option("--urgent/--not-urgent", help="Send even in quiet hours.")
]
LimitsOption = Annotated[
    str | None, typer.Option(help='Per-receiver caps for this template, e.g. "hour=1,day=3".')
]
BodyOption = Annotated[str | None, typer.Option(help="The Jinja2 text.")]
BodyFileOption = Annotated[
    Path | None, typer.Option(help="Read the Jinja2 text from this file (UTF-8).")
]


def _template_view(template: Template) -> dict[str, Any]:
    return {
        "name": template.name,
        "app_key": template.app_key,
        "source": template.source,
        "action": template.action,
        "event_type": template.event_type,
        "urgent": template.urgent,
        "limits": template.limits,
        "created_at_ms": template.created_at_ms,
        "updated_at_ms": template.updated_at_ms,
        "body": template.body,
    }


def _print_template(template: Template, json_output: bool) -> None:
    view = _template_view(template)
    if json_output:
        out.print_json(data=view)
        return
    body = view.pop("body")
    _print_fields({key: ("*" if value == "" else value) for key, value in view.items()})
    out.print("body", highlight=False)
    out.print(body, highlight=False, markup=False)


def template_problems(fields: dict[str, Any], *, renderer: Renderer | None = None) -> list[str]:
    """What is wrong with these template fields (each a sentence), checked as create does."""
    problems = []
    name = fields.get("name")
    if name is not None and not TEMPLATE_NAME.match(name):
        problems.append(
            f"name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    body = fields.get("body")
    if body is not None:
        if not body.strip():
            problems.append("body: must not be empty")
        elif len(body) > MAX_BODY:
            problems.append(f"body: must be at most {MAX_BODY} characters")
        else:
            try:
                (renderer or Renderer()).compile(body)
            except TemplateError as exc:
                problems.append(f"body: {exc}")
    for field, limit in _FIELD_LIMITS.items():
        value = fields.get(field)
        if value is not None and len(value) > limit:
            problems.append(f"{field}: must be at most {limit} characters")
    limits = fields.get("limits")
    if limits is not None:
        try:
            if len(limits) > MAX_LIMITS:
                raise PolicyError(f"must be at most {MAX_LIMITS} characters")
            parse_limits(limits, "template")
        except PolicyError as exc:
            problems.append(f"limits: {exc}")
    return problems


def _read_body(body: str | None, body_file: Path | None) -> str | None:
    if body is not None and body_file is not None:
        raise _fail("give --body or --body-file, not both", 2)
    if body_file is None:
        return body
    try:
        return body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"--body-file {body_file}: {exc}", 2) from None


def _given(**options: Any) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _check(fields: dict[str, Any]) -> None:
    problems = template_problems(fields)
    if problems:
        raise _fail("; ".join(problems), 2)


async def _explain_conflict(store: Store, template: Template) -> typer.Exit:
    key = (template.app_key, template.source, template.action, template.event_type)
    for other in await store.list_templates():
        if other.name != template.name and key == (
            other.app_key, other.source, other.action, other.event_type
        ):  # fmt: skip
            return _fail(
                f"template {other.name} already has app={_any(template.app_key)} "
                f"source={_any(template.source)} action={_any(template.action)} "
                f"event_type={_any(template.event_type)}: an event could not choose between them"
            )
    return _fail(f"a template named {template.name} already exists")


def _any(value: str) -> str:
    return value or "*"


@templates_cli.command("create")
def templates_create(
    ctx: typer.Context,
    name: str,
    body: BodyOption = None,
    body_file: BodyFileOption = None,
    app_key: AppOption = None,
    source: SourceOption = None,
    action: ActionOption = None,
    event_type: EventTypeOption = None,
    urgent: UrgentOption = None,
    limits: LimitsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Create a template; its body is checked before it is stored."""
    text = _read_body(body, body_file)
    if text is None:
        raise _fail("give --body or --body-file", 2)
    fields = _given(name=name, body=text, source=source, action=action, event_type=event_type,
                    limits=limits)  # fmt: skip
    _check(fields)
    settings = _settings(ctx)
    now = _now_ms()
    template = Template(
        **fields, app_key=app_key or "", urgent=bool(urgent), created_at_ms=now, updated_at_ms=now
    )

    async def work(store: Store) -> Template:
        await _require_app(store, template.app_key)
        try:
            await store.insert_template(template)
        except TemplateExists:
            if await store.get_template(name) is not None:
                raise _fail(f"a template named {name} already exists") from None
            raise await _explain_conflict(store, template) from None
        return template

    _print_template(_run(settings, work), json_output)


@templates_cli.command("list")
def templates_list(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List every template, by name (* matches anything)."""
    settings = _settings(ctx)
    templates = _run(settings, lambda store: store.list_templates())
    if json_output:
        out.print_json(data=[_template_view(t) for t in templates])
        return
    # The bodies are left to `templates show`: they would not fit beside the keys.
    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("app", "source", "action", "event_type", "urgent", "limits"):
        table.add_column(column)
    for t in templates:
        table.add_row(
            t.name,
            _any(t.app_key),
            _any(t.source),
            _any(t.action),
            _any(t.event_type),
            "yes" if t.urgent else "no",
            t.limits,
        )
    out.print(table)


def _existing_template(found: Template | None, name: str) -> Template:
    if found is None:
        raise _fail(f"no template named {name}")
    return found


@templates_cli.command("show")
def templates_show(ctx: typer.Context, name: str, json_output: JsonFlag = False) -> None:
    """Show one template with its body."""
    settings = _settings(ctx)
    found = _run(settings, lambda store: store.get_template(name))
    _print_template(_existing_template(found, name), json_output)


@templates_cli.command("update")
def templates_update(
    ctx: typer.Context,
    name: str,
    body: BodyOption = None,
    body_file: BodyFileOption = None,
    app_key: AppOption = None,
    source: SourceOption = None,
    action: ActionOption = None,
    event_type: EventTypeOption = None,
    urgent: UrgentOption = None,
    limits: LimitsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Change only the given fields of a template (--source "" matches any source)."""
    text = _read_body(body, body_file)
    changes = _given(body=text, app_key=app_key, source=source, action=action,
                     event_type=event_type, urgent=urgent, limits=limits)  # fmt: skip
    if not changes:
        raise _fail("nothing to change: give at least one option", 2)
    _check(changes)
    settings = _settings(ctx)

    async def work(store: Store) -> Template:
        current = _existing_template(await store.get_template(name), name)
        await _require_app(store, app_key)
        updated = dataclasses.replace(current, **changes, updated_at_ms=_now_ms())
        try:
            found = await store.update_template(updated)
        except TemplateExists:
            raise await _explain_conflict(store, updated) from None
        _existing_template(updated if found else None, name)
        return updated

    _print_template(_run(settings, work), json_output)


@templates_cli.command("delete")
def templates_delete(ctx: typer.Context, name: str, json_output: JsonFlag = False) -> None:
    """Delete a template; events it matched use the next most specific one."""
    settings = _settings(ctx)
    if not _run(settings, lambda store: store.delete_template(name)):
        raise _fail(f"no template named {name}")
    if json_output:
        out.print_json(data={"deleted": name})
    else:
        out.print(f"deleted template {name}", highlight=False)


def _event_text(event: str | None, event_file: Path | None) -> str:
    if (event is None) == (event_file is None):
        raise _fail("give --event or --event-file", 2)
    if event_file is not None:
        try:
            event = event_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"--event-file {event_file}: {exc}", 2) from None
    assert event is not None
    try:
        data = json.loads(event)
    except ValueError:
        raise _fail("the event is not valid JSON", 2) from None
    if not isinstance(data, dict):
        raise _fail("the event must be a JSON object", 2)
    # A dry run needs only what templates read: the rest gets harmless defaults.
    data.setdefault("msg_key", "dry-run")
    data.setdefault("event_time_millis", _now_ms())
    data.setdefault("sender", 0)
    data.setdefault("event_type", "mobile_receiver")
    if isinstance(data.get("json_data"), dict):
        data["json_data"] = json.dumps(data["json_data"], ensure_ascii=False)
    return json.dumps(data, ensure_ascii=False)


@templates_cli.command("render")
def templates_render(
    ctx: typer.Context,
    event: Annotated[
        str | None, typer.Option(help="The event as JSON (json_data may be an object).")
    ] = None,
    event_file: Annotated[Path | None, typer.Option(help="Read the event from a file.")] = None,
    app_key: Annotated[
        str | None, typer.Option("--app", help="The calling app (chooses app templates).")
    ] = None,
    template_name: Annotated[
        str | None, typer.Option("--template", help="Render this stored template.")
    ] = None,
    body: Annotated[str | None, typer.Option(help="Render this text instead.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Dry run: the template an event would use, its text, encoding and SMS count."""
    if template_name is not None and body is not None:
        raise _fail("give --template or --body, not both", 2)
    raw = _event_text(event, event_file)
    settings = _settings(ctx)
    try:
        parsed = parse_event(raw, settings.event_limits)
    except EventFieldError as exc:
        raise _fail(f"event: {exc}", 2) from None
    renderer = Renderer(settings.timezone)

    async def choose(store: Store) -> tuple[str, str]:
        if template_name is not None:
            found = _existing_template(await store.get_template(template_name), template_name)
            return found.name, found.body
        chosen = select_template(await store.list_templates(), app_key or "", parsed)
        return ("", settings.default_template) if chosen is None else (chosen.name, chosen.body)

    if body is not None:
        _check({"body": body})
        name, text_source = "(body)", body
    else:
        name, text_source = _run(settings, choose)
    view: dict[str, Any] = {"template": name, "ok": True, "text": None, "encoding": None,
                            "units": None, "segments": None, "error": None}  # fmt: skip
    try:
        text = renderer.render(text_source, parsed)
    except RenderError as exc:
        view.update(ok=False, error=str(exc))
    else:
        encoding = sms_encoding(text, method=cast(SplitMethod, settings.smpp_long_messages))
        view.update(text=text, encoding=encoding.alphabet, units=encoding.units,
                    segments=encoding.segments)  # fmt: skip
    if json_output:
        out.print_json(data=view)
    else:
        out.print(f"template   {name or '(default)'}", highlight=False)
        if view["ok"]:
            out.print(f"encoding   {view['encoding']} ({view['units']} units)", highlight=False)
            out.print(f"segments   {view['segments']}", highlight=False)
            out.print(view["text"], highlight=False, markup=False)
    if not view["ok"]:
        raise _fail(f"render: {view['error']}", 2)


_IMPORT_KEYS = {"body": str, "source": str, "action": str, "event_type": str, "app": str,
                "urgent": bool, "limits": str}  # fmt: skip


def parse_templates_toml(text: str) -> tuple[list[Template], list[str]]:
    """The templates of a ``[templates.<name>]`` TOML text, and every problem found."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [f"not valid TOML: {exc}"]
    tables = document.get("templates")
    problems = []
    extra = sorted(set(document) - {"templates"})
    if extra:
        problems.append(f"unknown top-level key(s) {', '.join(extra)}: use [templates.<name>]")
    if not isinstance(tables, dict) or not tables:
        return [], [*problems, "no [templates.<name>] tables"]
    renderer = Renderer()
    templates = []
    for name, table in tables.items():
        where = f"templates.{name}"
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table")
            continue
        unknown = sorted(set(table) - set(_IMPORT_KEYS))
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        wrong = [k for k, kind in _IMPORT_KEYS.items() if k in table and type(table[k]) is not kind]
        problems.extend(f"{where}.{k}: must be a {_IMPORT_KEYS[k].__name__}" for k in wrong)
        if "body" not in table:
            problems.append(f"{where}.body: is required")
        if wrong or unknown or "body" not in table:
            continue
        fields = {k: v for k, v in table.items() if k not in ("app", "urgent")}
        problems.extend(
            f"{where}: {p}" for p in template_problems({"name": name, **fields}, renderer=renderer)
        )
        templates.append(
            Template(
                name=name, app_key=table.get("app", ""), urgent=table.get("urgent", False), **fields
            )
        )
    return templates, problems


def _selection(template: Template) -> tuple[str, str, str, str]:
    return (template.app_key, template.source, template.action, template.event_type)


def _same_content(a: Template, b: Template) -> bool:
    return dataclasses.replace(a, created_at_ms=0, updated_at_ms=0) == dataclasses.replace(
        b, created_at_ms=0, updated_at_ms=0
    )


@templates_cli.command("import")
def templates_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A TOML file of [templates.<name>] tables.")],
    json_output: JsonFlag = False,
) -> None:
    """Create or update templates from a TOML file; nothing is written if any is invalid."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: {exc}", 2) from None
    templates, problems = parse_templates_toml(text)
    if problems:
        raise _fail(f"{file}: " + "; ".join(problems), 2)
    settings = _settings(ctx)

    async def work(store: Store) -> dict[str, list[str]]:
        existing = {t.name: t for t in await store.list_templates()}
        missing = sorted({t.app_key for t in templates if t.app_key} - await _app_keys(store))
        if missing:
            raise _fail(f"{file}: no app with app_key {', '.join(missing)}")
        final = {**existing, **{t.name: t for t in templates}}
        seen: dict[tuple[str, str, str, str], str] = {}
        clashes = []
        for name in sorted(final):
            key = _selection(final[name])
            if key in seen:
                clashes.append(f"{seen[key]} and {name}")
            seen.setdefault(key, name)
        if clashes:
            raise _fail(
                f"{file}: templates {', '.join(clashes)} would have the same app, source, "
                "action and event_type",
                2,
            )
        report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
        now = _now_ms()
        for template in templates:
            old = existing.get(template.name)
            if old is None:
                stamped = dataclasses.replace(template, created_at_ms=now, updated_at_ms=now)
                await store.insert_template(stamped)
                report["created"].append(template.name)
            elif _same_content(old, template):
                report["unchanged"].append(template.name)
            else:
                stamped = dataclasses.replace(
                    template, created_at_ms=old.created_at_ms, updated_at_ms=now
                )
                await store.update_template(stamped)
                report["updated"].append(template.name)
        return report

    report = _run(settings, work)
    if json_output:
        out.print_json(data={**{k: len(v) for k, v in report.items()}, "templates": report})
        return
    counts = ", ".join(f"{kind} {len(names)}" for kind, names in report.items())
    out.print(f"{counts} (from {file})", highlight=False)
    for kind, names in report.items():
        for name in names:
            out.print(f"  {kind:9} {name}", highlight=False)


async def _app_keys(store: Store) -> set[str]:
    return {a.app_key for a in await store.list_apps()}


# -- opt-outs -------------------------------------------------------------------

ALL_APPS = "*"


def _opt_out_scope(app_key: str | None, all_apps: bool) -> str:
    if (app_key is None) == (not all_apps):
        raise _fail("give --app APP_KEY or --all-apps", 2)
    return ALL_APPS if all_apps else cast(str, app_key)


def _opt_out_view(opt_out: OptOut) -> dict[str, Any]:
    return {
        "app_key": opt_out.app_key,
        "receiver": opt_out.receiver,
        "reason": opt_out.reason,
        "created_at_ms": opt_out.created_at_ms,
    }


OptOutAppOption = Annotated[str | None, typer.Option("--app", help="Only for this app_key.")]
AllAppsOption = Annotated[bool, typer.Option("--all-apps", help="For every app.")]


@opt_outs_cli.command("add")
def opt_outs_add(
    ctx: typer.Context,
    receiver: Annotated[str, typer.Argument(help="The number, e.g. 13888888888 or +86….")],
    app_key: OptOutAppOption = None,
    all_apps: AllAppsOption = False,
    reason: Annotated[str, typer.Option(help="Why (kept with the opt-out).")] = "",
    json_output: JsonFlag = False,
) -> None:
    """Stop messages to a receiver from one app or from every app."""
    scope = _opt_out_scope(app_key, all_apps)
    if len(reason) > 500:
        raise _fail("--reason must be at most 500 characters", 2)
    settings = _settings(ctx)
    number = e164(receiver, settings.default_region)
    opt_out = OptOut(app_key=scope, receiver=number, reason=reason, created_at_ms=_now_ms())

    async def work(store: Store) -> bool:
        if scope != ALL_APPS:
            await _require_app(store, scope)
        return await store.add_opt_out(opt_out)

    added = _run(settings, work)
    if json_output:
        out.print_json(data={"added": added, **_opt_out_view(opt_out)})
    elif added:
        out.print(f"opted out {number} of {_scope_words(scope)}", highlight=False)
    else:
        out.print(f"{number} was already opted out of {_scope_words(scope)}", highlight=False)


def _scope_words(scope: str) -> str:
    return "every app" if scope == ALL_APPS else f"app {scope}"


@opt_outs_cli.command("remove")
def opt_outs_remove(
    ctx: typer.Context,
    receiver: str,
    app_key: OptOutAppOption = None,
    all_apps: AllAppsOption = False,
    json_output: JsonFlag = False,
) -> None:
    """Let a receiver get messages again (from one app, or end an every-app opt-out)."""
    scope = _opt_out_scope(app_key, all_apps)
    settings = _settings(ctx)
    number = e164(receiver, settings.default_region)
    if not _run(settings, lambda store: store.remove_opt_out(scope, number)):
        raise _fail(f"{number} is not opted out of {_scope_words(scope)}")
    if json_output:
        out.print_json(data={"removed": True, "app_key": scope, "receiver": number})
    else:
        out.print(f"{number} gets messages from {_scope_words(scope)} again", highlight=False)


@opt_outs_cli.command("list")
def opt_outs_list(
    ctx: typer.Context,
    app_key: Annotated[
        str | None, typer.Option("--app", help="Those of this app and of every app.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List opt-outs, newest first, with full numbers (for the operator's eyes only)."""
    settings = _settings(ctx)
    opt_outs = _run(settings, lambda store: store.list_opt_outs(app_key))
    if json_output:
        out.print_json(data=[_opt_out_view(o) for o in opt_outs])
        return
    table = Table("receiver", "app", "reason", "since")
    for o in opt_outs:
        app_text = "every app" if o.app_key == ALL_APPS else o.app_key
        table.add_row(o.receiver, app_text, o.reason, _local(o.created_at_ms))
    out.print(table)


# -- messages -------------------------------------------------------------------


def _statuses(values: Iterable[str]) -> frozenset[MessageStatus] | None:
    names = [name.strip().lower() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return None
    known = {status.value for status in MessageStatus}
    unknown = [name for name in names if name not in known]
    if unknown:
        choices = ", ".join(s.value for s in MessageStatus)
        raise _fail(f"--status {', '.join(unknown)}: use one of {choices}", 2)
    return frozenset(MessageStatus(name) for name in names)


def _message_view(message: Message, *, show_numbers: bool) -> dict[str, Any]:
    receiver = message.event.mobile_receiver
    return {
        "id": message.id,
        "app_key": message.app_key,
        "msg_key": message.msg_key,
        "status": str(message.status),
        "receiver": receiver if show_numbers else mask_phone(receiver),
        "template": message.template,
        "segments": message.segments,
        "attempts": message.attempts,
        "channel": message.channel,
        "last_error": message.last_error,
        "accepted_at_ms": message.accepted_at_ms,
        "updated_at_ms": message.updated_at_ms,
    }


@messages_cli.command("list")
def messages_list(
    ctx: typer.Context,
    app_key: Annotated[str | None, typer.Option("--app", help="Only this app's.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only these statuses (repeat it, or separate with commas)."),
    ] = None,
    receiver: Annotated[str | None, typer.Option(help="Only messages to this number.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Accepted at or after: epoch ms or ISO 8601.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Accepted before: epoch ms or ISO 8601.")
    ] = None,
    before_id: Annotated[
        int | None, typer.Option(help="Only ids below this (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    show_numbers: Annotated[
        bool, typer.Option("--show-numbers", help="Show receivers in full, not masked.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """List stored messages, newest first."""
    settings = _settings(ctx)
    query = MessageQuery(
        app_key=app_key,
        statuses=_statuses(status or ()),
        receiver=None if receiver is None else e164(receiver, settings.default_region),
        accepted_from_ms=None if since is None else instant_ms(since, "--since"),
        accepted_until_ms=None if until is None else instant_ms(until, "--until"),
        before_id=before_id,
        limit=limit,
    )
    messages = _run(settings, lambda store: store.find_messages(query))
    views = [_message_view(m, show_numbers=show_numbers) for m in messages]
    if json_output:
        out.print_json(data=views)
        return
    # Narrow terminals squeeze msg_key and error; the other cells are kept whole.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("id", "app", "msg_key", "status", "receiver", "tries", "accepted", "error"):
        squeezable = column in ("msg_key", "error")
        table.add_column(
            column, no_wrap=not squeezable, overflow="fold", min_width=12 if squeezable else None
        )
    for v in views:
        table.add_row(
            str(v["id"]), v["app_key"], v["msg_key"], v["status"], v["receiver"],
            str(v["attempts"]), _local(v["accepted_at_ms"]), v["last_error"] or "",
        )  # fmt: skip
    out.print(table)


@messages_cli.command("retry")
def messages_retry(
    ctx: typer.Context,
    app_key: Annotated[str | None, typer.Argument(help="The sending app.")] = None,
    msg_key: Annotated[str | None, typer.Argument(help="The message's msg_key.")] = None,
    message_id: Annotated[
        int | None, typer.Option("--id", help="The message's id instead.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Send a failed or expired message again, with a fresh validity period."""
    by_key = app_key is not None and msg_key is not None
    if by_key == (message_id is not None) or (app_key is None) != (msg_key is None):
        raise _fail("give APP_KEY MSG_KEY, or --id ID", 2)
    settings = _settings(ctx)
    validity_ms = int(getattr(settings, "message_validity_s", DEFAULT_VALIDITY_S)) * 1000

    async def work(store: Store) -> tuple[Message, int]:
        if message_id is not None:
            found = await store.get_message_by_id(message_id)
            what = f"no message with id {message_id}"
        else:
            assert app_key is not None and msg_key is not None
            found = await store.get_message(app_key, msg_key)
            what = f"no message with msg_key {msg_key} for app {app_key}"
        if found is None:
            raise _fail(what)
        if found.status not in REQUEUE_FROM:
            raise _fail(_not_retryable(found))
        now = _now_ms()
        expires = now + validity_ms
        if not await store.requeue(found.id, now_ms=now, expires_at_ms=expires, by="cli"):
            again = await store.get_message_by_id(found.id)
            raise _fail(_not_retryable(again or found))
        return found, expires

    message, expires_at = _run(settings, work)
    view = {"id": message.id, "app_key": message.app_key, "msg_key": message.msg_key,
            "status": str(MessageStatus.QUEUED), "previous_status": str(message.status),
            "expires_at_ms": expires_at}  # fmt: skip
    if json_output:
        out.print_json(data=view)
    else:
        out.print(
            f"requeued message {message.id} (msg_key {message.msg_key}, app {message.app_key}): "
            f"{message.status} → queued, valid until {_local(expires_at)}",
            highlight=False,
        )


def _not_retryable(message: Message) -> str:
    allowed = " or ".join(sorted(str(s) for s in REQUEUE_FROM))
    return (
        f"message {message.id} (msg_key {message.msg_key}) is {message.status}: "
        f"only {allowed} messages can be retried"
    )


@messages_cli.command("counts")
def messages_counts(
    ctx: typer.Context,
    app_key: Annotated[str | None, typer.Option("--app", help="Only this app's.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Accepted at or after: epoch ms or ISO 8601.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Accepted before: epoch ms or ISO 8601.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """How many messages are in each status."""
    settings = _settings(ctx)
    from_ms = None if since is None else instant_ms(since, "--since")
    until_ms = None if until is None else instant_ms(until, "--until")
    counts = _run(
        settings,
        lambda store: store.count_by_status(
            app_key, accepted_from_ms=from_ms, accepted_until_ms=until_ms
        ),
    )
    view = {str(status): counts.get(status, 0) for status in MessageStatus}
    total = sum(view.values())
    if json_output:
        out.print_json(data={**view, "total": total})
        return
    table = Table("status", "messages")
    for name, count in view.items():
        table.add_row(name, str(count))
    table.add_row("total", str(total))
    out.print(table)
