"""Status callbacks as an operator runs them: `apps set-callback`, `iwork-mc run`, a receiver.

The receiver listens on 127.0.0.1, which callbacks may not reach by default:
the operator's ``callback_allow_hosts`` is the documented way to let it in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from processes import Server, cli, start, wait_for_status
from topcalls import event_json, java_layout, signed

ALLOW_LOOPBACK = {"IWORK_MC_CALLBACK_ALLOW_HOSTS": "127.0.0.1"}


class Receiver(ThreadingHTTPServer):
    """Records the JSON body of every POST and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/iwork"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def send(server: Server, app: dict[str, Any], msg_key: str) -> None:
    layout = java_layout(signed(app["app_key"], app["secret"], event=event_json(msg_key=msg_key)))
    assert httpx.post(server.url, **layout, timeout=10).status_code == 200


def timeline(data_dir: Path, app: dict[str, Any], msg_key: str) -> list[dict[str, Any]]:
    shown = cli(data_dir, "status", msg_key, "--app-key", app["app_key"], "--json")
    entries: list[dict[str, Any]] = json.loads(shown.stdout)["timeline"]
    return entries


def test_loopback_receiver_needs_the_operator_allow_list(
    tmp_path: Path, servers: list[Server], receiver: Receiver
) -> None:
    """Refused by default when set and when sent; with the allow-list, callbacks arrive."""
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "desk", "--json").stdout)

    refused = cli(tmp_path, "apps", "set-callback", app["app_key"], receiver.url, check=False)
    assert 2 == refused.returncode
    assert "127.0.0.1 is a loopback address" in refused.stderr
    assert "Traceback" not in refused.stderr
    cli(tmp_path, "apps", "set-callback", app["app_key"], receiver.url, env=ALLOW_LOOPBACK)

    allowed = start(tmp_path, "run", env={**ALLOW_LOOPBACK, "IWORK_MC_APP_CACHE_TTL_S": "0"})
    servers.append(allowed)
    allowed.wait_ready()
    send(allowed, app, "cb-1")
    deadline = time.monotonic() + 20
    while len(receiver.bodies) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [("cb-1", "queued"), ("cb-1", "delivered")] == [
        (body["msg_key"], body["status"]) for body in receiver.bodies
    ]
    allowed.kill()

    # The same stored URL, a worker without the allow-list: refused, nothing POSTed.
    default = start(tmp_path, "run", env={"IWORK_MC_APP_CACHE_TTL_S": "0"})
    servers.append(default)
    default.wait_ready()
    send(default, app, "cb-2")
    wait_for_status(tmp_path, app["app_key"], "cb-2", "delivered")
    deadline = time.monotonic() + 20
    failed: list[dict[str, Any]] = []
    while len(failed) < 2 and time.monotonic() < deadline:
        entries = timeline(tmp_path, app, "cb-2")
        failed = [e for e in entries if e["kind"] == "callback_failed"]
        time.sleep(0.1)
    assert 2 == len(failed)
    for entry in failed:
        assert entry["detail"]["error"].startswith("refused: 127.0.0.1 is a loopback address")
        assert entry["detail"]["retry_at_ms"] is None
    assert ["cb-1", "cb-1"] == [body["msg_key"] for body in receiver.bodies]
