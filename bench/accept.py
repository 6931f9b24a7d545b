"""Accept rate of one iwork-mc process: signed, unique seed requests replayed by wrk over loopback.

    python bench/accept.py [--command run|serve] [--concurrency 16 64] [--seconds 10]

Each request is a distinct, freshly signed ``alibaba.iwork.mc.msg.sendmobile`` call
(unique msg_key) laid out like the Java SDK's, so every one is a durable insert.
The server runs on CPU 0 and wrk on CPU 1 (``taskset``) where the machine has two
cores, so the load generator does not steal the server's core.  Afterwards the
store is checked: every request wrk counted as answered is a stored message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from iwork_mc.top import params, signing

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "iwork_mc"]
#: Calls prepared per second of run; a faster server would replay some (as repeats).
MAX_RATE = 20_000
SEED = {
    "action": "iwork-action", "event_time_millis": 1505376496485, "event_type": "mobile_receiver",
    "json_data": '{"name":"张三"}', "mobile_receiver": "13888888888", "resource_id": "1",
    "resource_url": "http://www.aaa.com", "sender": 10000, "source": "iwork",
}  # fmt: skip


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() == 2 else []


def write_calls(path: Path, app_key: str, secret: str, count: int, tag: str) -> None:
    timestamp = params.format_timestamp(int(time.time() * 1000))
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            event = json.dumps({**SEED, "msg_key": f"{tag}-{i}"}, ensure_ascii=False,
                               sort_keys=True, separators=(",", ":"))  # fmt: skip
            system = {"method": "alibaba.iwork.mc.msg.sendmobile", "app_key": app_key,
                      "timestamp": timestamp, "v": "2.0", "format": "json",
                      "sign_method": "hmac-sha256"}  # fmt: skip
            system["sign"] = signing.sign(
                {**system, "mobile_receiver_message_event": event}, secret, "hmac-sha256"
            )
            body = urlencode({"mobile_receiver_message_event": event})
            out.write(f"/router/rest?{urlencode(system)}\t{body}\n")


def wrk(port: int, calls: Path, concurrency: int, seconds: int) -> dict[str, float]:
    script = str(ROOT / "bench" / "replay.lua")
    command = [
        *pinned(1), "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
        "-s", script, f"http://127.0.0.1:{port}", "--", str(calls),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    figures = dict(re.findall(r"^([A-Z0-9_]+) (\d+)$", output, re.MULTILINE))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return {"requests": requests, "rate": rate, **{k: float(v) for k, v in figures.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--command", choices=["run", "serve"], default="run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="iwork-mc-bench-") as tmp:
        data = Path(tmp)
        run = lambda *a: subprocess.run([*CLI, "--data-dir", str(data), *a], check=True,  # noqa: E731
                                        capture_output=True, text=True).stdout  # fmt: skip
        run("db", "upgrade")
        app = json.loads(run("apps", "create", "bench", "--json"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [*pinned(0), *CLI, "--data-dir", str(data), "--log-level", "warning", args.command,
             "--port", str(port), *(["--no-echo"] if args.command == "run" else [])],
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            setup = "SQLite (WAL, synchronous=FULL), wrk -t1"
            print(f"iwork-mc {args.command}, {setup}, {args.seconds}s per level")
            columns = ("req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "failed")
            print(f"{'conc':>5} " + " ".join(f"{c:>8}" for c in columns))
            total = 0
            for level in args.concurrency:
                calls = data / f"calls-{level}.txt"
                # Enough distinct calls that none is replayed within the run.
                count = MAX_RATE * args.seconds
                write_calls(calls, app["app_key"], app["secret"], count, f"c{level}")
                result = wrk(port, calls, level, args.seconds)
                total += int(result["requests"])
                print(f"{level:>5} {result['rate']:>8.0f} {result['P50_US'] / 1000:>8.2f} "
                      f"{result['P90_US'] / 1000:>8.2f} {result['P99_US'] / 1000:>8.2f} "
                      f"{result['MAX_US'] / 1000:>8.2f} {result['FAILURES']:>8.0f}")  # fmt: skip
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(30)
        with sqlite3.connect(data / "iwork-mc.db") as db:
            stored = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(f"answered {total}, stored {stored} messages")


if __name__ == "__main__":
    main()
