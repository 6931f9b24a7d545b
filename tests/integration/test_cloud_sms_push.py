"""Receipts the providers push to the gateway (POST /receipts/{channel}/{token}), over real
HTTP from the emulators to the real server, into the same store as polled receipts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_cloud_sms_channels import ALIYUN, RECEIVER, TENCENT, Provider, emulator, options

from iwork_mc.channels import providers
from iwork_mc.config import ChannelSpec, Settings
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.testing._http import CloudEmulator
from iwork_mc.worker import Worker

from servers import GatewayThread

TOKEN = "push-token-7f3a"


@pytest.fixture(params=[ALIYUN, TENCENT], ids=lambda p: p.kind)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


@pytest.fixture
def fake(provider: Provider) -> Iterator[CloudEmulator]:
    with emulator(provider.kind) as running:
        yield running


@pytest.fixture
def gateway(tmp_path: Path, provider: Provider, fake: CloudEmulator) -> Iterator[GatewayThread]:
    table = options(provider.kind, fake.endpoint, receipt_token=TOKEN)
    settings = Settings(
        data_dir=tmp_path,
        channels=(ChannelSpec("cloud", provider.kind, tuple(table.items())),),
    )
    with GatewayThread(settings) as gw:
        yield gw


def submitted_message(
    gw: GatewayThread, provider: Provider, message_factory: Callable[..., NewMessage]
) -> int:
    """A message accepted and submitted through the channel (its receipt not yet polled)."""
    app = gw.create_app()
    store = gw.store
    assert store is not None
    spec = gw.settings.channel_specs[0]

    async def send() -> int:
        message_id = (
            await store.accept(message_factory(app_key=app.app_key, mobile_receiver=RECEIVER))
        ).message_id
        channel = providers.build(provider.kind, spec.name, dict(spec.options), store)
        await channel.open()
        try:
            await Worker(store, channel, rng=random.Random(1), worker_id="w").run_once()
        finally:
            await channel.close()
        return message_id

    return gw.run(send())


def test_pushed_receipts_deliver_the_message_and_a_repeat_changes_nothing(
    gateway: GatewayThread, provider: Provider, fake: CloudEmulator,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    message_id = submitted_message(gateway, provider, message_factory)
    url = f"http://127.0.0.1:{gateway.port}/receipts/cloud/{TOKEN}"
    status, answer = fake.push_receipts(url, times=2)
    expected = (
        {"code": 0, "msg": "成功"}
        if provider.kind == "aliyun_sms"
        else {"result": 0, "errmsg": "OK"}
    )
    assert (200, expected) == (status, answer)
    assert gateway.store is not None
    message = gateway.run(gateway.store.get_message_by_id(message_id))
    assert message is not None and MessageStatus.DELIVERED is message.status
    timeline = gateway.run(gateway.store.timeline(message_id))
    receipts = [e for e in timeline if e.kind in ("receipt", "duplicate_receipt")]
    assert ["receipt", "duplicate_receipt"] == [e.kind for e in receipts]
    assert "push" == receipts[0].detail["source"]


def test_a_failure_push_fails_the_message(
    gateway: GatewayThread, provider: Provider, fake: CloudEmulator,
    message_factory: Callable[..., NewMessage],
) -> None:  # fmt: skip
    fake.receipt(provider.phone, "failed")
    message_id = submitted_message(gateway, provider, message_factory)
    status, _ = fake.push_receipts(f"http://127.0.0.1:{gateway.port}/receipts/cloud/{TOKEN}")
    assert 200 == status
    assert gateway.store is not None
    message = gateway.run(gateway.store.get_message_by_id(message_id))
    assert message is not None and MessageStatus.FAILED is message.status
    assert "MN:0001" in (message.last_error or "")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"/receipts/cloud/wrong-{TOKEN}", "[]", 404),
        (f"/receipts/nosuch/{TOKEN}", "[]", 404),
        (f"/receipts/cloud/{TOKEN}", "{not json", 400),
        (f"/receipts/cloud/{TOKEN}", '{"a": 1}', 400),
        (f"/receipts/cloud/{TOKEN}", '[{"nothing": true}]', 400),
        (f"/receipts/cloud/{TOKEN}", "[" + " " * 70_000 + "]", 413),
    ],
)
def test_a_wrong_token_or_body_is_refused_and_changes_nothing(
    gateway: GatewayThread, path: str, body: str, status: int
) -> None:
    answer = httpx.post(f"http://127.0.0.1:{gateway.port}{path}", content=body, timeout=10)
    assert status == answer.status_code
    assert "error" in answer.json()
