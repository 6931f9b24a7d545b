"""A throwaway PostgreSQL cluster on a loopback port, to stop, freeze and bring back.

Outage tests cannot touch the shared server named by ``IWORK_MC_TEST_PG_DSN``, so
they get their own: ``initdb`` into a temporary directory, ``pg_ctl`` on a free
127.0.0.1 port.  PostgreSQL refuses to run as root, so when the tests run as
root the cluster runs as the ``postgres`` user.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from processes import free_port

__all__ = ["PgCluster", "pg_cluster", "postgres_binary"]


def postgres_binary(name: str) -> str | None:
    """The newest installed PostgreSQL server's ``name`` (Debian layout), else one on PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: [int(part) for part in Path(path).parts[-3].split(".")],
    )
    return found[-1] if found else shutil.which(name)


class PgCluster:
    """One cluster: ``url`` to reach it, and ``stop``/``start``/``freeze``/``thaw``."""

    def __init__(self, directory: Path, user: str | None) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._user = user
        self._pg_ctl = postgres_binary("pg_ctl") or "pg_ctl"

    def _run(self, *args: str, timeout: float = 30) -> None:
        subprocess.run(
            args, check=True, capture_output=True, timeout=timeout, user=self._user,
            cwd=self.directory,
        )  # fmt: skip

    def init(self) -> None:
        initdb = postgres_binary("initdb") or "initdb"
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip

    def start(self) -> None:
        """Start and return once the server accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(self._pg_ctl, "-D", str(self.data), "-o", options, "-l",
                  str(self.directory / "log"), "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop now: sessions are ended (``-m fast``), new connections refused."""
        self._run(self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def sql(self, *statements: str) -> None:
        """Run each statement in autocommit, as the superuser."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == postmaster:
                        children.append(int(entry.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Stop every server process (SIGSTOP): sockets stay open, nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        with contextlib.suppress(Exception):
            self._run(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A started throwaway cluster, destroyed afterwards; skips if PostgreSQL is not installed."""
    if postgres_binary("initdb") is None:
        pytest.skip("initdb is not installed; outage tests need a PostgreSQL server binary")
    user = None
    directory = Path(tempfile.mkdtemp(prefix="iwork-mc-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    cluster = PgCluster(directory, user)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
