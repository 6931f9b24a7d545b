"""Tracing: one trace per message, from the TOP call through the worker's send to the receipt.

Spans go to the OpenTelemetry SDK's in-memory exporter.  The gateway serves the
call on a real socket (its own thread and store); a worker with its own store
on the same SQLite file delivers it through the sandbox, whose slow-receipt
number answers with a receipt a moment later.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iwork_mc import tracing
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.config import Settings
from iwork_mc.messages import MessageStatus
from iwork_mc.store import create_store
from iwork_mc.worker import Worker

from servers import GatewayThread
from topcalls import event_json, java_layout, signed

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

SLOW_RECEIPT = "13800000004"  # the sandbox submits it; a "delivered" receipt follows
AT_ONCE = "13912345678"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_one_trace_per_message_from_call_to_receipt(
    tmp_path: Path, exported: InMemorySpanExporter
) -> None:
    """Each message's call, send and receipt spans share one trace; the call's span is the parent."""
    settings = Settings(data_dir=tmp_path)
    with GatewayThread(settings) as gateway:
        app = gateway.create_app()
        async with httpx.AsyncClient(timeout=10) as http:
            for key, receiver in (("slow", SLOW_RECEIPT), ("now", AT_ONCE)):
                event = event_json(msg_key=key, mobile_receiver=receiver)
                params = signed(app.app_key, app.secret, event=event, format="json")
                answer = (await http.post(gateway.url, **java_layout(params))).json()
                assert answer["alibaba_iwork_mc_msg_sendmobile_response"]["result"]["success"]

    store = create_store(settings.effective_database_url)
    await store.open()
    try:
        channel = SandboxChannel(tmp_path / "sandbox", store=store, receipt_delay_s=0.05)
        worker = Worker(store, channel)
        await worker.open_channels()
        assert 2 == await worker.run_once()
        deadline = time.monotonic() + 10
        slow = await store.get_message(app.app_key, "slow")
        while slow is not None and slow.status is not MessageStatus.DELIVERED:
            assert time.monotonic() < deadline, "the slow receipt never came"
            await asyncio.sleep(0.05)
            slow = await store.get_message(app.app_key, "slow")
        await worker.close_channels()
        assert slow is not None and slow.trace_parent
    finally:
        await store.close()

    spans = exported.get_finished_spans()
    calls, sends, receipts = (by_name(spans, n) for n in ("top.call", "deliver", "receipt"))
    assert (2, 2, 1) == (len(calls), len(sends), len(receipts))
    assert 2 == len({call.context.trace_id for call in calls})
    for call in calls:
        assert call.parent is None
        assert "200" == call.attributes["top.outcome"]
        children = [s for s in (*sends, *receipts) if s.context.trace_id == call.context.trace_id]
        assert all(child.parent.span_id == call.context.span_id for child in children)
    (receipt,) = receipts
    (send,) = [s for s in sends if s.context.trace_id == receipt.context.trace_id]
    assert "submitted" == send.attributes["iwork_mc.outcome"]
    assert ("delivered", "delivered") == (
        receipt.attributes["iwork_mc.receipt_state"], receipt.attributes["iwork_mc.status"]
    )  # fmt: skip
    (other,) = [s for s in sends if s is not send]
    assert "delivered" == other.attributes["iwork_mc.outcome"]
    everything = repr([dict(span.attributes or {}) for span in spans])
    assert SLOW_RECEIPT not in everything and AT_ONCE not in everything


def test_without_opentelemetry_nothing_changes(tmp_path: Path) -> None:
    """With OpenTelemetry absent, spans are no-ops, no traceparent is stored, and an
    endpoint asks for the extra."""
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
from iwork_mc import tracing
tracing.configure("")
with tracing.span("top.call", server=True) as span:
    assert span is None and tracing.current_parent() == ""
try:
    tracing.configure("http://127.0.0.1:4318/v1/traces")
except tracing.TracingUnavailable as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert "pip install 'iwork-mc[tracing]'" in done.stdout
