"""A real high-availability PostgreSQL on loopback: pg_auto_failover's monitor and two nodes.

The cluster lives in a temporary folder owned by the ``postgres`` user (``pg_autoctl``
refuses to run as root), on free loopback ports, so the machine's own PostgreSQL on 5432
is never touched. Each ``pg_autoctl`` process is started here, in a session of its own,
and ended by its process group when the cluster closes.

The crash scenario tightens the monitor's health checks (1 s periods instead of 5 to
30 s, :meth:`Cluster.detect_failures_fast`) so that a crashed primary is replaced in
seconds: it measures iwork-mc's recovery, not the monitor's patience.  The switchover
keeps the defaults: on a busy machine, 1 s checks can judge a slow but healthy node
dead and fail over again to a standby that is not in sync yet.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgcluster import postgres_binary
from processes import free_port

#: The Debian packages that bring ``pg_autoctl`` and the monitor's extension.
PACKAGES = ("pg-auto-failover-cli", "postgresql-{major}-auto-failover")
USER = "postgres"
DATABASE = "iwork_mc"
#: Monitor settings that make failure detection take about 2 s instead of about 50 s.
FAST_MONITOR = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 2000,
    "pgautofailover.primary_demote_timeout": 3000,
    "pgautofailover.startup_grace_period": 2000,
}


class ClusterError(RuntimeError):
    """The cluster could not be installed, started or steered; the message says which step."""


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` folder."""
    pg_ctl = postgres_binary("pg_ctl")
    if pg_ctl is None:
        raise ClusterError("no PostgreSQL server is installed under /usr/lib/postgresql")
    return Path(pg_ctl).parent


def ensure_installed() -> None:
    """Install pg_auto_failover from Debian's packages where it is missing (CI runs as root)."""
    if shutil.which("pg_autoctl"):
        return
    major = postgres_bindir().parts[-2]
    packages = [name.format(major=major) for name in PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise ClusterError(f"cannot install {' '.join(packages)}: {result.stderr[-500:]}")


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={DATABASE} connect_timeout=2"


@dataclass
class Cluster:
    """A monitor and two nodes; :attr:`url` is the libpq multi-host URI iwork-mc is given."""

    root: Path
    monitor: Node
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgresql://{USER}@{hosts}/{DATABASE}?target_session_attrs=read-write"

    @property
    def monitor_uri(self) -> str:
        return (
            f"postgres://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover"
            "?sslmode=disable"
        )

    # --- steering ---------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """Each node's reported state, as the monitor sees it."""
        with psycopg.connect(self.monitor_uri, connect_timeout=2, autocommit=True) as db:
            rows = db.execute(
                "SELECT nodename, reportedstate::text FROM pgautofailover.node"
            ).fetchall()
        return {str(name): str(state) for name, state in rows}

    def primary(self) -> Node:
        states = self.states()
        for node in self.nodes:
            if states.get(node.name) == "primary":
                return node
        raise ClusterError(f"no primary: {states}")

    def wait_stable(self, timeout: float = 120) -> Node:
        """Wait until one node is ``primary`` and the other ``secondary``; the primary."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        nudged = 0.0
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                states = self.states()
                if sorted(states.values()) == ["primary", "secondary"]:
                    return self.primary()
                # pg_basebackup waits for a spread checkpoint (minutes when idle): ask for one.
                if time.monotonic() - nudged > 2:
                    nudged = time.monotonic()
                    self._checkpoint_writable_nodes()
            self._check_alive()
            time.sleep(0.2)
        raise ClusterError(f"the cluster did not settle in {timeout:.0f} s: {states}")

    def detect_failures_fast(self) -> None:
        """Tighten the monitor's health checks (:data:`FAST_MONITOR`) for a crash scenario."""
        with psycopg.connect(
            self.monitor_uri.replace("autoctl_node@", f"{USER}@"), autocommit=True
        ) as db:
            for name, value in FAST_MONITOR.items():
                db.execute(f"ALTER SYSTEM SET {name} = {int(value)}")  # constants above
            db.execute("SELECT pg_reload_conf()")

    def switchover(self) -> None:
        """Ask the monitor for a switchover (the primary hands over to the standby)."""
        self._autoctl(
            "perform", "switchover", "--monitor", self.monitor_uri, "--formation", "default",
            "--group", "0", timeout=60,
        )  # fmt: skip

    def crash(self, node: Node) -> None:
        """kill -9 the node's keeper and its PostgreSQL: a machine that just stops."""
        assert node.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(10)
        # The postmaster may have left its own children behind; none of them may keep serving.
        pid_file = node.pgdata / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def restart(self, node: Node) -> None:
        """Start a crashed node's keeper again; it rejoins as a standby."""
        node.process = self._run_keeper(node)

    # --- building and ending ------------------------------------------------------------

    def _checkpoint_writable_nodes(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(psycopg.Error):
                conninfo = node.conninfo.replace(f"dbname={DATABASE}", "dbname=postgres")
                with psycopg.connect(conninfo, autocommit=True) as db:
                    if not db.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                        db.execute("CHECKPOINT")

    def _check_alive(self) -> None:
        for node in [self.monitor, *self.nodes]:
            if node.process is not None and node.process.poll() is not None:
                log = (self.root / f"{node.name}.log").read_text(errors="replace")[-2000:]
                raise ClusterError(f"pg_autoctl for {node.name} exited:\n{log}")

    def _env(self) -> dict[str, str]:
        # Config and state files under the cluster's own folder, not postgres's home.
        return {
            "PATH": f"{postgres_bindir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "PG_CONFIG": str(postgres_bindir() / "pg_config"),
            "LANG": "C.UTF-8",
        }

    def _as_postgres(self, *args: str) -> list[str]:
        return ["runuser", "-u", USER, "--", *args]

    def _autoctl(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            self._as_postgres("pg_autoctl", *args), env=self._env(), capture_output=True,
            text=True, timeout=timeout, cwd=self.root,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"pg_autoctl {args[0]} {args[1]} failed: {result.stderr[-2000:]}")
        return result.stdout

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                self._as_postgres("pg_autoctl", *args), env=self._env(), cwd=self.root,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def _run_keeper(self, node: Node) -> subprocess.Popen[bytes]:
        return self._spawn(node.name, "run", "--pgdata", str(node.pgdata))

    def start(self) -> None:
        pg_ctl = str(postgres_bindir() / "pg_ctl")
        common = ("--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", pg_ctl)
        self._autoctl(
            "create", "monitor", "--pgdata", str(self.monitor.pgdata),
            "--pgport", str(self.monitor.port), *common,
        )  # fmt: skip
        self.monitor.process = self._run_keeper(self.monitor)
        self._wait_monitor()
        for node in self.nodes:
            node.process = self._spawn(
                node.name, "create", "postgres", "--pgdata", str(node.pgdata),
                "--pgport", str(node.port), "--monitor", self.monitor_uri, "--dbname", DATABASE,
                "--name", node.name, "--run", *common,
            )  # fmt: skip
            # The second node must find the first registered as primary, not race it.
            if node is self.nodes[0]:
                self._wait_state(node.name, ("single", "wait_primary", "primary"))
        self.wait_stable()

    def _wait_monitor(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                self.states()
                return
            self._check_alive()
            time.sleep(0.2)
        raise ClusterError("the monitor did not start")

    def _wait_state(self, name: str, wanted: tuple[str, ...], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                if self.states().get(name) in wanted:
                    return
            self._check_alive()
            time.sleep(0.2)
        raise ClusterError(f"{name} did not reach {' or '.join(wanted)}")

    def stop(self) -> None:
        for node in [*self.nodes, self.monitor]:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
        for node in [*self.nodes, self.monitor]:
            if node.process is None:
                continue
            try:
                node.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(10)
            # Whatever PostgreSQL the keeper left running (its postmaster outlives a SIGKILL).
            pid_file = node.pgdata / "postmaster.pid"
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def ha_cluster() -> Iterator[Cluster]:
    """A running monitor + primary + synchronous standby, removed afterwards."""
    ensure_installed()
    owner = pwd.getpwnam(USER)
    root = Path(tempfile.mkdtemp(prefix="iwork-mc-ha-"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(
        root=root,
        monitor=Node("monitor", free_port(), root / "monitor"),
        nodes=[Node(f"node_{n}", free_port(), root / f"node{n}") for n in (1, 2)],
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
