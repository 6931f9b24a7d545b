"""The development app ``make run`` creates, and the ready-to-paste curl line it prints."""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from iwork_mc import audit
from iwork_mc.apps import App, new_app_key, new_secret
from iwork_mc.client import MobileReceiverMessageEvent
from iwork_mc.store.base import AppExists, Store
from iwork_mc.top import params, signing

__all__ = ["SEED_EVENT", "DevApp", "curl_line", "ensure_dev_app", "load_saved"]

#: The seed's example event, written byte for byte as the official Java SDK writes it.
SEED_EVENT = MobileReceiverMessageEvent(
    msg_key="0bf7bbe7-b52f-4ee7-b4bf-6d4e110a6327",
    event_time_millis=1505376496485,
    source="iwork",
    action="iwork-action",
    mobile_receiver="13888888888",
    event_type="mobile_receiver",
    json_data='{"name":"张三"}',
    resource_id="1",
    resource_url="http://www.aaa.com",
    sender=10000,
).to_json(style="java")


@dataclass(frozen=True)
class DevApp:
    app_key: str
    secret: str
    created: bool


async def ensure_dev_app(store: Store, data_dir: Path, now_ms: int) -> DevApp:
    """Reuse the dev app recorded in ``<data_dir>/dev-app.json``, or create one."""
    path = data_dir / "dev-app.json"
    saved = load_saved(path)
    if saved is not None:
        app = await store.get_app(saved[0])
        if app is not None and app.secret == saved[1]:
            return DevApp(app.app_key, app.secret, created=False)
    while True:
        app = App(
            app_key=new_app_key(), name="dev", secret=new_secret(), enabled=True,
            created_at_ms=now_ms,
        )  # fmt: skip
        try:
            record = audit.app_created(
                audit.operator_actor(), now_ms, app_key=app.app_key, name=app.name
            )
            await store.insert_app(app, audit=record)
            break
        except AppExists:
            continue
    _save(path, app.app_key, app.secret)
    return DevApp(app.app_key, app.secret, created=True)


def load_saved(path: Path) -> tuple[str, str] | None:
    """The (app_key, secret) recorded by :func:`ensure_dev_app`, if any."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return str(saved["app_key"]), str(saved["secret"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Unreadable or edited by hand: as if there were none (`make run` writes a new one).
        return None


def _save(path: Path, app_key: str, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file holds a secret: readable by its owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"app_key": app_key, "secret": secret}, handle)


def curl_line(url: str, app_key: str, secret: str, *, event: str = SEED_EVENT) -> str:
    """A curl command sending ``event``, signed now (valid for the timestamp window)."""
    system = {
        "method": "alibaba.iwork.mc.msg.sendmobile",
        "app_key": app_key,
        "timestamp": params.format_timestamp(int(time.time() * 1000)),
        "v": "2.0",
        "sign_method": "hmac-sha256",
    }
    system["sign"] = signing.sign(
        {**system, "mobile_receiver_message_event": event}, secret, "hmac-sha256"
    )
    target = f"{url}?{urlencode(system)}"
    body = f"mobile_receiver_message_event={event}"
    return f"curl -sS {shlex.quote(target)} --data-urlencode {shlex.quote(body)}"
