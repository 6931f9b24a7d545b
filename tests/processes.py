"""``iwork-mc`` as a user runs it: subprocesses on free ports with their own data directory."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
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
    """A running ``iwork-mc run``/``serve`` process, ended by its PID."""

    process: subprocess.Popen[str]
    port: int
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
                raise AssertionError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become ready")

    def read_until(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Read stdout lines until one matches ``pattern``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("server output ended:\n" + "".join(self.output))
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(self.output))

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "--data-dir", str(data_dir), *args, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    return Server(process, port)


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
