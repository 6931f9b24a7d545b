"""``iwork-mc``: run the message center, manage apps, send and look up messages.

Every command that prints data takes ``--json``.  Settings come from flags,
``IWORK_MC_*`` variables and an optional TOML file (see docs/settings.md).

The package root only assembles the commands; each group lives in its own
module, and what they share is :mod:`iwork_mc.cli.common`, which imports
nothing back from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iwork_mc import __version__
from iwork_mc.cli import audit, common, send, server, status
from iwork_mc.cli.apps import apps_cli
from iwork_mc.cli.db import db_cli
from iwork_mc.cli.messages import messages_cli
from iwork_mc.cli.optouts import opt_outs_cli
from iwork_mc.cli.templates import templates_cli

__all__ = ["app", "main"]

app = typer.Typer(
    help="iwork-mc: a self-hosted message center for alibaba.iwork.mc.msg.sendmobile.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
app.add_typer(apps_cli, name="apps")
app.add_typer(db_cli, name="db")
app.add_typer(templates_cli, name="templates")
app.add_typer(opt_outs_cli, name="opt-outs")
app.add_typer(messages_cli, name="messages")
app.command()(server.run)
app.command()(server.serve)
app.command()(server.worker)
app.command()(send.send)
app.command("curl-example")(send.curl_example)
app.command()(status.status)
app.command("audit")(audit.audit_log)
messages_cli.command("show")(status.status)


def _print_version(wanted: bool) -> None:
    if wanted:
        common.out.print(__version__)
        raise typer.Exit()


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
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
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
    common.out.print(__version__)


def main() -> None:
    app()
