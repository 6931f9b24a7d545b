"""End-to-end rate through the SMPP channel: /router/rest → submit_sm_resp → delivery receipt.

    python bench/e2e_smpp.py [--seconds 10] [--concurrency 32] [--window 10] [--binds 1]

One ``iwork-mc run`` process (gateway + worker, SQLite, channel=smpp) on CPU 0;
wrk replaying distinct signed seed requests and ``iwork_mc.testing.FakeSMSC``
(this process) on CPU 1.  Reported: the accept rate (wrk), and the rate at
which the same messages reached the SMSC (submit_sm answered) and came back
delivered (receipt acknowledged), from the first request to the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
from accept import CLI, ROOT, pinned, write_calls

from iwork_mc.testing import FakeSMSC, SMSCPolicy


async def wait_port(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(400):
            try:
                await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise SystemExit("the server did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--binds", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    if os.cpu_count() == 2:
        os.sched_setaffinity(0, {1})

    with tempfile.TemporaryDirectory(prefix="iwork-mc-e2e-") as tmp:
        data = Path(tmp)
        base = [*CLI, "--data-dir", str(data)]
        upgrade = await asyncio.create_subprocess_exec(
            *base, "db", "upgrade", stdout=asyncio.subprocess.DEVNULL
        )
        await upgrade.wait()
        created = await asyncio.create_subprocess_exec(
            *base, "apps", "create", "bench", "--json", stdout=asyncio.subprocess.PIPE
        )
        app = json.loads((await created.communicate())[0])
        async with FakeSMSC(SMSCPolicy(system_id="bench", password="bench")) as smsc:
            env = {
                **os.environ, "IWORK_MC_CHANNEL": "smpp", "IWORK_MC_SMPP_PORT": str(smsc.port),
                "IWORK_MC_SMPP_SYSTEM_ID": "bench", "IWORK_MC_SMPP_PASSWORD": "bench",
                "IWORK_MC_SMPP_WINDOW": str(args.window), "IWORK_MC_SMPP_BINDS": str(args.binds),
                "IWORK_MC_WORKER_CONCURRENCY": str(args.worker_concurrency),
                "IWORK_MC_POLL_INTERVAL_S": "0.01", "IWORK_MC_LOG_LEVEL": "warning",
            }  # fmt: skip
            port = 18000 + os.getpid() % 1000
            server = await asyncio.create_subprocess_exec(
                *pinned(0), *base, "run", "--no-echo", "--port", str(port), env=env
            )
            try:
                await wait_port(port)
                calls = data / "calls.txt"
                write_calls(calls, app["app_key"], app["secret"], 4_000 * args.seconds, "e2e")
                started = time.monotonic()
                wrk = await asyncio.create_subprocess_exec(
                    "wrk", "-t1", f"-c{args.concurrency}", f"-d{args.seconds}s", "--timeout",
                    "10s", "-s", str(ROOT / "bench" / "replay.lua"), f"http://127.0.0.1:{port}",
                    "--", str(calls), stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                output = (await wrk.communicate())[0].decode()
                answered = int(output.split(" requests in ")[0].split()[-1])
                accept_s = time.monotonic() - started
                submitted_s = delivered_s = None
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    now = time.monotonic() - started
                    if submitted_s is None and len(smsc.accepted) >= answered:
                        submitted_s = now
                    if smsc.receipts_acked >= answered:
                        delivered_s = now
                        break
                    await asyncio.sleep(0.01)
            finally:
                server.send_signal(signal.SIGTERM)
                await server.wait()
    print(f"iwork-mc run (SQLite) → SMPP to FakeSMSC on 127.0.0.1; wrk -c{args.concurrency}, "
          f"{args.seconds}s; window {args.window}, binds {args.binds}, "
          f"worker concurrency {args.worker_concurrency}")  # fmt: skip
    print(f"accepted            {answered:>7} in {accept_s:6.2f}s = {answered / accept_s:7.0f}/s")
    for label, elapsed in (("→ submit_sm_resp", submitted_s), ("→ receipt", delivered_s)):
        if elapsed is None:
            print(f"{label:<19} not all within 120 s")
        else:
            print(f"{label:<19} {answered:>7} in {elapsed:6.2f}s = {answered / elapsed:7.0f}/s")


if __name__ == "__main__":
    asyncio.run(main())
