"""Message templates: which one an event uses, and the text it renders (pure).

A template is chosen by the event's ``(source, action, event_type)`` and the
calling app.  Each of those four fields of a template is either a value the
event must have or empty ("any"); of the templates that match, the most
specific wins, comparing in this order: event_type given, source given, action
given, app given.  So for app ``A`` and event ``(s, a, t)`` the order is::

    (A, s, a, t) > (*, s, a, t) > (A, s, a, *) > (*, s, a, *) > (A, *, a, *)
    > (*, *, a, *) > (A, *, *, *) > (*, *, *, *) > the configured default

Text is rendered by Jinja2's sandbox with undefined variables as errors, so a
template that cannot render an event fails at accept time (the caller hears
``TEMPLATE_RENDER_FAILED``), never later in a worker.

Variables: every member of ``json_data`` by name, and these (which win over
``json_data`` members of the same name): ``data`` (the whole ``json_data``
object), ``source``, ``action``, ``event_type``, ``msg_key``, ``sender``,
``resource_id``, ``resource_url`` (``None`` when absent), ``event_time`` (an
aware datetime in the configured time zone) and ``event_time_millis``.
Filter ``plain``: strings as they are, other values as compact JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.template_sandbox import (
    LIMITS,
    BoundedSandbox,
    BudgetExceeded,
    DeadlineExceeded,
    Limits,
    TemplateLimitError,
    budget,
)

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_BODY",
    "MAX_LIMITS",
    "NAME_PATTERN",
    "RENDER_FAILED",
    "RenderError",
    "RenderTooSlow",
    "Renderer",
    "Template",
    "TemplateError",
    "TemplateTooComplex",
    "default_text",
    "select_template",
    "text_digest",
]

RENDER_FAILED = "TEMPLATE_RENDER_FAILED"

#: What a template may be called: a letter or digit, then up to 63 of ``A-Za-z0-9._-``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: The longest template text, and the longest ``limits`` text.
MAX_BODY = LIMITS.source
MAX_LIMITS = 200

#: What an event with no matching template reads like:
#: ``iwork-action: name: 张三, floor: 3 http://www.aaa.com``
DEFAULT_TEMPLATE = (
    "{{ action }}"
    "{% for key, value in data.items() %}{{ ': ' if loop.first else ', ' }}"
    "{{ key }}: {{ value | plain }}{% endfor %}"
    "{% if resource_url %} {{ resource_url }}{% endif %}"
)


class TemplateError(ValueError):
    """A template text that is not valid Jinja2; the message gives the line."""


class TemplateTooComplex(TemplateError):
    """A template refused because it cannot be bounded: too long, nested too deeply,
    include/import/extends, a recursive loop (see :mod:`iwork_mc.template_sandbox`)."""


class RenderTooSlow(Exception):
    """A trial render (see :meth:`Renderer.render`) did not finish in its short time:
    render again with the full time limit, off the event loop."""


class RenderError(ValueError):
    """A template that cannot render this event (a missing variable, say)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Template:
    name: str
    body: str
    #: ``""`` matches every app / source / action / event_type.
    app_key: str = ""
    source: str = ""
    action: str = ""
    event_type: str = ""
    #: Messages from this template are sent even in quiet hours.
    urgent: bool = False
    #: Extra per-receiver caps for this template, e.g. ``"hour=1,day=3"``.
    limits: str = ""
    created_at_ms: int = 0
    updated_at_ms: int = 0

    def matches(self, app_key: str, event: MobileReceiverMessageEvent) -> bool:
        return (
            self.app_key in ("", app_key)
            and self.source in ("", event.source)
            and self.action in ("", event.action)
            and self.event_type in ("", event.event_type)
        )

    @property
    def specificity(self) -> tuple[bool, bool, bool, bool]:
        return (bool(self.event_type), bool(self.source), bool(self.action), bool(self.app_key))


def select_template(
    templates: Iterable[Template], app_key: str, event: MobileReceiverMessageEvent
) -> Template | None:
    """The most specific template matching the event, or ``None`` (use the default)."""
    matching = [template for template in templates if template.matches(app_key, event)]
    return max(matching, key=lambda template: template.specificity, default=None)


def text_digest(text: str) -> str:
    """What the dedupe window compares: SHA-256 of the rendered text, hex."""
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Renderer:
    """Compiles template texts once (an LRU of ``cache_size``) and renders events,
    each render bounded by ``limits`` (see :mod:`iwork_mc.template_sandbox`)."""

    def __init__(
        self, zone: str = "Asia/Shanghai", *, cache_size: int = 512, limits: Limits = LIMITS
    ) -> None:
        self._zone = ZoneInfo(zone)
        self._limits = limits
        self._env = BoundedSandbox(limits)
        self._env.add_filter("plain", _plain)
        self._compiled: OrderedDict[str, jinja2.Template] = OrderedDict()
        self._cache_size = cache_size
        # Renders run on the event loop and in worker threads.
        self._lock = threading.Lock()

    def compile(self, body: str) -> jinja2.Template:
        """The compiled template; raises :class:`TemplateError` on a syntax error and
        :class:`TemplateTooComplex` for what cannot be bounded."""
        with self._lock:
            compiled = self._compiled.get(body)
            if compiled is not None:
                self._compiled.move_to_end(body)
                return compiled
        try:
            compiled = self._env.compile_bounded(body)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
        except TemplateLimitError as exc:
            raise TemplateTooComplex(str(exc)) from None
        with self._lock:
            self._compiled[body] = compiled
            if len(self._compiled) > self._cache_size:
                self._compiled.popitem(last=False)
        return compiled

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few values, for the renderer's life
    def _trial_limits(self, seconds: float) -> Limits:
        return dataclasses.replace(self._limits, seconds=min(seconds, self._limits.seconds))

    def variables(self, event: MobileReceiverMessageEvent) -> dict[str, Any]:
        data = event.data()
        return {
            **data,
            "data": data,
            "source": event.source,
            "action": event.action,
            "event_type": event.event_type,
            "msg_key": event.msg_key,
            "sender": event.sender,
            "resource_id": event.resource_id,
            "resource_url": event.resource_url,
            "event_time": datetime.fromtimestamp(event.event_time_millis / 1000, self._zone),
            "event_time_millis": event.event_time_millis,
        }

    def render(
        self, body: str, event: MobileReceiverMessageEvent, *, trial_seconds: float | None = None
    ) -> str:
        """The text for ``event``, whitespace-trimmed; raises :class:`RenderError`.

        With ``trial_seconds``, a trial: :class:`RenderTooSlow` if ``body`` is not
        compiled yet or its render takes longer than that, so that an event loop
        can try inline and hand only slow renders to a thread.
        """
        limits = self._limits
        if trial_seconds is not None:
            if body not in self._compiled:
                raise RenderTooSlow
            limits = self._trial_limits(trial_seconds)
        try:
            compiled = self.compile(body)
        except TemplateError as exc:
            raise RenderError(f"the template is not valid: {exc}") from None
        try:
            with budget(limits):
                text = compiled.render(self.variables(event)).strip()
        except DeadlineExceeded as exc:
            if trial_seconds is not None and limits.seconds < self._limits.seconds:
                raise RenderTooSlow from None
            raise RenderError(f"the template went over a limit: {exc}") from None
        except BudgetExceeded as exc:
            raise RenderError(f"the template went over a limit: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise RenderError(f"the template needs {_undefined_name(exc)}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"the template failed: {exc}") from None
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            # Errors of the template's own logic, e.g. {{ count / 0 }}.
            raise RenderError(f"the template failed: {type(exc).__name__}: {exc}") from None
        except RecursionError:
            raise RenderError("the template's calls nest too deeply") from None
        except MemoryError:
            raise RenderError("the template needs too much memory") from None
        if not text:
            raise RenderError("the template rendered an empty text")
        return text


def _undefined_name(exc: jinja2.UndefinedError) -> str:
    # Jinja2 says "'floor' is undefined" or "'dict object' has no attribute 'floor'".
    message = str(exc.message or "a variable the event does not have")
    if " has no attribute " in message:
        return message.split(" has no attribute ", 1)[1] + " (a member the event's data lacks)"
    return message.replace(" is undefined", "")


_DEFAULT_RENDERER = Renderer()


def default_text(event: MobileReceiverMessageEvent) -> str:
    """:data:`DEFAULT_TEMPLATE` rendered for ``event``: the text of a message stored
    before texts were rendered at accept time (they carry none)."""
    return _DEFAULT_RENDERER.render(DEFAULT_TEMPLATE, event)
