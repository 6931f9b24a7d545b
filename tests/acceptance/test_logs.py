"""Logs as an operator reads them: JSON on every line, and one line per store outage."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from processes import Server, cli, start
from topcalls import event_json, java_layout, signed

JSON = {"IWORK_MC_LOG_FORMAT": "json"}


def json_lines(server: Server) -> list[dict[str, object]]:
    """Every line the process printed, each parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in server.text().splitlines() if line.strip()]


def test_json_mode_is_json_on_every_line(tmp_path: Path, servers: list[Server]) -> None:
    """iwork-mc's events and uvicorn's own lines alike are JSON objects, one per line."""
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "logs", "--json").stdout)
    gateway = start(tmp_path, "serve", env=JSON)
    servers.append(gateway)
    gateway.wait_ready()
    params = signed(app["app_key"], app["secret"], event=event_json(msg_key="j-1"), format="json")
    assert "result" in json.dumps(httpx.post(gateway.url, **java_layout(params), timeout=10).json())
    # uvicorn itself refuses this and logs a warning on its own logger.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        raw.recv(1024)
    gateway.kill(signal.SIGTERM)
    assert 0 == gateway.process.returncode
    lines = json_lines(gateway)
    assert "top_call" in [line["event"] for line in lines]
    uvicorn = [line for line in lines if str(line.get("logger", "")).startswith("uvicorn")]
    assert uvicorn and all({"event", "level", "timestamp"} <= set(line) for line in uvicorn)


@pytest.mark.slow
def test_a_store_outage_is_one_warning_without_traceback(
    tmp_path: Path, servers: list[Server]
) -> None:
    """A worker whose database stays locked logs store_unavailable once, then store_recovered."""
    cli(tmp_path, "db", "upgrade")
    env = {**JSON, "IWORK_MC_SQLITE_BUSY_TIMEOUT_MS": "100", "IWORK_MC_POLL_INTERVAL_S": "0.05"}
    worker = start(tmp_path, "worker", env=env)
    servers.append(worker)
    worker.read_until("worker_started")
    lock = sqlite3.connect(tmp_path / "iwork-mc.db", isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        worker.read_until("store_unavailable")
        time.sleep(2.5)  # long enough for the worker to fail several polls (backing off 2 s, 4 s…)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    worker.read_until("store_recovered", timeout=15)
    worker.kill(signal.SIGTERM)
    lines = json_lines(worker)
    events = [line["event"] for line in lines]
    assert 1 == events.count("store_unavailable")
    (warning,) = [line for line in lines if line["event"] == "store_unavailable"]
    assert ("warning", "sqlite") == (warning["level"], warning["backend"])
    assert "locked" in str(warning["reason"])
    assert not [line for line in lines if "exception" in line or "exc_info" in line]
    assert "Traceback" not in worker.text()
