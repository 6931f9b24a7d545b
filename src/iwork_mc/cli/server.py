"""``iwork-mc run``, ``serve`` and ``worker``: the long-running processes.

A gateway binds its listening socket before anything else happens (store,
channels, banner): a busy port is a one-line error and exit 1 before any
output that suggests the server is up, and before an SMPP channel starts
sessions that would have to be torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from iwork_mc import __version__
from iwork_mc.cli import common
from iwork_mc.privacy import redact_url

if TYPE_CHECKING:
    from iwork_mc.config import ChannelSpec, Settings
    from iwork_mc.devapp import DevApp
    from iwork_mc.store.base import Store

__all__ = ["listen", "run", "serve", "worker"]

HostOption = Annotated[
    str | None, typer.Option(help="Address to listen on [default: 127.0.0.1; IWORK_MC_HOST].")
]
PortOption = Annotated[
    int | None, typer.Option(help="Port to listen on [default: 8080; IWORK_MC_PORT].")
]


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port``; exits 1 with a one-line reason if it cannot be.

    ``reuse_port``: several gateway processes bind the same port and the kernel
    spreads connections between them (``serve --processes``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = (
            "the port is in use by another process"
            if exc.errno == errno.EADDRINUSE
            else (exc.strerror or str(exc)).lower()
        )
        raise common.fail(
            f"cannot listen on {host}:{port}: {reason}; "
            "choose another port with --port or IWORK_MC_PORT"
        ) from None
    return sock


def _server(settings: Settings, store: Store, delivery: Any = None) -> Any:
    import uvicorn

    from iwork_mc.gateway.app import create_app
    from iwork_mc.gateway.server import server_config

    class GatewayServer(uvicorn.Server):
        # Signals are ours (see _serve): uvicorn's own handling re-raises the
        # signal after shutdown, which would skip the worker's drain.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    # The socket is bound by listen() and handed to serve(): no host or port here.
    app = create_app(
        settings,
        store,
        channel_health=delivery.health if delivery is not None else None,
        channel_breakers=delivery.breaker_states if delivery is not None else None,
        channels_ready=delivery.channels_ready if delivery is not None else None,
    )
    config = server_config(app, settings)
    return GatewayServer(config)


def _worker(settings: Settings, store: Store, *, echo: bool) -> Any:
    from iwork_mc.worker import Worker

    channels: dict[str, Any] = {}
    for spec in settings.channel_specs:
        if spec.kind == "smpp":
            from iwork_mc.channels.smpp import SMPPChannel

            channels[spec.name] = SMPPChannel(settings.smpp_for(spec), store, name=spec.name)
        elif spec.kind == "apprise":
            from iwork_mc.channels.apprise import AppriseChannel
            from iwork_mc.channels.apprise_config import AppriseConfig

            config = AppriseConfig.from_options(dict(spec.options))
            channels[spec.name] = AppriseChannel(config, name=spec.name)
        elif spec.kind == "webhook":
            from iwork_mc.channels.webhook import WebhookChannel
            from iwork_mc.channels.webhook_config import WebhookConfig

            hook = WebhookConfig.from_options(dict(spec.options))
            channels[spec.name] = WebhookChannel(hook, name=spec.name)
        elif spec.kind in ("aliyun_sms", "tencent_sms"):
            from iwork_mc.channels import providers

            channels[spec.name] = providers.build(spec.kind, spec.name, dict(spec.options), store)
        else:
            from iwork_mc.channels.sandbox import SandboxChannel

            channels[spec.name] = SandboxChannel(
                settings.data_dir / "sandbox", name=spec.name, echo=echo, store=store,
                max_bytes=settings.sandbox_max_bytes, backups=settings.sandbox_backups,
            )  # fmt: skip
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
        retention=settings.retention,
        breaker=settings.breaker_policy,
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
    settings: Settings, *, listener: socket.socket | None, worker: bool, echo: bool,
    dev_app: bool,
) -> None:  # fmt: skip
    """Run a gateway on ``listener`` (if any) and a worker (if ``worker``) until a signal."""
    from iwork_mc import metrics, tracing

    # Before anything is counted: every process of this host adds to one /metrics.
    metrics.share_directory(settings.effective_metrics_dir)
    try:
        tracing.configure(settings.tracing_otlp_endpoint, settings.tracing_service_name)
    except tracing.TracingUnavailable as exc:
        raise common.fail(str(exc), 2) from None
    store = common.open_store(settings)
    await store.open()
    try:
        if dev_app:
            from iwork_mc import devapp

            await store.migrate()
            dev = await devapp.ensure_dev_app(store, settings.data_dir, common.now_ms())
            _print_banner(settings, dev)
        await common.require_migrated(store)
        stop = asyncio.Event()
        delivery = _worker(settings, store, echo=echo) if worker else None
        server = _server(settings, store, delivery) if listener is not None else None

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
        try:
            if delivery is not None:
                await delivery.open_channels()
                tasks.append(asyncio.create_task(delivery.serve(stop)))
                # Status callbacks go out from every worker process, leased like messages.
                tasks.append(
                    asyncio.create_task(_callback_sender(settings, store, delivery).serve(stop))
                )
            if server is not None:
                await server.serve(sockets=[listener])
            else:
                await stop.wait()
        finally:
            # However the gateway ended, the worker drains and its channels close
            # before the store does: nothing is left running to hang the exit.
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if delivery is not None:
                await delivery.close_channels()
    finally:
        await store.close()
        tracing.shutdown()


def _destination(settings: Settings, spec: ChannelSpec) -> str:
    """Where a channel delivers, for the banner: no secret, no token, no path."""
    if spec.kind == "sandbox":
        return str(settings.data_dir / "sandbox" / "deliveries.jsonl")
    if spec.kind == "smpp":
        smpp = settings.smpp_for(spec)
        return f"SMSC {smpp.host}:{smpp.port}"
    if spec.kind == "apprise":
        from iwork_mc.channels.apprise_config import AppriseConfig

        return AppriseConfig.from_options(dict(spec.options)).display_url()
    if spec.kind == "webhook":
        from iwork_mc.channels.webhook_config import WebhookConfig

        return WebhookConfig.from_options(dict(spec.options)).display_url
    if spec.kind in ("aliyun_sms", "tencent_sms"):
        # The API host only: the credentials are options too.
        return str(dict(spec.options).get("endpoint") or "the provider's public endpoint")
    return spec.kind


def _print_banner(settings: Settings, dev: DevApp) -> None:
    from iwork_mc import devapp

    base = f"http://{settings.host}:{settings.port}"
    common.out.print(f"iwork-mc {__version__} on {base}", highlight=False)
    common.out.print(f"  database   {redact_url(settings.effective_database_url)}", highlight=False)
    for spec in settings.channel_specs:
        where = _destination(settings, spec)
        common.out.print(f"  channel    {spec.name} ({spec.kind}) → {where}", highlight=False)
    common.out.print(f"  dev app    app_key={dev.app_key}  secret={dev.secret}", highlight=False)
    common.out.print(
        f"  console    {base}/console/ (`iwork-mc operators create NAME` first)", highlight=False
    )
    minutes = settings.timestamp_tolerance_s // 60
    common.out.print(f"Send the seed's example request (signed now, valid for {minutes} minutes;")
    common.out.print("`iwork-mc curl-example` prints a fresh one):")
    print(devapp.curl_line(f"{base}/router/rest", dev.app_key, dev.secret), flush=True)


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
    settings = common.settings_from(ctx, host=host, port=port)
    listener = listen(settings.host, settings.port)
    common.run_loop(_serve(settings, listener=listener, worker=True, echo=echo, dev_app=dev_app))


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
    settings = common.settings_from(ctx, host=host, port=port)
    if processes > 1:
        # Bound once here first, so that a busy port is one error, not one per child.
        listen(settings.host, settings.port, reuse_port=True).close()
        raise typer.Exit(_supervise(settings, processes))
    listener = listen(settings.host, settings.port, reuse_port=reuse_port)
    common.run_loop(_serve(settings, listener=listener, worker=False, echo=False, dev_app=False))


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


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Messages sent at once.")] = None,
    echo: Annotated[bool, typer.Option(help="Print each sandbox delivery.")] = False,
) -> None:
    """Run a worker only (delivers what gateways accepted)."""
    settings = common.settings_from(ctx, worker_concurrency=concurrency)
    common.run_loop(_serve(settings, listener=None, worker=True, echo=echo, dev_app=False))
