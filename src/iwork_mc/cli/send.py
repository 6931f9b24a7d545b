"""``iwork-mc send`` and ``curl-example``: signed calls from the command line.

``send`` goes through the Python SDK (:class:`iwork_mc.client.AsyncClient`),
so what it sends is exactly what an application using the SDK sends, retries
included.  Each line of ``--file`` is one JSON object with the event's fields
(``json_data`` may be an object or its JSON text).

Re-sending must be safe.  ``msg_key`` defaults to a new UUID and
``event_time_millis`` to now; but an event that names its ``msg_key`` and no
time is sent with ``event_time_millis`` 0 ("not given"), not the clock.  The
gateway compares the whole event, time included, with what it stored under
that ``msg_key``: a clock reading would make every re-run a different event
(``MSG_KEY_CONFLICT``), where a fixed value makes it the same event, answered
as a repeat.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from iwork_mc.cli import common
from iwork_mc.top import signing

if TYPE_CHECKING:
    from iwork_mc.client import AsyncClient, SDKError, SendResult

# The SDK (httpx) is imported where it is used: only these commands need it, and every
# other command, `--help` included, starts faster without it.

__all__ = [
    "EVENT_FIELDS",
    "UNSET_EVENT_TIME",
    "Failure",
    "FileReport",
    "count_lines",
    "curl_example",
    "describe_error",
    "send",
    "send_file",
]

#: The keyword arguments of ``send_mobile``: the fields a line of ``--file`` may hold.
EVENT_FIELDS = frozenset(
    {
        "msg_key", "event_time_millis", "source", "action", "mobile_receiver", "event_type",
        "json_data", "resource_id", "resource_url", "sender",
    }
)  # fmt: skip
#: The event time sent for an event that gives its msg_key but no time (see above).
UNSET_EVENT_TIME = 0


class SignMethodChoice(enum.StrEnum):
    MD5 = "md5"
    HMAC = "hmac"
    HMAC_SHA256 = "hmac-sha256"


def with_stable_time(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with ``event_time_millis`` fixed when a msg_key is given without one."""
    if fields.get("msg_key") is not None and fields.get("event_time_millis") is None:
        return {**fields, "event_time_millis": UNSET_EVENT_TIME}
    return fields


def describe_error(exc: SDKError) -> dict[str, Any]:
    """A JSON-ready description of a failed send."""
    from iwork_mc.client import MessageRejected, TopApiError

    if isinstance(exc, TopApiError):
        return {"code": exc.code, "msg": exc.msg, "sub_code": exc.sub_code, "sub_msg": exc.sub_msg,
                "request_id": exc.request_id}  # fmt: skip
    if isinstance(exc, MessageRejected):
        return {"error_code": exc.error_code, "error_msg": exc.error_msg,
                "request_id": exc.request_id}  # fmt: skip
    return {"error": str(exc)}


@dataclass(frozen=True)
class Failure:
    """One line of ``--file`` that was not accepted."""

    line: int
    msg_key: str | None
    #: The most specific code: TOP's sub_code (or code), the business error_code, or
    #: ``invalid-line`` / ``transport``.
    code: str
    message: str
    #: The full answer, for ``--json``.
    detail: dict[str, Any]

    @classmethod
    def of(cls, line: int, msg_key: str | None, exc: SDKError) -> Failure:
        from iwork_mc.client import MessageRejected, TopApiError

        if isinstance(exc, TopApiError):
            code, message = exc.sub_code or str(exc.code), exc.sub_msg or exc.msg
        elif isinstance(exc, MessageRejected):
            code, message = exc.error_code, exc.error_msg
        else:
            code, message = "transport", str(exc)
        return cls(line, msg_key, code, message, describe_error(exc))

    def text(self) -> str:
        return f"line {self.line}  msg_key={self.msg_key or '-'}  {self.code}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "msg_key": self.msg_key, **self.detail}


@dataclass
class FileReport:
    sent: int = 0
    failed: list[Failure] = field(default_factory=list)


def count_lines(path: Path) -> int:
    """How many events ``path`` holds; exits 2 if it cannot be read as UTF-8 text."""
    try:
        return sum(1 for _ in _lines(path))
    except UnicodeDecodeError:
        raise common.fail(f"--file {path}: not UTF-8 text; save it as UTF-8", 2) from None
    except OSError as exc:
        raise common.fail(f"--file {path}: {exc.strerror or exc}", 2) from None


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
    return with_stable_time(fields)


async def send_file(
    client: AsyncClient, path: Path, *, total: int, concurrency: int, console: Console
) -> FileReport:
    """Send every line of ``path``, ``concurrency`` at a time, with a progress bar."""
    from iwork_mc.client import SDKError

    report = FileReport()
    slots = asyncio.Semaphore(concurrency)
    progress = Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[failed]} failed"), console=console,
    )  # fmt: skip

    async def send_line(number: int, line: str, task: Any) -> None:
        msg_key: str | None = None
        try:
            fields = _event_fields(line)
            msg_key = None if fields.get("msg_key") is None else str(fields["msg_key"])
            await client.send_mobile(**fields)
            report.sent += 1
        except (ValueError, TypeError) as exc:
            detail = {"error": f"invalid line: {exc}"}
            report.failed.append(Failure(number, msg_key, "invalid-line", str(exc), detail))
        except SDKError as exc:
            report.failed.append(Failure.of(number, msg_key, exc))
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
    report.failed.sort(key=lambda failure: failure.line)
    return report


UrlOption = Annotated[
    str | None,
    typer.Option(envvar="IWORK_MC_URL", help="The /router/rest URL [default: from host/port]."),
]
AppKeyOption = Annotated[str | None, typer.Option(envvar="IWORK_MC_APP_KEY")]
SecretOption = Annotated[
    str | None,
    typer.Option(envvar="IWORK_MC_SECRET", help="Prefer the env var: flags show in `ps`."),
]
Text = Annotated[str | None, typer.Option()]


def curl_example(
    ctx: typer.Context,
    url: UrlOption = None,
    app_key: AppKeyOption = None,
    secret: SecretOption = None,
) -> None:
    """Print a freshly signed curl line for the seed's example request."""
    from iwork_mc import devapp

    settings = common.settings_from(ctx)
    target = common.gateway_url(settings, url)
    app_key, secret = common.credentials(settings, app_key, secret)
    print(devapp.curl_line(target, app_key, secret))


def send(
    ctx: typer.Context,
    url: UrlOption = None,
    app_key: AppKeyOption = None,
    secret: SecretOption = None,
    sign_method: Annotated[
        SignMethodChoice, typer.Option(case_sensitive=False)
    ] = SignMethodChoice.HMAC_SHA256,
    mobile_receiver: Annotated[str | None, typer.Option(help="e.g. 13888888888")] = None,
    json_data: Annotated[str | None, typer.Option(help='e.g. {"name":"张三"}')] = None,
    source: Text = None,
    action: Text = None,
    sender: Annotated[int | None, typer.Option()] = None,
    event_type: Annotated[str, typer.Option()] = "mobile_receiver",
    msg_key: Annotated[str | None, typer.Option(help="[default: a new UUID]")] = None,
    event_time_millis: Annotated[
        int | None, typer.Option(help="[default: now; 0 when --msg-key is given]")
    ] = None,
    resource_id: Text = None,
    resource_url: Text = None,
    file: Annotated[Path | None, typer.Option(help="JSON lines, one event per line.")] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Calls in flight with --file.")
    ] = 8,
    json_output: common.JsonFlag = False,
) -> None:
    """Send a signed alibaba.iwork.mc.msg.sendmobile call (one event, or --file)."""
    from iwork_mc.client import AsyncClient, SDKError

    settings = common.settings_from(ctx)
    target = common.gateway_url(settings, url)
    app_key, secret = common.credentials(settings, app_key, secret)
    method = next(m for m in signing.SIGN_METHODS if m == sign_method.value)
    if file is not None:
        total = count_lines(file)
        code = asyncio.run(
            _send_file(target, app_key, secret, method, file, total, concurrency, json_output)
        )
        raise typer.Exit(code)
    fields = {"mobile_receiver": mobile_receiver, "json_data": json_data, "source": source,
              "action": action, "sender": sender}  # fmt: skip
    missing = [f"--{k.replace('_', '-')}" for k, v in fields.items() if v is None]
    if missing:
        raise common.fail(f"missing {', '.join(missing)} (or give --file)", 2)
    event = with_stable_time({
        **fields, "event_type": event_type, "msg_key": msg_key,
        "event_time_millis": event_time_millis, "resource_id": resource_id,
        "resource_url": resource_url,
    })  # fmt: skip

    async def send_one() -> SendResult:
        async with AsyncClient(target, app_key, secret, sign_method=method) as client:
            return await client.send_mobile(**event)

    try:
        result = asyncio.run(send_one())
    except SDKError as exc:
        if json_output:
            common.out.print_json(data={"accepted": False, **describe_error(exc)})
        else:
            common.err.print(f"[red]not accepted:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if json_output:
        common.out.print_json(data={"accepted": True, "msg_key": result.msg_key,
                                    "request_id": result.request_id})  # fmt: skip
    else:
        common.out.print(f"accepted msg_key={result.msg_key} request_id={result.request_id}",
                         highlight=False)  # fmt: skip


async def _send_file(
    url: str, app_key: str, secret: str, method: signing.SignMethod, file: Path, total: int,
    concurrency: int, json_output: bool,
) -> int:  # fmt: skip
    from iwork_mc.client import AsyncClient

    async with AsyncClient(url, app_key, secret, sign_method=method) as client:
        report = await send_file(
            client, file, total=total, concurrency=concurrency, console=common.err
        )
    if json_output:
        common.out.print_json(
            data={"sent": report.sent, "failed": [f.as_json() for f in report.failed]}
        )
    else:
        common.out.print(f"sent {report.sent}, failed {len(report.failed)}")
        for failure in report.failed[:20]:
            common.out.print(f"  {failure.text()}", highlight=False, markup=False)
        if len(report.failed) > 20:
            common.out.print(f"  … and {len(report.failed) - 20} more (--json lists them all)")
    return 1 if report.failed else 0
