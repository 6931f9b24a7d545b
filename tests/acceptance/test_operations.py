"""Operating iwork-mc: managing apps, gateway and workers as separate processes, clean logs."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from processes import Server, cli, start, wait_for_status
from topcalls import event_json, java_layout, signed

SUCCESS = "alibaba_iwork_mc_msg_sendmobile_response"


def call(server: Server, app_key: str, secret: str, msg_key: str) -> dict[str, object]:
    layout = java_layout(signed(app_key, secret, event=event_json(msg_key=msg_key), format="json"))
    answer: dict[str, object] = httpx.post(server.url, **layout, timeout=10).json()
    return answer


def delivered(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "iwork-mc.db") as db:
        count: int = db.execute(
            "SELECT count(*) FROM messages WHERE status = 'delivered'"
        ).fetchone()[0]
    return count


def test_apps_lifecycle(tmp_path: Path, servers: list[Server]) -> None:
    """create, list, show, disable, enable and rotate-secret act on a running gateway."""
    env = {"IWORK_MC_APP_CACHE_TTL_S": "0"}
    cli(tmp_path, "db", "upgrade")
    created = json.loads(cli(tmp_path, "apps", "create", "visitor desk", "--json").stdout)
    assert {"app_key", "secret", "name", "enabled"} <= set(created)
    listed = json.loads(cli(tmp_path, "apps", "list", "--json").stdout)
    assert [created["app_key"]] == [a["app_key"] for a in listed]
    assert all("secret" not in a for a in listed)
    shown = json.loads(cli(tmp_path, "apps", "show", created["app_key"], "--json").stdout)
    assert ("visitor desk", True, False) == (shown["name"], shown["enabled"], "secret" in shown)

    server = start(tmp_path, "serve", env=env)
    servers.append(server)
    server.wait_ready()
    key, old = created["app_key"], created["secret"]
    assert SUCCESS in call(server, key, old, "a-1")

    cli(tmp_path, "apps", "disable", key)
    assert {"code": 11} == {"code": call(server, key, old, "a-2")["error_response"]["code"]}  # type: ignore[index]
    cli(tmp_path, "apps", "enable", key)
    assert SUCCESS in call(server, key, old, "a-3")

    rotated = json.loads(
        cli(tmp_path, "apps", "rotate-secret", key, "--grace-seconds", "60", "--json").stdout
    )
    assert old != rotated["secret"]
    assert SUCCESS in call(server, key, old, "a-4")
    assert SUCCESS in call(server, key, rotated["secret"], "a-5")
    again = json.loads(
        cli(tmp_path, "apps", "rotate-secret", key, "--grace-seconds", "0", "--json").stdout
    )
    assert 25 == call(server, key, rotated["secret"], "a-6")["error_response"]["code"]  # type: ignore[index]
    assert SUCCESS in call(server, key, again["secret"], "a-7")

    missing = cli(tmp_path, "apps", "show", "00000000", check=False)
    assert (1, "error: no app with app_key 00000000") == (
        missing.returncode,
        missing.stderr.strip(),
    )


def test_gateway_and_workers_as_separate_processes_keep_logs_clean(
    tmp_path: Path, servers: list[Server]
) -> None:
    """`serve` accepts, two `worker`s deliver each message once; no secret or number is logged."""
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "ops", "--json").stdout)
    gateway = start(tmp_path, "serve")
    servers.append(gateway)
    gateway.wait_ready()
    keys = [f"w-{i}" for i in range(60)]
    for key in keys:
        assert SUCCESS in call(gateway, app["app_key"], app["secret"], key)
    workers = [start(tmp_path, "worker", "--concurrency", "4") for _ in range(2)]
    servers.extend(workers)
    deadline = time.monotonic() + 30
    while delivered(tmp_path) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(keys) == delivered(tmp_path)
    wait_for_status(tmp_path, app["app_key"], keys[0], "delivered")
    deliveries = [
        json.loads(line)
        for line in (tmp_path / "sandbox" / "deliveries.jsonl").read_text().splitlines()
    ]
    assert sorted(keys) == sorted(d["msg_key"] for d in deliveries)

    logs = ""
    for process in (gateway, *workers):
        process.kill(signal.SIGTERM)
        assert 0 == process.process.returncode
        logs += process.text()
    assert "message_sent" in logs and "top_call" in logs
    for secret_or_number in (app["secret"], "13888888888", "8613888888888"):
        assert secret_or_number not in logs


def test_servers_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    """serve and worker refuse to start until `db upgrade` has run, and say so."""
    for command in ("serve", "worker"):
        result = cli(tmp_path, command, check=False, timeout=30)
        assert 1 == result.returncode
        assert "run `iwork-mc db upgrade`" in result.stderr


def test_bad_database_url_is_a_usage_error(tmp_path: Path) -> None:
    """An unsupported database URL exits 2 with a one-line error, not a traceback."""
    result = cli(tmp_path, "--database-url", "mysql://x/y", "db", "upgrade", check=False)
    assert 2 == result.returncode
    assert result.stderr.startswith("error: database_url: unsupported database URL scheme 'mysql'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", [["send", "--file", "missing.jsonl"], ["status", "x"]])
def test_usage_errors_are_clear(tmp_path: Path, argv: list[str]) -> None:
    """Bad command lines exit non-zero with a message naming the problem."""
    result = cli(tmp_path, *argv, check=False)
    assert 0 != result.returncode
    assert result.stderr.strip()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_several_gateway_processes_share_one_port(tmp_path: Path, servers: list[Server]) -> None:
    """serve --processes 2 runs two gateways on one port; SIGTERM stops both cleanly."""
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "multi", "--json").stdout)
    gateway = start(tmp_path, "serve", "--processes", "2")
    servers.append(gateway)
    gateway.wait_ready()
    assert 2 == len(children_of(gateway.process.pid))
    for i in range(40):
        assert SUCCESS in call(gateway, app["app_key"], app["secret"], f"p-{i}")
    with sqlite3.connect(tmp_path / "iwork-mc.db") as db:
        assert 40 == db.execute("SELECT count(*) FROM messages").fetchone()[0]
    children = children_of(gateway.process.pid)
    gateway.kill(signal.SIGTERM)
    assert 0 == gateway.process.returncode
    assert [] == [pid for pid in children if Path(f"/proc/{pid}").exists()]
