"""``iwork-mc db``: the database schema."""

from __future__ import annotations

import typer

from iwork_mc.cli import common

__all__ = ["db_cli"]

db_cli = typer.Typer(help="Manage the database schema.")


@db_cli.command("upgrade")
def db_upgrade(ctx: typer.Context, json_output: common.JsonFlag = False) -> None:
    """Apply pending schema migrations (creates the SQLite file if needed)."""
    settings = common.settings_from(ctx)
    applied = common.run_loop(
        common.with_store(settings, lambda store: store.migrate(), migrated=False)
    )
    if json_output:
        common.out.print_json(data={"applied": applied})
    elif applied:
        common.out.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        common.out.print("database is up to date")
