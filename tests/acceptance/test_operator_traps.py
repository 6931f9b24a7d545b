"""Operator traps: what a newcomer's ordinary mistakes get from `iwork-mc`, run as a subprocess.

Each mistake is answered with one ``error:`` line and a clear exit status (1: not
possible now, 2: bad input), never a traceback, a hang or a silent wrong action.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from iwork_mc import __version__

from processes import Server, cli, free_port, start

SMSC_NOBODY_ANSWERS = {"IWORK_MC_CHANNEL": "smpp", "IWORK_MC_SMPP_HOST": "127.0.0.1"}


def one_error_line(result: object, *needles: str) -> str:
    """The single ``error:`` line on stderr, checked to contain each of ``needles``."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert 1 == len(lines), stderr
    assert lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process (this test) is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("channel", ["sandbox", "smpp"])
def test_run_on_a_busy_port_is_one_error_before_any_banner(
    tmp_path: Path, busy_port: int, channel: str
) -> None:
    """`run --dev-app` on a busy port prints no banner or curl line, says which port, exits 1."""
    env = (
        {**SMSC_NOBODY_ANSWERS, "IWORK_MC_SMPP_PORT": str(free_port())} if channel == "smpp" else {}
    )
    began = time.monotonic()
    result = cli(
        tmp_path, "run", "--dev-app", "--port", str(busy_port), env=env, check=False, timeout=30
    )
    assert time.monotonic() - began < 20
    assert 1 == result.returncode
    one_error_line(result, f"127.0.0.1:{busy_port}", "IWORK_MC_PORT", "--port")
    assert "curl" not in result.stdout and "dev app" not in result.stdout


def test_sigterm_stops_run_with_an_smpp_channel_that_never_binds(
    tmp_path: Path, servers: list[Server]
) -> None:
    """SIGTERM ends `run` promptly even while its SMPP sessions keep failing to connect."""
    cli(tmp_path, "db", "upgrade")
    server = start(
        tmp_path, "run", env={**SMSC_NOBODY_ANSWERS, "IWORK_MC_SMPP_PORT": str(free_port())}
    )
    servers.append(server)
    server.wait_ready()
    began = time.monotonic()
    server.kill()
    assert time.monotonic() - began < 15
    assert 0 == server.process.returncode


@pytest.mark.parametrize(
    "env",
    [
        {"IWORK_MC_APP_KEY": "12345678"},
        {"IWORK_MC_SECRET": "0" * 32},
    ],
    ids=["app-key-only", "secret-only"],
)
def test_send_refuses_half_given_credentials(tmp_path: Path, env: dict[str, str]) -> None:
    """With a dev app saved, one of app key / secret alone is refused, not sent as the dev app."""
    (tmp_path / "dev-app.json").write_text(
        json.dumps({"app_key": "87654321", "secret": "1" * 32}), encoding="utf-8"
    )
    result = cli(
        tmp_path, "send", "--url", f"http://127.0.0.1:{free_port()}/router/rest",
        "--mobile-receiver", "13888888888", "--json-data", "{}", "--source", "s",
        "--action", "a", "--sender", "1", env=env, check=False,
    )  # fmt: skip
    assert 2 == result.returncode
    one_error_line(result, "only the", "or neither for the dev app")


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"IWORK_MC_SMPP_REGISTERED_DELIVERY": "maybe"}, "setting smpp_registered_delivery:"),
        ({"IWORK_MC_WORKER_CONCURRENCY": "0"}, "setting worker_concurrency: must be at least 1"),
        ({"IWORK_MC_LEASE_S": "-1"}, "setting lease_s: must be more than 0"),
        ({"IWORK_MC_PORT": "70000"}, "setting port: must be at most 65535"),
        ({"IWORK_MC_TIMEZONE": "Mars/Olympus"}, "setting timezone: 'Mars/Olympus' is an unknown"),
    ],
    ids=["boolean", "concurrency", "lease", "port", "timezone"],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    """Bad values are refused by name when any command loads its settings."""
    result = cli(tmp_path, "apps", "list", env=env, check=False)
    assert 2 == result.returncode
    one_error_line(result, setting)


def test_send_file_that_cannot_be_read(tmp_path: Path) -> None:
    """A missing file, a directory and a non-UTF-8 file are refused before anything is sent."""
    env = {"IWORK_MC_APP_KEY": "12345678", "IWORK_MC_SECRET": "0" * 32}
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"json_data": "café"}\n'.encode("latin-1"))
    for path, reason in [
        (tmp_path / "missing.jsonl", "No such file or directory"),
        (tmp_path, "Is a directory"),
        (latin1, "not UTF-8 text"),
    ]:
        result = cli(tmp_path, "send", "--file", str(path), env=env, check=False)
        assert 2 == result.returncode
        one_error_line(result, f"--file {path}: {reason}")


def test_send_url_without_a_scheme(tmp_path: Path) -> None:
    """`--url 127.0.0.1:8080` is refused with the URL written as it should be."""
    env = {"IWORK_MC_APP_KEY": "12345678", "IWORK_MC_SECRET": "0" * 32}
    result = cli(
        tmp_path, "send", "--url", "127.0.0.1:8080", "--mobile-receiver", "13888888888",
        "--json-data", "{}", "--source", "s", "--action", "a", "--sender", "1", env=env,
        check=False,
    )  # fmt: skip
    assert 2 == result.returncode
    one_error_line(result, "'127.0.0.1:8080' is not an http(s) URL", "http://127.0.0.1:8080/")


@pytest.mark.parametrize(
    "command",
    [("apps", "list"), ("apps", "create", "x"), ("status", "visit-42", "--app-key", "12345678")],
    ids=["apps-list", "apps-create", "status"],
)
def test_store_commands_on_an_unmigrated_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Before `db upgrade`, store commands say to run it (as `run` does), not `no such table`."""
    result = cli(tmp_path, *command, check=False)
    assert 1 == result.returncode
    one_error_line(result, "run `iwork-mc db upgrade`")


def test_a_postgresql_role_that_does_not_exist(tmp_path: Path) -> None:
    """A wrong role is reported once, as a refused login, without waiting for a pool timeout."""
    dsn = os.environ.get("IWORK_MC_TEST_PG_DSN")
    if not dsn:
        pytest.skip("IWORK_MC_TEST_PG_DSN is not set; PostgreSQL tests need a server")
    parts = urlsplit(dsn)
    netloc = f"iwork_mc_no_such_role@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    began = time.monotonic()
    result = cli(tmp_path, "--database-url", url, "apps", "list", check=False, timeout=30)
    assert time.monotonic() - began < 8
    assert 1 == result.returncode
    line = one_error_line(result, 'refused the login: role "iwork_mc_no_such_role" does not exist')
    assert "unreachable" not in line and 1 == line.count("does not exist")


def test_send_file_reruns_and_readable_failures(tmp_path: Path, servers: list[Server]) -> None:
    """Lines with a msg_key and no time are the same event on a re-run; failures read as lines.

    The run uses the dev app of `run --dev-app` for `send`, `status` and `messages show`
    without credentials.
    """
    server = start(tmp_path, "run", "--dev-app", "--no-echo")
    servers.append(server)
    server.wait_ready()
    lines = [
        {"msg_key": "rerun-1", "mobile_receiver": "13900000001", "json_data": {"n": 1},
         "source": "batch", "action": "notice", "sender": 7},
        {"msg_key": "rerun-bad", "mobile_receiver": "12345", "json_data": {},
         "source": "batch", "action": "notice", "sender": 7},
        {"msg_key": "rerun-2", "mobile_receiver": "13900000002", "json_data": {"n": 2},
         "source": "batch", "action": "notice", "sender": 7},
    ]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    env = {"IWORK_MC_URL": server.url}
    for _ in range(2):
        result = cli(tmp_path, "send", "--file", str(events), env=env, check=False)
        assert 1 == result.returncode
        assert "sent 2, failed 1" in result.stdout
        [failure] = [line for line in result.stdout.splitlines() if line.startswith("  line ")]
        assert failure.startswith("  line 2  msg_key=rerun-bad  isv.invalid-parameter: ")
        assert "{" not in failure and "MSG_KEY_CONFLICT" not in result.stdout
    view = json.loads(cli(tmp_path, "status", "rerun-1", "--json").stdout)
    assert "rerun-1" == view["msg_key"]
    shown = json.loads(cli(tmp_path, "messages", "show", "rerun-2", "--json").stdout)
    assert "rerun-2" == shown["msg_key"]
    assert "accepted" == shown["timeline"][0]["kind"]


def test_version_flag_and_command() -> None:
    """`iwork-mc --version` and `iwork-mc version` print the version."""
    for args in (("--version",), ("version",)):
        result = cli(Path("unused"), *args)
        assert __version__ == result.stdout.strip()


def test_cli_common_imports_nothing_back_from_the_package() -> None:
    """The shared CLI helpers do not import the package root (the old import cycle)."""
    import iwork_mc.cli.common as common

    source = Path(common.__file__).read_text(encoding="utf-8")
    assert "from iwork_mc.cli" not in source and "from iwork_mc import cli" not in source
