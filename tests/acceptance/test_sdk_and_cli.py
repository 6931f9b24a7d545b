"""The seed request through the Python SDK and through `iwork-mc send`, to delivered."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

from iwork_mc.client import (
    AlibabaIworkMcMsgSendmobileRequest,
    Client,
    MobileReceiverMessageEvent,
    TopClient,
)

from processes import Server, cli, start, wait_for_status
from topcalls import SEED_FIELDS


def running(tmp_path: Path, servers: list[Server]) -> tuple[Server, dict[str, str]]:
    cli(tmp_path, "db", "upgrade")
    app: dict[str, str] = json.loads(cli(tmp_path, "apps", "create", "sdk", "--json").stdout)
    server = start(tmp_path, "run", "--no-echo")
    servers.append(server)
    server.wait_ready()
    return server, app


def test_top_client_and_pythonic_client(tmp_path: Path, servers: list[Server]) -> None:
    """TopClient.execute with the seed's request and Client.send_mobile both get delivered."""
    server, app = running(tmp_path, servers)
    request = AlibabaIworkMcMsgSendmobileRequest(MobileReceiverMessageEvent(**SEED_FIELDS))
    with TopClient(server.url, app["app_key"], app["secret"]) as top:
        answer = top.execute(request)
    assert {
        "content": True,
        "error_code": "200",
        "error_msg": "success",
        "success": True,
    } == answer["result"]
    wait_for_status(tmp_path, app["app_key"], SEED_FIELDS["msg_key"], "delivered")

    with Client(server.url, app["app_key"], app["secret"]) as client:
        sent = client.send_mobile(
            mobile_receiver="+8613900000000", json_data={"name": "李四"}, source="visitor",
            action="arrived", sender=1,
        )  # fmt: skip
    view = wait_for_status(tmp_path, app["app_key"], sent.msg_key, "delivered")
    assert "139****0000" == view["receiver"]


def test_cli_send_one_event_and_a_file(tmp_path: Path, servers: list[Server]) -> None:
    """`iwork-mc send` sends one event from flags, and a JSON-lines file with a report of bad lines."""
    server, app = running(tmp_path, servers)
    env = {
        "IWORK_MC_URL": server.url,
        "IWORK_MC_APP_KEY": app["app_key"],
        "IWORK_MC_SECRET": app["secret"],
    }
    one = cli(
        tmp_path, "send", "--mobile-receiver", "13888888888", "--json-data", '{"name":"张三"}',
        "--source", "iwork", "--action", "iwork-action", "--sender", "10000", "--msg-key", "cli-1",
        "--resource-url", "http://www.aaa.com", "--json", env=env,
    )  # fmt: skip
    assert {"accepted": True, "msg_key": "cli-1"} == {
        k: v for k, v in json.loads(one.stdout).items() if k != "request_id"
    }
    wait_for_status(tmp_path, app["app_key"], "cli-1", "delivered")

    lines = [
        json.dumps({"msg_key": f"file-{i}", "mobile_receiver": f"1390000{i:04d}", "json_data": {"n": i},
                    "source": "batch", "action": "notice", "sender": 7, "event_time_millis": 1_700_000_000_000})
        for i in range(30)
    ]  # fmt: skip
    lines[10] = json.dumps({"msg_key": "bad-phone", "mobile_receiver": "12345", "json_data": "{}",
                            "source": "batch", "action": "notice", "sender": 7})  # fmt: skip
    lines[20] = "{not json"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = cli(tmp_path, "send", "--file", str(events), "--json", env=env, check=False)
    assert 1 == batch.returncode
    report = json.loads(batch.stdout)
    assert 28 == report["sent"]
    assert [11, 21] == [failure["line"] for failure in report["failed"]]
    assert "isv.invalid-parameter" == report["failed"][0]["sub_code"]
    wait_for_status(tmp_path, app["app_key"], "file-29", "delivered")

    # Lines carrying msg_key and event_time_millis make a re-run safe: repeats, not new messages.
    again = cli(tmp_path, "send", "--file", str(events), "--json", env=env, check=False)
    assert 28 == json.loads(again.stdout)["sent"]
    with sqlite3.connect(tmp_path / "iwork-mc.db") as db:
        assert 29 == db.execute("SELECT count(*) FROM messages").fetchone()[0]


def test_cli_send_reports_a_refusal(tmp_path: Path, servers: list[Server]) -> None:
    """A wrong secret is reported with TOP's code and a non-zero exit."""
    server, app = running(tmp_path, servers)
    result = cli(
        tmp_path, "send", "--url", server.url, "--app-key", app["app_key"], "--secret", uuid.uuid4().hex,
        "--mobile-receiver", "13888888888", "--json-data", "{}", "--source", "s", "--action", "a",
        "--sender", "1", "--json", check=False,
    )  # fmt: skip
    assert 1 == result.returncode
    assert (False, 25, "Invalid signature") == tuple(
        json.loads(result.stdout)[k] for k in ("accepted", "code", "msg")
    )
