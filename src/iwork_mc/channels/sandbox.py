"""The sandbox channel: delivers to a local file instead of a phone.

Each delivery is appended as one JSON line to ``<data_dir>/sandbox/deliveries.jsonl``
(flushed and fsynced, so a test or a person can read exactly what was sent), and,
when ``echo`` is on, printed with the receiver masked.  The file stands in for the
handset, so it holds the full number; logs never do.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from iwork_mc.channels.base import Delivered
from iwork_mc.messages import Message
from iwork_mc.privacy import mask_phone

__all__ = ["SandboxChannel"]


class SandboxChannel:
    name = "sandbox"

    def __init__(self, directory: Path, *, echo: bool = False, out: TextIO | None = None) -> None:
        self.path = directory / "deliveries.jsonl"
        self._echo = echo
        self._out = out or sys.stdout
        self._lock = asyncio.Lock()

    def health(self) -> dict[str, Any]:
        return {"channel": self.name, "file": str(self.path)}

    async def open(self) -> None:
        # The file holds phone numbers and texts: its owner's eyes only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))

    async def close(self) -> None:
        return None

    async def send(self, message: Message, text: str) -> Delivered:
        ref = f"sandbox-{message.id}-{message.attempts}"
        line = json.dumps(
            {
                "ref": ref,
                "message_id": message.id,
                "app_key": message.app_key,
                "msg_key": message.msg_key,
                "to": message.event.mobile_receiver,
                "text": text,
            },
            ensure_ascii=False,
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        if self._echo:
            print(f"sandbox ▸ {mask_phone(message.event.mobile_receiver)} ← {text}", file=self._out)
        return Delivered(ref)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
