"""``iwork-mc send``: signed calls from the command line, one event or a JSON-lines file.

It goes through the Python SDK (:class:`iwork_mc.client.AsyncClient`), so
what it sends is exactly what an application using the SDK sends, retries
included.  Each line of ``--file`` is one JSON object with the event's fields
(``json_data`` may be an object or its JSON text).  ``msg_key`` defaults to a
new UUID and ``event_time_millis`` to now: give both on every line to make
re-running a file safe (lines already accepted are then answered as repeats).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from iwork_mc.client import AsyncClient, MessageRejected, SDKError, SendResult, TopApiError

__all__ = ["EVENT_FIELDS", "FileReport", "describe_error", "send_file", "send_one"]

#: The keyword arguments of ``send_mobile``: the fields a line of ``--file`` may hold.
EVENT_FIELDS = frozenset(
    {
        "msg_key", "event_time_millis", "source", "action", "mobile_receiver", "event_type",
        "json_data", "resource_id", "resource_url", "sender",
    }
)  # fmt: skip


def describe_error(exc: SDKError) -> dict[str, Any]:
    """A JSON-ready description of a failed send."""
    if isinstance(exc, TopApiError):
        return {"code": exc.code, "msg": exc.msg, "sub_code": exc.sub_code, "sub_msg": exc.sub_msg,
                "request_id": exc.request_id}  # fmt: skip
    if isinstance(exc, MessageRejected):
        return {"error_code": exc.error_code, "error_msg": exc.error_msg,
                "request_id": exc.request_id}  # fmt: skip
    return {"error": str(exc)}


async def send_one(client: AsyncClient, fields: dict[str, Any]) -> SendResult:
    return await client.send_mobile(**fields)


@dataclass
class FileReport:
    sent: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _event_fields(line: str) -> dict[str, Any]:
    fields = json.loads(line)
    if not isinstance(fields, dict):
        raise ValueError("a line must be a JSON object")
    unknown = set(fields) - EVENT_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return fields


async def send_file(
    client: AsyncClient, path: Path, *, concurrency: int, console: Console
) -> FileReport:
    """Send every line of ``path``, ``concurrency`` at a time, with a progress bar."""
    total = sum(1 for _ in _lines(path))
    report = FileReport()
    slots = asyncio.Semaphore(concurrency)
    progress = Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[failed]} failed"), console=console,
    )  # fmt: skip

    async def send_line(number: int, line: str, task: Any) -> None:
        try:
            fields = _event_fields(line)
            await send_one(client, fields)
            report.sent += 1
        except (ValueError, TypeError) as exc:
            report.failed.append({"line": number, "error": f"invalid line: {exc}"})
        except SDKError as exc:
            report.failed.append({"line": number, **describe_error(exc)})
        finally:
            progress.update(task, advance=1, failed=len(report.failed))
            slots.release()

    with progress:
        task = progress.add_task("send", total=total, failed=0)
        pending: set[asyncio.Task[None]] = set()
        for number, line in _lines(path):
            await slots.acquire()
            pending.add(asyncio.create_task(send_line(number, line, task)))
            pending = {t for t in pending if not t.done()}
        await asyncio.gather(*pending)
    report.failed.sort(key=lambda failure: int(failure["line"]))
    return report
