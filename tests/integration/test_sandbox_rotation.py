"""The sandbox's deliveries.jsonl stays bounded: rotated at max_bytes, a few old files kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.channels.sandbox import SandboxChannel
from iwork_mc.messages import NewMessage
from iwork_mc.store import Store
from iwork_mc.worker import Worker


def msg_keys(path: Path) -> list[str]:
    return [json.loads(line)["msg_key"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_deliveries_file_is_rotated_and_bounded(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """Twelve deliveries of ~250 bytes into 600-byte files: two rotated files are kept,
    none is larger than the limit, the oldest deliveries are dropped, all stay 0600."""
    channel = SandboxChannel(tmp_path / "sandbox", max_bytes=600, backups=2)
    await channel.open()
    for n in range(12):
        await store.accept(message_factory(msg_key=f"m{n:02}", request_id=f"r{n}"))
    worker = Worker(store, channel, concurrency=1)
    for _ in range(20):  # bounded: one message per round
        if await worker.run_once() == 0:
            break

    folder = channel.path.parent
    names = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))
    assert ["deliveries.jsonl", "deliveries.jsonl.1", "deliveries.jsonl.2"] == names
    files = [channel.path, folder / "deliveries.jsonl.1", folder / "deliveries.jsonl.2"]
    for path in files:
        assert path.stat().st_size <= 600
        assert 0o600 == path.stat().st_mode & 0o777
    kept = msg_keys(files[2]) + msg_keys(files[1]) + msg_keys(files[0])
    # In order, the newest last, and the oldest gone.
    assert kept == sorted(kept) and "m11" == kept[-1] and "m00" not in kept


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_backups_starts_the_file_over(
    store: Store, app: App, message_factory: Callable[..., NewMessage], tmp_path: Path
) -> None:
    """With backups=0 the full file is dropped and a new one started: never over the limit."""
    channel = SandboxChannel(tmp_path / "sandbox", max_bytes=600, backups=0)
    await channel.open()
    for n in range(5):
        await store.accept(message_factory(msg_key=f"m{n:02}", request_id=f"r{n}"))
    worker = Worker(store, channel, concurrency=1)
    for _ in range(10):
        if await worker.run_once() == 0:
            break
    assert channel.path.stat().st_size <= 600
    assert "m04" == msg_keys(channel.path)[-1]
    assert not (channel.path.parent / "deliveries.jsonl.1").exists()
