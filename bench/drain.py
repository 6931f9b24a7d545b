"""Drain rate: how many messages per second worker processes deliver through the sandbox.

    python bench/drain.py                          # SQLite, 1 worker, 5,000 messages
    python bench/drain.py --backend postgres --workers 3
    python bench/drain.py --channel smpp            # through SMPP to a FakeSMSC, with receipts
    python bench/drain.py --channel webhook         # signed POSTs to a local receiver
    python bench/drain.py --channel aliyun_sms      # through the official SDK to its emulator
    python bench/drain.py --channel tencent_sms

A backlog of ``--messages`` accepted messages (rendered text, policy columns,
as the gateway stores them) is written through the store API first; then
``--workers`` ``iwork-mc worker`` processes (concurrency 64) are started and
the clock runs from the first delivered message to the last.  Every message is
checked to be delivered; through the sandbox, its file must hold each exactly
once.  ``--channel smpp`` delivers to a FakeSMSC on 127.0.0.1 (window 10, one
bind, registered delivery: a message counts once its receipt is recorded).
``--channel webhook`` POSTs to a receiver on 127.0.0.1 that verifies each
signature with ``standardwebhooks`` and answers 204; every ``webhook-id`` must
arrive verified, and exactly once.
``--channel aliyun_sms`` / ``tencent_sms`` deliver through the provider's official
SDK (16 calls in flight per worker) to its emulator (FakeAliyunSMS,
FakeTencentSMS) on 127.0.0.1, signatures verified; a message counts once its
polled receipt is recorded (polled every 0.2 s).
PostgreSQL: the machine's server (``--pg-dsn``), in a schema
created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import standardwebhooks

from iwork_mc.apps import App
from iwork_mc.compose import AcceptRules, Composed, compose
from iwork_mc.config import Settings
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import MessageStatus
from iwork_mc.store import create_store
from iwork_mc.testing import FakeAliyunSMS, FakeTencentSMS
from iwork_mc.testing._http import CloudEmulator

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "iwork_mc"]
CLOUD = ("aliyun_sms", "tencent_sms")


def cloud_emulator(kind: str) -> tuple[CloudEmulator, dict[str, object]]:
    """A started emulator of the provider, and the channel table that points at it."""
    common = {
        "kind": kind,
        "sign_name": "bench",
        "concurrency": 16,
        "receipt_poll_interval_s": 0.2,
        "templates": {"*": "SMS_1" if kind == CLOUD[0] else "1"},
    }
    if kind == "aliyun_sms":
        fake: CloudEmulator = FakeAliyunSMS("LTAI-bench", "bench-secret")
        return fake.start(), common | {
            "access_key_id": "LTAI-bench",
            "access_key_secret": "bench-secret",
            "endpoint": fake.endpoint,
        }
    fake = FakeTencentSMS("AKID-bench", "bench-secret", "1400000001")
    return fake.start(), common | {
        "secret_id": "AKID-bench",
        "secret_key": "bench-secret",
        "sdk_app_id": "1400000001",
        "endpoint": fake.endpoint,
    }


async def fill(url: str, count: int) -> None:
    store = create_store(url)
    await store.open()
    try:
        await store.migrate()
        now = int(time.time() * 1000)
        app = App(
            app_key="10000001", name="bench", secret="s" * 32, enabled=True, created_at_ms=now
        )
        await store.insert_app(app)
        rules = AcceptRules.from_settings(Settings())
        batch = []
        for n in range(count):
            event = MobileReceiverMessageEvent(
                msg_key=f"drain-{n}", event_time_millis=now, source="bench", action="arrived",
                mobile_receiver=f"+86139{n:08d}", event_type="notice",
                json_data=f'{{"name":"张三","n":{n}}}', sender=1,
            )  # fmt: skip
            composed = compose(rules, app.app_key, event, [], now, request_id=f"r{n}")
            assert isinstance(composed, Composed)
            batch.append(store.accept(composed.message, composed.checks))
            if len(batch) == 256:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await store.close()


class WebhookReceiver:
    """A receiver on 127.0.0.1 (uvicorn, own thread) that verifies each POST, counts its id."""

    secret = "whsec_" + base64.b64encode(b"drain-benchmark-key-0123456789ab").decode()

    def __init__(self) -> None:
        import uvicorn

        self.ids: Counter[str] = Counter()
        self.refused = 0
        verifier = standardwebhooks.Webhook(self.secret)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body = b""
            while True:
                event = await receive()
                body += event.get("body", b"")
                if not event.get("more_body"):
                    break
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            try:
                verifier.verify(body, headers, json_parse=False)
                self.ids[headers["webhook-id"]] += 1
                status = 204
            except standardwebhooks.WebhookVerificationError:
                self.refused += 1
                status = 401
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/messages"
        config = uvicorn.Config(
            app, lifespan="off", access_log=False, log_level="warning", http="httptools",
            backlog=256,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def counts(url: str) -> dict[MessageStatus, int]:
    store = create_store(url)
    await store.open()
    try:
        return await store.count_by_status()
    finally:
        await store.close()


async def delivered(url: str) -> int:
    return (await counts(url)).get(MessageStatus.DELIVERED, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--channel", choices=("sandbox", "smpp", "webhook", *CLOUD), default="sandbox"
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="iwork-drain-") as tmp:
        data_dir = Path(tmp)
        schema = None
        if args.backend == "sqlite":
            url = f"sqlite:///{data_dir / 'iwork-mc.db'}"
        else:
            import psycopg

            schema = f"drain_{secrets.token_hex(4)}"
            with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            url = f"{args.pg_dsn}?options=-csearch_path%3D{schema}"
        try:
            asyncio.run(fill(url, args.messages))
            env = {
                **os.environ,
                "IWORK_MC_DATA_DIR": str(data_dir),
                "IWORK_MC_DATABASE_URL": url,
                "IWORK_MC_WORKER_CONCURRENCY": "64",
                "IWORK_MC_POLL_INTERVAL_S": "0.05",
                "IWORK_MC_LOG_LEVEL": os.environ.get("IWORK_MC_LOG_LEVEL", "warning"),
            }
            smsc = None
            if args.channel == "smpp":
                from run import SMSCThread, smpp_settings

                smsc = SMSCThread()
                for name, value in smpp_settings(smsc.smsc.port).items():
                    env[f"IWORK_MC_{name.upper()}"] = str(value)
            receiver = None
            if args.channel == "webhook":
                receiver = WebhookReceiver()
                env["IWORK_MC_CHANNELS"] = json.dumps(
                    {"hook": {"kind": "webhook", "url": receiver.url, "secret": receiver.secret}}
                )
            cloud = None
            if args.channel in CLOUD:
                cloud, table = cloud_emulator(args.channel)
                env["IWORK_MC_CHANNELS"] = json.dumps({args.channel: table})
            sandbox = data_dir / "sandbox" / "deliveries.jsonl"
            workers = [
                subprocess.Popen([*CLI, "worker"], env=env, stdout=subprocess.DEVNULL)
                for _ in range(args.workers)
            ]
            try:
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline:
                    if sandbox.exists() and sandbox.stat().st_size:
                        break  # the sandbox's first delivery
                    if (smsc is not None or cloud is not None) and asyncio.run(delivered(url)):
                        break  # SMPP, cloud SMS: the first receipt recorded
                    if receiver is not None and receiver.ids:
                        break  # the webhook's first POST
                    time.sleep(0.02)
                started = time.monotonic()
                done = 0
                while done < args.messages and time.monotonic() < deadline:
                    time.sleep(0.1)
                    done = asyncio.run(delivered(url))
                elapsed = time.monotonic() - started
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.wait(30)
                if smsc is not None:
                    smsc.close()
                if receiver is not None:
                    receiver.close()
                if cloud is not None:
                    cloud.stop()
            lines = sandbox.read_text().splitlines() if sandbox.exists() else []
            sent: Counter[object] = Counter(json.loads(line)["message_id"] for line in lines)
            if cloud is not None:
                sent = Counter(sms.phone for sms in cloud.sent)  # one message per number
            if receiver is not None:
                sent = Counter(receiver.ids)
                if receiver.refused or len(receiver.ids) != done:
                    sys.exit(f"webhook: {receiver.refused} refused, {len(receiver.ids)} ids")
            result = {
                "backend": args.backend,
                "channel": args.channel,
                "workers": args.workers,
                "messages": args.messages,
                "delivered": done,
                "seconds": round(elapsed, 2),
                "rate": round(done / elapsed, 1),
                "sent_twice": sum(1 for c in sent.values() if c > 1),
            }
            print(json.dumps(result))
            if done != args.messages:
                left = {str(k): v for k, v in asyncio.run(counts(url)).items() if v}
                sys.exit(f"not every message was delivered before the timeout: {left}")
        finally:
            if schema is not None:
                import psycopg

                with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
