"""/metrics across real processes: two gateways (`serve --processes 2`) and a worker on one host.

Every process counts into ``<data_dir>/metrics``; whichever gateway answers a
scrape adds them all up, so the counters are the same from either one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from processes import Server, cli, start
from topcalls import METHOD, event_json, java_layout, signed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

DELIVERABLE = [f"1391234{n:04d}" for n in range(6)]
PERMANENT_FAILURE = "13800000001"  # the sandbox's magic number: refused, no retry
JSON_LOGS = {"IWORK_MC_LOG_FORMAT": "json", "IWORK_MC_POLL_INTERVAL_S": "0.05"}


def scrape(server: Server) -> Samples:
    answer = httpx.get(f"{server.base_url}/metrics", timeout=5)
    assert 200 == answer.status_code
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def call(server: Server, app: Mapping[str, str], *, receiver: str, msg_key: str,
         secret: str | None = None, **fields: str) -> dict[str, object]:  # fmt: skip
    event = event_json(msg_key=msg_key, mobile_receiver=receiver, **fields)
    params = signed(app["app_key"], secret or app["secret"], event=event, format="json")
    answer: dict[str, object] = httpx.post(server.url, **java_layout(params), timeout=10).json()
    return answer


def dead_pid() -> int:
    """The PID of a process that has ended."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(ended.stdout)


def test_counters_move_across_two_gateways_and_a_worker(
    tmp_path: Path, servers: list[Server]
) -> None:
    """Accepts, declines, refusals, deliveries and failures show in /metrics from any gateway."""
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "metrics", "--json").stdout)
    # A file a crashed process left behind: the first process to start removes it.
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale = metrics_dir / f"counter_{dead_pid()}.db"
    stale.write_bytes(b"not a metrics file")

    gateway = start(tmp_path, "serve", "--processes", "2", env=JSON_LOGS)
    servers.append(gateway)
    gateway.wait_ready()
    assert not stale.exists()
    gateway_children = children_of(gateway.process.pid)
    try:
        check_counters(tmp_path, app, gateway, gateway_children, servers)
    finally:
        # A failing test must not leave the gateway's children behind its killed parent.
        for pid in gateway_children:
            with contextlib.suppress(OSError):
                if b"iwork_mc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def check_counters(
    tmp_path: Path, app: Mapping[str, str], gateway: Server, gateway_children: list[int],
    servers: list[Server],
) -> None:  # fmt: skip
    before = scrape(gateway)

    keys = [f"m-{n}" for n in range(len(DELIVERABLE))]
    for key, receiver in zip(keys, DELIVERABLE, strict=True):
        assert "result" in json.dumps(call(gateway, app, receiver=receiver, msg_key=key))
    failing = call(gateway, app, receiver=PERMANENT_FAILURE, msg_key="m-fail")
    assert "alibaba_iwork_mc_msg_sendmobile_response" in failing
    conflict = call(gateway, app, receiver=DELIVERABLE[0], msg_key=keys[0], json_data='{"x":1}')
    assert "MSG_KEY_CONFLICT" in json.dumps(conflict)
    refused = call(gateway, app, receiver=DELIVERABLE[0], msg_key="m-bad", secret="0" * 32)
    assert 25 == refused["error_response"]["code"]  # type: ignore[index]

    worker = start(tmp_path, "worker", env=JSON_LOGS)
    servers.append(worker)
    deadline = time.monotonic() + 20
    after = scrape(gateway)
    while time.monotonic() < deadline and (
        total(after, "iwork_mc_messages", status="delivered") < len(keys)
        or total(after, "iwork_mc_messages", status="failed") < 1
    ):
        time.sleep(0.1)
        after = scrape(gateway)
    again = scrape(gateway)
    calls = "iwork_mc_top_calls_total"
    assert 7 == total(after, calls, method=METHOD, code="200") - total(before, calls, code="200")
    assert 1 == total(after, calls, method=METHOD, code="MSG_KEY_CONFLICT")
    assert 1 == total(after, calls, method=METHOD, code="25")
    assert 1 == total(after, "iwork_mc_policy_declines_total", reason="MSG_KEY_CONFLICT")
    assert 9 == total(after, "iwork_mc_top_call_seconds_count", method=METHOD) - total(
        before, "iwork_mc_top_call_seconds_count"
    )
    steps = "iwork_mc_delivery_steps_total"
    assert 6 == total(after, steps, channel="sandbox", kind="delivered")
    assert 1 == total(after, steps, channel="sandbox", kind="failed")
    assert 6 == total(after, "iwork_mc_messages", status="delivered", channel="sandbox")
    assert 1 == total(after, "iwork_mc_messages", status="failed", channel="sandbox")
    assert 0 == total(after, "iwork_mc_queue_due")
    assert 1 == total(after, "iwork_mc_store_up")
    assert total(after, "iwork_mc_store_group_commit_jobs_count", backend="sqlite") >= 7
    # Each gateway process reports every process's counters, not only its own.
    for name in (calls, steps):
        assert total(after, name) == total(again, name)
    owners = {int(f.stem.rpartition("_")[2]) for f in (tmp_path / "metrics").glob("*_*.db")}
    assert {worker.process.pid, *gateway_children} <= owners

    # A request uvicorn itself refuses is logged by uvicorn: as JSON too.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        raw.recv(1024)
    logs = ""
    for process in (gateway, worker):
        process.kill(signal.SIGTERM)
        assert 0 == process.process.returncode
        logs += process.text()
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    failed = [line for line in lines if line["event"] == "delivery_failed"]
    assert ["warning"] == [line["level"] for line in failed]
    assert "138****0001" == failed[0]["to"]
    for number in (PERMANENT_FAILURE, *DELIVERABLE, app["secret"]):
        assert number not in logs


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
