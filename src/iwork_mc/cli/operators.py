"""``iwork-mc operators``: the accounts that may sign in to the web console (``/console``)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from iwork_mc import operators
from iwork_mc.cli import common
from iwork_mc.operators import InvalidOperator, Operator
from iwork_mc.store.base import OperatorExists, Store

__all__ = ["operators_cli"]

operators_cli = typer.Typer(help="Manage the operators who may sign in to the web console.")


def _view(operator: Operator) -> dict[str, Any]:
    return {
        "name": operator.name,
        "created_at_ms": operator.created_at_ms,
        "last_sign_in_ms": operator.last_sign_in_ms,
        "locked_until_ms": operator.locked_until_ms or None,
    }


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; a trailing newline (echo, a here-string) is not part of the password.
        return sys.stdin.readline(operators.MAX_PASSWORD + 2).rstrip("\r\n")
    if not sys.stdin.isatty():
        raise common.fail("no terminal to ask for a password on: use --password-stdin", 2)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@operators_cli.command("create")
def operators_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="1-64 of a-z 0-9 . _ -")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    json_output: common.JsonFlag = False,
) -> None:
    """Create an operator; the password is asked for twice (or read from stdin)."""
    try:
        operators.check_name(name)
        password_hash = operators.hash_password(_read_password(password_stdin))
    except InvalidOperator as exc:
        raise common.fail(str(exc), 2) from None
    settings = common.settings_from(ctx)
    operator = Operator(name=name, password_hash=password_hash, created_at_ms=common.now_ms())

    async def work(store: Store) -> None:
        try:
            await store.insert_operator(operator)
        except OperatorExists:
            raise common.fail(f"an operator named {name} exists") from None

    common.run(settings, work)
    if json_output:
        common.out.print_json(data=_view(operator))
    else:
        common.out.print(f"created operator {name}: sign in at /console", highlight=False)


@operators_cli.command("list")
def operators_list(ctx: typer.Context, json_output: common.JsonFlag = False) -> None:
    """List the operators (never their password hashes)."""
    settings = common.settings_from(ctx)
    found = common.run(settings, lambda store: store.list_operators())
    if json_output:
        common.out.print_json(data=[_view(operator) for operator in found])
        return
    table = Table("name", "created", "last sign-in", "locked until")
    for operator in found:
        table.add_row(
            operator.name,
            common.local_time(operator.created_at_ms),
            common.local_time(operator.last_sign_in_ms),
            common.local_time(operator.locked_until_ms or None),
        )
    common.out.print(table)
