"""``iwork-mc``: run the message center, manage apps, send and look up messages.

Every command that prints data takes ``--json``.  Settings come from flags,
``IWORK_MC_*`` variables and an optional TOML file (see docs/settings.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from iwork_mc import __version__, cli_common, cli_messages, cli_optouts, cli_templates, devapp
from iwork_mc.apps import App, new_app_key, new_secret
from iwork_mc.config import ConfigError, Settings
from iwork_mc.logs import configure_logging
from iwork_mc.privacy import mask_phone, redact_url
from iwork_mc.store import create_store
from iwork_mc.store.base import AppExists, Store, StoreError
from iwork_mc.top import signing

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="iwork-mc: a self-hosted message center for alibaba.iwork.mc.msg.sendmobile.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
apps_cli = typer.Typer(help="Manage the apps (app_key + secret) allowed to call the gateway.")
db_cli = typer.Typer(help="Manage the database schema.")
app.add_typer(apps_cli, name="apps")
app.add_typer(db_cli, name="db")
app.add_typer(cli_templates.templates_cli, name="templates")
app.add_typer(cli_optouts.opt_outs_cli, name="opt-outs")
app.add_typer(cli_messages.messages_cli, name="messages")

out = cli_common.out
err = Console(stderr=True, soft_wrap=True)

JsonFlag = cli_common.JsonFlag


class SignMethodChoice(enum.StrEnum):
    MD5 = "md5"
    HMAC = "hmac"
    HMAC_SHA256 = "hmac-sha256"


def _settings(ctx: typer.Context, **flags: Any) -> Settings:
    overrides = {**ctx.obj["overrides"], **flags}
    try:
        settings = Settings.load(os.environ, overrides, ctx.obj["config"])
        configure_logging(settings.log_format, settings.log_level)
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _create_store(settings: Settings) -> Store:
    try:
        return create_store(settings.effective_database_url, **settings.store_options)
    except ValueError as exc:
        raise _fail(f"database_url: {exc}", 2) from None


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run ``work``, close it (pending migrations or not: see cli_common)."""
    store = _create_store(settings)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except StoreError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise _fail(f"store: {exc}{cause}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop where it exists: the gateway's hot path spends much of its time in the loop.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file.", envvar="IWORK_MC_CONFIG")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory [default: ./var].")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///path.db or postgresql://…")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="console or json.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    ctx.obj = {
        "config": config,
        "overrides": {
            "data_dir": data_dir,
            "database_url": database_url,
            "log_format": log_format,
            "log_level": log_level,
        },
    }


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


# -- database -----------------------------------------------------------------


@db_cli.command("upgrade")
def db_upgrade(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Apply pending schema migrations (creates the SQLite file if needed)."""
    settings = _settings(ctx)
    applied = _run(_with_store(settings, lambda store: store.migrate()))
    if json_output:
        out.print_json(data={"applied": applied})
    elif applied:
        out.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        out.print("database is up to date")


# -- apps ---------------------------------------------------------------------


def _app_view(app_: App, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "app_key": app_.app_key,
        "name": app_.name,
        "enabled": app_.enabled,
        "created_at_ms": app_.created_at_ms,
        "previous_secret_valid_until_ms": app_.previous_secret_expires_at_ms,
        "callback_url": app_.callback_url,
    }
    if with_secret:
        view["secret"] = app_.secret
    return view


def _print_app(app_: App, json_output: bool, *, with_secret: bool = False) -> None:
    view = _app_view(app_, with_secret=with_secret)
    if json_output:
        out.print_json(data=view)
        return
    for key, value in view.items():
        out.print(f"{key:32} {value}", highlight=False)
    if with_secret:
        err.print("The secret is shown once: store it now.")


@apps_cli.command("create")
def apps_create(ctx: typer.Context, name: str, json_output: JsonFlag = False) -> None:
    """Create an app and print its app_key and secret (the secret is shown only now)."""
    settings = _settings(ctx)

    async def work(store: Store) -> App:
        while True:
            candidate = App(
                app_key=new_app_key(), name=name, secret=new_secret(), enabled=True,
                created_at_ms=cli_common.now_ms(),
            )  # fmt: skip
            try:
                await store.insert_app(candidate)
                return candidate
            except AppExists:
                continue

    created = _run(_with_store(settings, work))
    _print_app(created, json_output, with_secret=True)


@apps_cli.command("list")
def apps_list(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List every app (never their secrets)."""
    settings = _settings(ctx)
    apps = _run(_with_store(settings, lambda store: store.list_apps()))
    if json_output:
        out.print_json(data=[_app_view(a) for a in apps])
        return
    table = Table("app_key", "name", "enabled", "created")
    for a in apps:
        created = cli_common.local_time(a.created_at_ms)
        table.add_row(a.app_key, a.name, "yes" if a.enabled else "no", created)
    out.print(table)


def _existing(app_: App | None, app_key: str) -> App:
    if app_ is None:
        raise _fail(f"no app with app_key {app_key}")
    return app_


@apps_cli.command("show")
def apps_show(ctx: typer.Context, app_key: str, json_output: JsonFlag = False) -> None:
    """Show one app (never its secret)."""
    settings = _settings(ctx)
    found = _existing(_run(_with_store(settings, lambda s: s.get_app(app_key))), app_key)
    _print_app(found, json_output)


@apps_cli.command("disable")
def apps_disable(ctx: typer.Context, app_key: str, json_output: JsonFlag = False) -> None:
    """Refuse calls from an app (code 11) until it is enabled again."""
    settings = _settings(ctx)
    found = _run(_with_store(settings, lambda s: s.set_app_enabled(app_key, False)))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("enable")
def apps_enable(ctx: typer.Context, app_key: str, json_output: JsonFlag = False) -> None:
    """Accept calls from an app again."""
    settings = _settings(ctx)
    found = _run(_with_store(settings, lambda s: s.set_app_enabled(app_key, True)))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("rotate-secret")
def apps_rotate_secret(
    ctx: typer.Context,
    app_key: str,
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="How long the old secret stays valid [default: secret_grace_s]."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Give an app a new secret; the old one stays valid for a grace period."""
    settings = _settings(ctx)
    grace = settings.secret_grace_s if grace_seconds is None else grace_seconds
    if grace < 0:
        raise _fail("--grace-seconds must not be negative", 2)
    valid_until = cli_common.now_ms() + grace * 1000
    rotated = _run(
        _with_store(settings, lambda s: s.rotate_secret(app_key, new_secret(), valid_until))
    )
    _print_app(_existing(rotated, app_key), json_output, with_secret=True)


@apps_cli.command("set-callback")
def apps_set_callback(
    ctx: typer.Context, app_key: str, url: str, json_output: JsonFlag = False
) -> None:
    """POST each status change of the app's messages to URL (http or https, a public host).

    Internal hosts are refused unless listed in the callback_allow_hosts setting.
    """
    settings = _settings(ctx)
    checked = cli_common.callback_url(url, settings.callback_allow_list)
    found = _run(cli_common.with_store(settings, lambda s: s.set_callback_url(app_key, checked)))
    _print_app(_existing(found, app_key), json_output)


@apps_cli.command("clear-callback")
def apps_clear_callback(ctx: typer.Context, app_key: str, json_output: JsonFlag = False) -> None:
    """Stop sending the app's status callbacks."""
    settings = _settings(ctx)
    found = _run(cli_common.with_store(settings, lambda s: s.set_callback_url(app_key, None)))
    _print_app(_existing(found, app_key), json_output)


# -- running ------------------------------------------------------------------


def _server(settings: Settings, store: Store, host: str, port: int, delivery: Any = None) -> Any:
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    from iwork_mc.gateway.app import create_app

    class GatewayServer(uvicorn.Server):
        # Signals are ours (see _serve): uvicorn's own handling re-raises the
        # signal after shutdown, which would skip the worker's drain.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        create_app(
            settings,
            store,
            channel_health=delivery.health if delivery is not None else None,
            channels_ready=delivery.channels_ready if delivery is not None else None,
        ),
        host=host,
        port=port,
        # uvicorn's access log prints query strings, which carry app keys,
        # signatures and (on GET) phone numbers; the gateway logs its own line.
        access_log=False,
        log_level="warning",
        # uvicorn's lines go to the root logger, which logs.py formats like ours.
        log_config=None,
        lifespan="off",
        http="httptools",
        loop="uvloop" if sys.platform != "win32" else "asyncio",
    )
    return GatewayServer(config)


def _worker(settings: Settings, store: Store, *, echo: bool) -> Any:
    from iwork_mc.worker import Worker

    channels: dict[str, Any] = {}
    for spec in settings.channel_specs:
        if spec.kind == "smpp":
            from iwork_mc.channels.smpp import SMPPChannel

            channels[spec.name] = SMPPChannel(settings.smpp_for(spec), store, name=spec.name)
        else:
            from iwork_mc.channels.sandbox import SandboxChannel

            channels[spec.name] = SandboxChannel(
                settings.data_dir / "sandbox", name=spec.name, echo=echo, store=store
            )
    return Worker(
        store,
        channels,
        routes=settings.effective_routes,
        concurrency=settings.worker_concurrency,
        lease_ms=int(settings.lease_s * 1000),
        poll_interval=settings.poll_interval_s,
        retry=settings.retry_policy,
        receipt_wait_ms=int(settings.receipt_wait_s * 1000),
        quiet=settings.quiet,
    )


def _callback_sender(settings: Settings, store: Store, delivery: Any) -> Any:
    from iwork_mc.callback_sender import CallbackSender
    from iwork_mc.callbacks import CALLBACK_RETRY

    return CallbackSender(
        store,
        worker_id=f"{delivery.worker_id}:callbacks",
        timeout_s=settings.callback_timeout_s,
        lease_ms=max(60_000, int(settings.callback_timeout_s * 2_000)),
        retry=dataclasses.replace(CALLBACK_RETRY, max_attempts=settings.callback_max_attempts),
        app_cache_ttl_s=settings.app_cache_ttl_s,
        allow=settings.callback_allow_list,
    )


async def _serve(
    settings: Settings, *, host: str, port: int, gateway: bool, worker: bool, echo: bool,
    dev_app: bool, reuse_port: bool = False,
) -> None:  # fmt: skip
    from iwork_mc import metrics, tracing

    # Before anything is counted: every process of this host adds to one /metrics.
    metrics.share_directory(settings.effective_metrics_dir)
    try:
        tracing.configure(settings.tracing_otlp_endpoint, settings.tracing_service_name)
    except tracing.TracingUnavailable as exc:
        raise _fail(str(exc), 2) from None
    store = _create_store(settings)
    await store.open()
    try:
        if dev_app:
            await store.migrate()
            dev = await devapp.ensure_dev_app(store, settings.data_dir, cli_common.now_ms())
            _print_banner(settings, host, port, dev)
        await cli_common.require_migrated(store)
        stop = asyncio.Event()
        delivery = _worker(settings, store, echo=echo) if worker else None
        server = _server(settings, store, host, port, delivery) if gateway else None

        def on_signal() -> None:
            # First SIGINT/SIGTERM: stop accepting, finish open requests, drain
            # the worker's batch.  A second one: stop without waiting.
            if stop.is_set() and server is not None:
                server.force_exit = True
            stop.set()
            if server is not None:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        tasks: list[asyncio.Task[None]] = []
        if delivery is not None:
            await delivery.open_channels()
            tasks.append(asyncio.create_task(delivery.serve(stop)))
            # Status callbacks go out from every worker process, leased like messages.
            tasks.append(
                asyncio.create_task(_callback_sender(settings, store, delivery).serve(stop))
            )
        if server is not None:
            await server.serve(sockets=[_listen(host, port)] if reuse_port else None)
        else:
            await stop.wait()
        stop.set()
        await asyncio.gather(*tasks)
        if delivery is not None:
            await delivery.close_channels()
    finally:
        await store.close()
        tracing.shutdown()


def _print_banner(settings: Settings, host: str, port: int, dev: devapp.DevApp) -> None:
    url = f"http://{host}:{port}/router/rest"
    out.print(f"iwork-mc {__version__} on http://{host}:{port}", highlight=False)
    out.print(f"  database   {redact_url(settings.effective_database_url)}", highlight=False)
    for spec in settings.channel_specs:
        where = (
            settings.data_dir / "sandbox" / "deliveries.jsonl"
            if spec.kind == "sandbox"
            else f"SMSC {settings.smpp_for(spec).host}:{settings.smpp_for(spec).port}"
        )
        out.print(f"  channel    {spec.name} ({spec.kind}) → {where}", highlight=False)
    out.print(f"  dev app    app_key={dev.app_key}  secret={dev.secret}", highlight=False)
    minutes = settings.timestamp_tolerance_s // 60
    out.print(f"Send the seed's example request (signed now, valid for {minutes} minutes;")
    out.print("`iwork-mc curl-example` prints a fresh one):")
    print(devapp.curl_line(url, dev.app_key, dev.secret), flush=True)


HostOption = Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")]


@app.command()
def run(
    ctx: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    dev_app: Annotated[
        bool, typer.Option(help="Migrate, create a dev app if none, print it and a curl line.")
    ] = False,
    echo: Annotated[bool, typer.Option(help="Print each sandbox delivery.")] = True,
) -> None:
    """Run the gateway and a worker in one process."""
    settings = _settings(ctx, host=host, port=port)
    _run(_serve(settings, host=settings.host, port=settings.port, gateway=True, worker=True,
                echo=echo, dev_app=dev_app))  # fmt: skip


@app.command()
def serve(
    ctx: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    processes: Annotated[
        int, typer.Option(min=1, help="Gateway processes sharing the port (SO_REUSEPORT).")
    ] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run the gateway only (accepts messages; workers deliver them)."""
    settings = _settings(ctx, host=host, port=port)
    if processes > 1:
        raise typer.Exit(_supervise(settings, processes))
    _run(_serve(settings, host=settings.host, port=settings.port, gateway=True, worker=False,
                echo=False, dev_app=False, reuse_port=reuse_port))  # fmt: skip


def _listen(host: str, port: int) -> socket.socket:
    # Each gateway process binds the same port; the kernel spreads connections.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _supervise(settings: Settings, count: int) -> int:
    """Run ``count`` gateway processes on one port; stop them all together."""
    # The children get the parent's resolved settings through the environment.
    env = {**os.environ, **settings.as_environment()}
    command = [sys.executable, "-m", "iwork_mc", "serve", "--reuse-port"]
    children = [subprocess.Popen(command, env=env) for _ in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                os.kill(child.pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)


@app.command()
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Messages sent at once.")] = None,
    echo: Annotated[bool, typer.Option(help="Print each sandbox delivery.")] = False,
) -> None:
    """Run a worker only (delivers what gateways accepted)."""
    settings = _settings(ctx, worker_concurrency=concurrency)
    _run(_serve(settings, host="", port=0, gateway=False, worker=True, echo=echo,
                dev_app=False))  # fmt: skip


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


@app.command("curl-example")
def curl_example(
    ctx: typer.Context,
    url: UrlOption = None,
    app_key: AppKeyOption = None,
    secret: SecretOption = None,
) -> None:
    """Print a freshly signed curl line for the seed's example request."""
    settings = _settings(ctx)
    url = url or _gateway_url(settings)
    if app_key is None or secret is None:
        saved = devapp.load_saved(settings.data_dir / "dev-app.json")
        if saved is None:
            raise _fail("give --app-key and --secret, or run `make run` once to create a dev app")
        app_key, secret = saved
    print(devapp.curl_line(url, app_key, secret))


def _gateway_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.port}/router/rest"


# -- messages -----------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    msg_key: str,
    app_key: Annotated[str, typer.Option(envvar="IWORK_MC_APP_KEY", help="The sending app.")],
    json_output: JsonFlag = False,
) -> None:
    """Show a message's status and timeline, looked up by msg_key in the local store."""
    settings = _settings(ctx)

    async def work(store: Store) -> tuple[Any, list[Any]] | None:
        message = await store.get_message(app_key, msg_key)
        if message is None:
            return None
        return message, await store.timeline(message.id)

    found = _run(_with_store(settings, work))
    if found is None:
        raise _fail(f"no message with msg_key {msg_key} for app {app_key}")
    message, timeline = found
    view = {
        "msg_key": message.msg_key,
        "app_key": message.app_key,
        "status": str(message.status),
        "receiver": mask_phone(message.event.mobile_receiver),
        "template": message.template or "(default)",
        "text": message.text,
        "encoding": f"{message.encoding}, {message.segments} segment(s)",
        "urgent": message.urgent,
        "attempts": message.attempts,
        "route_step": message.route_step,
        "channel": message.channel,
        "channel_ref": message.channel_ref,
        "last_error": message.last_error,
        "accepted_at_ms": message.accepted_at_ms,
        "expires_at_ms": message.expires_at_ms,
        "updated_at_ms": message.updated_at_ms,
        "timeline": [
            {"at_ms": e.at_ms, "kind": e.kind, "status": str(e.status), "detail": e.detail}
            for e in timeline
        ],
    }
    if json_output:
        out.print_json(data=view)
        return
    for key, value in view.items():
        if key != "timeline":
            out.print(f"{key:16} {value}", highlight=False)
    table = Table("at", "event", "status", "detail")
    for entry in timeline:
        table.add_row(
            cli_common.local_time(entry.at_ms),
            entry.kind,
            str(entry.status),
            json.dumps(entry.detail, ensure_ascii=False),
        )
    out.print(table)


@app.command()
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
    event_time_millis: Annotated[int | None, typer.Option(help="[default: now]")] = None,
    resource_id: Text = None,
    resource_url: Text = None,
    file: Annotated[Path | None, typer.Option(help="JSON lines, one event per line.")] = None,
    concurrency: Annotated[int, typer.Option(help="Calls in flight with --file.")] = 8,
    json_output: JsonFlag = False,
) -> None:
    """Send a signed alibaba.iwork.mc.msg.sendmobile call (one event, or --file)."""
    from iwork_mc import cli_send
    from iwork_mc.client import AsyncClient, SDKError

    settings = _settings(ctx)
    if app_key is None or secret is None:
        saved = devapp.load_saved(settings.data_dir / "dev-app.json")
        if saved is None:
            raise _fail("give --app-key and --secret (or IWORK_MC_APP_KEY / IWORK_MC_SECRET)", 2)
        app_key, secret = saved

    async def work() -> int:
        method = next(m for m in signing.SIGN_METHODS if m == sign_method.value)
        target = url or _gateway_url(settings)
        async with AsyncClient(target, app_key, secret, sign_method=method) as client:
            if file is not None:
                report = await cli_send.send_file(
                    client, file, concurrency=concurrency, console=err
                )
                summary = {"sent": report.sent, "failed": report.failed}
                if json_output:
                    out.print_json(data=summary)
                else:
                    out.print(f"sent {report.sent}, failed {len(report.failed)}")
                    for failure in report.failed[:20]:
                        out.print(f"  line {failure.pop('line')}: {failure}", highlight=False)
                return 1 if report.failed else 0
            fields = {"mobile_receiver": mobile_receiver, "json_data": json_data, "source": source,
                      "action": action, "sender": sender}  # fmt: skip
            missing = [f"--{k.replace('_', '-')}" for k, v in fields.items() if v is None]
            if missing:
                raise _fail(f"missing {', '.join(missing)} (or give --file)", 2)
            try:
                result = await cli_send.send_one(client, {
                    **fields, "event_type": event_type, "msg_key": msg_key,
                    "event_time_millis": event_time_millis, "resource_id": resource_id,
                    "resource_url": resource_url,
                })  # fmt: skip
            except SDKError as exc:
                if json_output:
                    out.print_json(data={"accepted": False, **cli_send.describe_error(exc)})
                else:
                    err.print(f"[red]not accepted:[/red] {exc}", highlight=False)
                return 1
            if json_output:
                out.print_json(data={"accepted": True, "msg_key": result.msg_key,
                                     "request_id": result.request_id})  # fmt: skip
            else:
                out.print(f"accepted msg_key={result.msg_key} request_id={result.request_id}",
                          highlight=False)  # fmt: skip
            return 0

    code = asyncio.run(work())
    if code:
        raise typer.Exit(code)


def main() -> None:
    app()
