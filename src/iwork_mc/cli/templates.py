"""``iwork-mc templates``: create, show, change, dry-run and import message templates.

A template is a Jinja2 text chosen per event by app, source, action and
event_type (``*`` matches anything).  Bodies and fields are checked as the REST
API checks them before anything is stored; ``templates import`` reads a TOML
file of ``[templates.<name>]`` tables and writes nothing if any is invalid.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iwork_mc import audit
from iwork_mc.cli import common
from iwork_mc.compose import AcceptRules, render_text
from iwork_mc.events import EventFieldError, EventLimits, parse_event
from iwork_mc.messages import Rejection
from iwork_mc.policies import PolicyError, parse_limits
from iwork_mc.store.base import Store, TemplateExists
from iwork_mc.templates import (
    MAX_BODY,
    MAX_LIMITS,
    NAME_PATTERN,
    Renderer,
    Template,
    TemplateError,
    select_template,
)

__all__ = ["parse_templates_toml", "template_problems", "templates_cli"]

templates_cli = typer.Typer(help="Manage message templates (Jinja2 texts chosen per event).")

#: The same rule as the REST API's (gateway/rest_models.py).
TEMPLATE_NAME = re.compile(NAME_PATTERN)
_LIMITS = EventLimits()
_FIELD_LIMITS = {
    "source": _LIMITS.source,
    "action": _LIMITS.action,
    "event_type": _LIMITS.event_type,
}

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


#: A template's fields as shown, in this order (the body last: it is the longest).
_VIEW_FIELDS = ("name", "app_key", "source", "action", "event_type", "urgent", "limits",
                "created_at_ms", "updated_at_ms", "body")  # fmt: skip

#: Stores a template from its name and the options given; returns what was stored.
TemplateSave = Callable[[typer.Context, str, dict[str, Any]], Template]


def _template_view(template: Template) -> dict[str, Any]:
    return {field: getattr(template, field) for field in _VIEW_FIELDS}


def _print_fields(view: dict[str, Any], width: int = 16) -> None:
    for key, value in view.items():
        common.out.print(f"{key:{width}} {value}", highlight=False)


def _print_template(template: Template, json_output: bool) -> None:
    view = _template_view(template)
    if json_output:
        common.out.print_json(data=view)
        return
    body = view.pop("body")
    _print_fields({key: ("*" if value == "" else value) for key, value in view.items()})
    common.out.print("body", highlight=False)
    common.out.print(body, highlight=False, markup=False)


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
        raise common.fail("give --body or --body-file, not both", 2)
    if body_file is None:
        return body
    try:
        return body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise common.fail(f"--body-file {body_file}: {exc}", 2) from None


def _given(**options: Any) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _check(fields: dict[str, Any]) -> None:
    problems = template_problems(fields)
    if problems:
        raise common.fail("; ".join(problems), 2)


async def _explain_conflict(store: Store, template: Template) -> typer.Exit:
    key = (template.app_key, template.source, template.action, template.event_type)
    for other in await store.list_templates():
        if other.name != template.name and key == (
            other.app_key, other.source, other.action, other.event_type
        ):  # fmt: skip
            return common.fail(
                f"template {other.name} already has app={_any(template.app_key)} "
                f"source={_any(template.source)} action={_any(template.action)} "
                f"event_type={_any(template.event_type)}: an event could not choose between them"
            )
    return common.fail(f"a template named {template.name} already exists")


def _any(value: str) -> str:
    return value or "*"


def _fields_command(save: TemplateSave) -> Callable[..., None]:
    """A command taking NAME and every template field, printing what ``save`` stored.

    ``create`` and ``update`` take the same options; ``save`` (whose docstring
    becomes the command's help) gets only those given, with the body read.
    """

    def command(
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
        json_output: common.JsonFlag = False,
    ) -> None:
        text = _read_body(body, body_file)
        given = _given(body=text, app_key=app_key, source=source, action=action,
                       event_type=event_type, urgent=urgent, limits=limits)  # fmt: skip
        _print_template(save(ctx, name, given), json_output)

    command.__doc__ = save.__doc__
    return command


def _create_template(ctx: typer.Context, name: str, given: dict[str, Any]) -> Template:
    """Create a template; its body is checked before it is stored."""
    if "body" not in given:
        raise common.fail("give --body or --body-file", 2)
    app_key = given.pop("app_key", "")
    urgent = bool(given.pop("urgent", False))
    fields = {"name": name, **given}
    _check(fields)
    settings = common.settings_from(ctx)
    now = common.now_ms()
    template = Template(
        **fields, app_key=app_key, urgent=urgent, created_at_ms=now, updated_at_ms=now
    )

    async def work(store: Store) -> Template:
        await common.require_app(store, template.app_key)
        try:
            record = audit.template_changed(
                common.operator(), now, audit.AuditAction.TEMPLATE_CREATE, template
            )
            await store.insert_template(template, audit=record)
        except TemplateExists:
            if await store.get_template(name) is not None:
                raise common.fail(f"a template named {name} already exists") from None
            raise await _explain_conflict(store, template) from None
        return template

    return common.run(settings, work)


templates_cli.command("create")(_fields_command(_create_template))


@templates_cli.command("list")
def templates_list(ctx: typer.Context, json_output: common.JsonFlag = False) -> None:
    """List every template, by name (* matches anything)."""
    settings = common.settings_from(ctx)
    templates = common.run(settings, lambda store: store.list_templates())
    if json_output:
        common.out.print_json(data=[_template_view(t) for t in templates])
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
    common.out.print(table)


def _existing_template(found: Template | None, name: str) -> Template:
    if found is None:
        raise common.fail(f"no template named {name}")
    return found


@templates_cli.command("show")
def templates_show(ctx: typer.Context, name: str, json_output: common.JsonFlag = False) -> None:
    """Show one template with its body."""
    settings = common.settings_from(ctx)
    found = common.run(settings, lambda store: store.get_template(name))
    _print_template(_existing_template(found, name), json_output)


def _update_template(ctx: typer.Context, name: str, changes: dict[str, Any]) -> Template:
    """Change only the given fields of a template (--source "" matches any source)."""
    if not changes:
        raise common.fail("nothing to change: give at least one option", 2)
    _check(changes)
    settings = common.settings_from(ctx)

    async def work(store: Store) -> Template:
        current = _existing_template(await store.get_template(name), name)
        await common.require_app(store, changes.get("app_key"))
        now = common.now_ms()
        updated = dataclasses.replace(current, **changes, updated_at_ms=now)
        record = audit.template_changed(
            common.operator(), now, audit.AuditAction.TEMPLATE_UPDATE, updated
        )
        try:
            found = await store.update_template(updated, audit=record)
        except TemplateExists:
            raise await _explain_conflict(store, updated) from None
        _existing_template(updated if found else None, name)
        return updated

    return common.run(settings, work)


templates_cli.command("update")(_fields_command(_update_template))


@templates_cli.command("delete")
def templates_delete(ctx: typer.Context, name: str, json_output: common.JsonFlag = False) -> None:
    """Delete a template; events it matched use the next most specific one."""
    settings = common.settings_from(ctx)
    record = audit.template_deleted(common.operator(), common.now_ms(), name=name)
    if not common.run(settings, lambda store: store.delete_template(name, audit=record)):
        raise common.fail(f"no template named {name}")
    if json_output:
        common.out.print_json(data={"deleted": name})
    else:
        common.out.print(f"deleted template {name}", highlight=False)


def _event_text(event: str | None, event_file: Path | None) -> str:
    if (event is None) == (event_file is None):
        raise common.fail("give --event or --event-file", 2)
    if event_file is not None:
        try:
            event = event_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise common.fail(f"--event-file {event_file}: {exc}", 2) from None
    assert event is not None
    try:
        data = json.loads(event)
    except ValueError:
        raise common.fail("the event is not valid JSON", 2) from None
    if not isinstance(data, dict):
        raise common.fail("the event must be a JSON object", 2)
    # A dry run needs only what templates read: the rest gets harmless defaults.
    data.setdefault("msg_key", "dry-run")
    data.setdefault("event_time_millis", common.now_ms())
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
    json_output: common.JsonFlag = False,
) -> None:
    """Dry run: the template an event would use, its text, encoding and SMS count."""
    if template_name is not None and body is not None:
        raise common.fail("give --template or --body, not both", 2)
    raw = _event_text(event, event_file)
    settings = common.settings_from(ctx)
    try:
        parsed = parse_event(raw, settings.event_limits)
    except EventFieldError as exc:
        raise common.fail(f"event: {exc}", 2) from None
    rules = AcceptRules.from_settings(settings)

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
        name, text_source = common.run(settings, choose)
    view: dict[str, Any] = {"template": name, "ok": True, "text": None, "encoding": None,
                            "units": None, "segments": None, "error": None}  # fmt: skip
    rendered = render_text(rules, text_source, parsed)
    if isinstance(rendered, Rejection):
        view.update(ok=False, error=rendered.reason)
    else:
        encoding = rendered.encoding
        view.update(text=rendered.text, encoding=encoding.alphabet, units=encoding.units,
                    segments=encoding.segments)  # fmt: skip
        if rendered.problem is not None:
            view.update(ok=False, error=rendered.problem.reason)
    if json_output:
        common.out.print_json(data=view)
    else:
        common.out.print(f"template   {name or '(default)'}", highlight=False)
        if view["text"] is not None:
            common.out.print(
                f"encoding   {view['encoding']} ({view['units']} units)", highlight=False
            )
            common.out.print(f"segments   {view['segments']}", highlight=False)
            common.out.print(view["text"], highlight=False, markup=False)
    if not view["ok"]:
        raise common.fail(f"render: {view['error']}", 2)


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
    json_output: common.JsonFlag = False,
) -> None:
    """Create or update templates from a TOML file; nothing is written if any is invalid."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise common.fail(f"{file}: {exc}", 2) from None
    templates, problems = parse_templates_toml(text)
    if problems:
        raise common.fail(f"{file}: " + "; ".join(problems), 2)
    settings = common.settings_from(ctx)

    async def work(store: Store) -> dict[str, list[str]]:
        existing = {t.name: t for t in await store.list_templates()}
        missing = sorted({t.app_key for t in templates if t.app_key} - await _app_keys(store))
        if missing:
            raise common.fail(f"{file}: no app with app_key {', '.join(missing)}")
        final = {**existing, **{t.name: t for t in templates}}
        seen: dict[tuple[str, str, str, str], str] = {}
        clashes = []
        for name in sorted(final):
            key = _selection(final[name])
            if key in seen:
                clashes.append(f"{seen[key]} and {name}")
            seen.setdefault(key, name)
        if clashes:
            raise common.fail(
                f"{file}: templates {', '.join(clashes)} would have the same app, source, "
                "action and event_type",
                2,
            )
        report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
        now = common.now_ms()
        actor = common.operator()
        for template in templates:
            old = existing.get(template.name)
            imported = audit.template_changed(
                actor, now, audit.AuditAction.TEMPLATE_IMPORT, template
            )
            if old is None:
                stamped = dataclasses.replace(template, created_at_ms=now, updated_at_ms=now)
                await store.insert_template(stamped, audit=imported)
                report["created"].append(template.name)
            elif _same_content(old, template):
                report["unchanged"].append(template.name)
            else:
                stamped = dataclasses.replace(
                    template, created_at_ms=old.created_at_ms, updated_at_ms=now
                )
                await store.update_template(stamped, audit=imported)
                report["updated"].append(template.name)
        return report

    report = common.run(settings, work)
    if json_output:
        common.out.print_json(data={**{k: len(v) for k, v in report.items()}, "templates": report})
        return
    counts = ", ".join(f"{kind} {len(names)}" for kind, names in report.items())
    common.out.print(f"{counts} (from {file})", highlight=False)
    for kind, names in report.items():
        for name in names:
            common.out.print(f"  {kind:9} {name}", highlight=False)


async def _app_keys(store: Store) -> set[str]:
    return {a.app_key for a in await store.list_apps()}
