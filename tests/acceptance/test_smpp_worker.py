"""`iwork-mc worker` on the SMPP channel, killed with -9 mid-stream and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from iwork_mc.apps import App
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.store import create_store
from iwork_mc.testing import FakeSMSC, SMSCPolicy

from processes import free_port
from topcalls import event_json, java_layout, signed

MESSAGES = 300
WINDOW = 10


async def seed_messages(database_url: str) -> list[int]:
    store = create_store(database_url)
    await store.open()
    try:
        await store.migrate()
        await store.insert_app(App(app_key="12345678", name="load", secret="s" * 32,
                                   enabled=True, created_at_ms=0))  # fmt: skip
        ids = []
        for i in range(MESSAGES):
            event = MobileReceiverMessageEvent(
                msg_key=f"k{i}", event_time_millis=1, source="park", action="visit",
                mobile_receiver=f"+86139{i:08d}", event_type="notice", json_data='{"n":1}',
                sender=1,
            )  # fmt: skip
            result = await store.accept(NewMessage(app_key="12345678", event=event,
                                                   fingerprint=event.fingerprint(),
                                                   request_id="r", accepted_at_ms=0))  # fmt: skip
            ids.append(result.message_id)
        return ids
    finally:
        await store.close()


async def delivered_and_kinds(database_url: str, ids: list[int]) -> tuple[int, Counter[str]]:
    store = create_store(database_url)
    await store.open()
    try:
        counts = await store.count_by_status()
        kinds: Counter[str] = Counter()
        for message_id in ids:
            kinds.update({e.kind for e in await store.timeline(message_id)})
        return counts[MessageStatus.DELIVERED], kinds
    finally:
        await store.close()


async def start_worker(data_dir: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "IWORK_MC_CHANNEL": "smpp",
        "IWORK_MC_SMPP_PORT": str(port),
        "IWORK_MC_SMPP_SYSTEM_ID": "park01",
        "IWORK_MC_SMPP_PASSWORD": "secret",
        "IWORK_MC_SMPP_WINDOW": str(WINDOW),
        "IWORK_MC_SMPP_IN_DOUBT_RESEND_S": "0.5",
        "IWORK_MC_WORKER_CONCURRENCY": str(WINDOW),
        "IWORK_MC_LEASE_S": "1",
        "IWORK_MC_POLL_INTERVAL_S": "0.05",
    }
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "iwork_mc", "--data-dir", str(data_dir), "worker",
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip


@pytest.mark.slow
async def test_worker_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """kill -9 with submits in flight: after a restart every message reaches the SMSC, once or marked."""
    database_url = f"sqlite:///{tmp_path / 'iwork-mc.db'}"
    ids = await seed_messages(database_url)
    log = tmp_path / "worker.log"
    async with FakeSMSC(
        SMSCPolicy(system_id="park01", password="secret", resp_delay=0.002)
    ) as smsc:
        worker = await start_worker(tmp_path, smsc.port, log)
        try:
            await smsc.wait_for(lambda: len(smsc.submissions) >= MESSAGES // 3, within=30)
            os.kill(worker.pid, signal.SIGKILL)
            await worker.wait()
            submitted_before = len(smsc.submissions)
            assert 0 < submitted_before < MESSAGES

            worker = await start_worker(tmp_path, smsc.port, log)
            deadline = time.monotonic() + 60
            delivered = 0
            while time.monotonic() < deadline:
                delivered, kinds = await delivered_and_kinds(database_url, ids)
                if delivered == MESSAGES:
                    break
                await asyncio.sleep(0.2)
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
                await asyncio.wait_for(worker.wait(), 30)
        per_destination = Counter(s.destination for s in smsc.accepted)
    assert MESSAGES == delivered, log.read_text()[-3000:]
    assert MESSAGES == len(per_destination)
    duplicates = sum(per_destination.values()) - MESSAGES
    # Only submissions in flight at the kill can be sent twice, and each such resend is marked.
    assert duplicates <= WINDOW
    assert duplicates <= kinds["possible_duplicate"]
    logs = log.read_text()
    assert "secret" not in logs and "8613900000001" not in logs
    print(json.dumps({"submitted_before_kill": submitted_before, "duplicates": duplicates,
                      "possible_duplicate_marks": kinds["possible_duplicate"],
                      "already_submitted": kinds["already_submitted"]}))  # fmt: skip


async def test_run_on_smpp_reports_sessions_and_delivers(tmp_path: Path) -> None:
    """`iwork-mc run` with channel=smpp: /healthz shows the bound session, the seed is delivered.

    Until the SMSC is up, /readyz says the channel is not ready (while /livez is ok).
    """
    port = free_port()
    log = tmp_path / "run.log"
    env = {**os.environ, "IWORK_MC_CHANNEL": "smpp", "IWORK_MC_SMPP_SYSTEM_ID": "park01",
           "IWORK_MC_SMPP_PASSWORD": "secret"}  # fmt: skip
    async with FakeSMSC(SMSCPolicy(system_id="park01", password="secret"), started=False) as smsc:
        env["IWORK_MC_SMPP_PORT"] = str(smsc.port)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "iwork_mc", "--data-dir", str(tmp_path), "run", "--dev-app",
                "--port", str(port), stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                for _ in range(200):
                    try:
                        live = await http.get("/livez")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                assert 200 == live.status_code
                ready = await http.get("/readyz")
                assert 503 == ready.status_code
                assert {"status": "not ready", "store": True, "channels": {"smpp": False}} == (
                    ready.json()
                )
                await smsc.start()
                health: dict[str, object] = {}
                for _ in range(200):
                    try:
                        health = (await http.get("/healthz")).json()
                        if health.get("channel", {}).get("sessions") == ["bound"]:  # type: ignore[union-attr]
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
                assert {"channel": "smpp", "sessions": ["bound"]} == health["channel"]
                assert 200 == (await http.get("/readyz")).status_code
                saved = json.loads((tmp_path / "dev-app.json").read_text())
                call = signed(saved["app_key"], saved["secret"], event=event_json(), format="json")
                answer = (await http.post("/router/rest", **java_layout(call))).json()
                assert answer["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]
            await smsc.wait_for(lambda: smsc.receipts_acked == 1, within=10)
            async with httpx.AsyncClient(timeout=5) as http:
                metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            assert 'iwork_mc_smpp_events_total{channel="smpp",event="submitted"} 1.0' in metrics
            assert 'iwork_mc_smpp_events_total{channel="smpp",event="receipts"} 1.0' in metrics
            # A receipt faster than the recording of its submit is kept as unmatched first.
            receipts = [
                (sample.labels["result"], sample.value)
                for family in text_string_to_metric_families(metrics)
                for sample in family.samples
                if sample.name == "iwork_mc_receipts_total" and sample.value
            ]
            assert receipts in ([("matched", 1.0)], [("unmatched", 1.0)])
            assert ["iwork-action: name: 张三 http://www.aaa.com"] == smsc.messages("8613888888888")
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
    assert 0 == process.returncode, log.read_text()
    assert "smpp_unbound" in log.read_text()
