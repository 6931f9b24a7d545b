"""A newcomer's path: `iwork-mc run --dev-app`, the printed curl line, a delivered message."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from processes import Server, cli, start, wait_for_status
from topcalls import SEED_FIELDS, SEED_SUCCESS_XML


def test_printed_curl_line_delivers_the_seed_message(tmp_path: Path, servers: list[Server]) -> None:
    """`run --dev-app` prints credentials and a curl line that gets the seed's answer and a delivery."""
    server = start(tmp_path, "run", "--dev-app")
    servers.append(server)
    credentials = server.read_until(r"app_key=(\d+)\s+secret=([0-9a-f]{32})")
    app_key = credentials.group(1)
    curl = server.read_until(r"^curl .*").group(0)
    server.wait_ready()

    answer = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    request_id = answer.stdout.split("<request_id>")[1].split("<")[0]
    assert SEED_SUCCESS_XML.format(request_id=request_id) == answer.stdout

    view = wait_for_status(tmp_path, app_key, SEED_FIELDS["msg_key"], "delivered")
    assert "138****8888" == view["receiver"]
    assert ["accepted", "claimed", "delivered"] == [e["kind"] for e in view["timeline"]]  # type: ignore[index, union-attr]
    printed = server.read_until(r"sandbox ▸").string
    assert "sandbox ▸ 138****8888 ← iwork-action: name: 张三 http://www.aaa.com\n" == printed
    [delivery] = [
        json.loads(line)
        for line in (tmp_path / "sandbox" / "deliveries.jsonl").read_text().splitlines()
    ]
    assert ("+8613888888888", "iwork-action: name: 张三 http://www.aaa.com") == (
        delivery["to"],
        delivery["text"],
    )

    again = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    assert "<success>true</success>" in again.stdout
    server.kill()
    assert 0 == server.process.returncode
    # A second start reuses the dev app rather than making another.
    apps = json.loads(cli(tmp_path, "apps", "list", "--json").stdout)
    assert [app_key] == [a["app_key"] for a in apps]
