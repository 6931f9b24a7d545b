"""``iwork-mc`` as a user runs it: subprocesses on free ports with their own data directory."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "iwork_mc"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(data_dir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run one ``iwork-mc`` command to completion."""
    result = subprocess.run(
        [*CLI, "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"iwork-mc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Server:
    """A running ``iwork-mc run``/``serve``/``worker`` process, ended by its PID.

    Its output goes to a file, not a pipe, so a chatty server never blocks on a
    full pipe buffer while a test is busy elsewhere.
    """

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    _read: int = 0
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/router/rest"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become ready")

    def text(self) -> str:
        """Everything the process has printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def read_until(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait for the next output line matching ``pattern`` (lines are consumed once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.text()[self._read :].splitlines(keepends=True)
            for line in lines:
                if not line.endswith("\n"):
                    break
                self._read += len(line)
                self.output.append(line)
                match = re.search(pattern, line)
                if match:
                    return match
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.text()}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        self.process.wait(30)


def start(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start ``iwork-mc … <args> --port <free port>`` (no port for ``worker``)."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="iwork-mc-", suffix=".log", dir=data_dir.parent)[1])
    port_args = [] if "worker" in args else ["--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "--data-dir", str(data_dir), *args, *port_args],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )  # fmt: skip
    return Server(process, port, log)


def wait_for_status(data_dir: Path, app_key: str, msg_key: str, wanted: str,
                    *, extra: tuple[str, ...] = (), timeout: float = 20) -> dict[str, object]:  # fmt: skip
    deadline = time.monotonic() + timeout
    view: dict[str, object] = {}
    while time.monotonic() < deadline:
        result = cli(
            data_dir, *extra, "status", msg_key, "--app-key", app_key, "--json", check=False
        )
        if result.returncode == 0:
            view = json.loads(result.stdout)
            if view["status"] == wanted:
                return view
        time.sleep(0.2)
    raise AssertionError(f"{msg_key} did not reach {wanted}: {view}")


def sandbox_deliveries(data_dir: Path) -> list[dict[str, object]]:
    """What a sandbox worker with this data directory has sent so far, oldest first.

    One object per line of ``<data_dir>/sandbox/deliveries.jsonl``; none before the file exists.
    """
    path = data_dir / "sandbox" / "deliveries.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a line being written is not sent yet
    return [json.loads(line) for line in complete.splitlines()]
