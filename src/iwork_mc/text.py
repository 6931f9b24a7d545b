"""The text a message carries, rendered from its event (pure).

Until templates exist (chosen by source, action and event_type), every event
gets the default text: the action, then each ``json_data`` member as
``key: value``, then the resource URL::

    iwork-action: name: 张三 http://www.aaa.com
"""

from __future__ import annotations

import json

from iwork_mc.events import MobileReceiverMessageEvent

__all__ = ["render_default"]


def render_default(event: MobileReceiverMessageEvent) -> str:
    data = json.loads(event.json_data)
    fields = ", ".join(f"{key}: {_scalar(value)}" for key, value in data.items())
    parts = [f"{event.action}: {fields}" if fields else event.action]
    if event.resource_url:
        parts.append(event.resource_url)
    return " ".join(parts)


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
