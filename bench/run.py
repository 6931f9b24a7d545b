"""iwork-mc's benchmark suite: every scenario of the standard set in one run, then the report.

    python bench/run.py               # the standard set (< 5 minutes): docs/benchmarks.md
    python bench/run.py --quick       # fewer levels, SQLite only (< 1 minute)
    python bench/run.py --check-only  # the correctness checks only, tiny durations (CI)

Load: wrk (``-t1``) replays distinct, freshly signed ``sendmobile`` calls (one
unique msg_key each, see :func:`write_calls`) over loopback.  CPUs: where the
machine has two cores, a single server process runs on CPU 0 and wrk, the
FakeSMSC and this script on CPU 1 (``taskset``); N server processes may use
both CPUs (they share CPU 1 with the load).  PostgreSQL is the machine's
server, not pinned.

Scenarios (see docs/benchmarks.md for the figures): the bare ceiling
(bench/ceiling.py); accept on SQLite and PostgreSQL with 1 and N gateway
processes at several concurrency levels; the drain rate of 1 and N workers
(sandbox and SMPP channels); end to end through SMPP to a FakeSMSC while
accepting; Kannel, the reference peer (bench/kannel.py), against the same
FakeSMSC; overload (2x the sustainable rate against flow control); and
the gateway's RSS over a 60 s run.  After every accept run the store is
checked: every call wrk counted as acknowledged is stored, once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlencode

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from accept import CLI, ROOT, SEED  # noqa: E402
from drain import WebhookReceiver  # noqa: E402

from iwork_mc.apps import App  # noqa: E402
from iwork_mc.store import create_store  # noqa: E402
from iwork_mc.testing import FakeSMSC, SMSCPolicy  # noqa: E402
from iwork_mc.top import params, signing  # noqa: E402

T = TypeVar("T")

REPLAY = BENCH / "replay.lua"
APP_KEY = "20250001"
#: The overload run's burst (the app's rate is a share of the sustainable rate).
OVERLOAD_BURST = 100
#: The bench app's own flow control (rate, burst): far above anything measured, set
#: explicitly so that the default per-app rate never throttles a benchmark.
BENCH_RATE = (1_000_000.0, 1_000_000)
SECRET = "benchbenchbenchbenchbenchbench00"
SMSC_ID = SMSC_PASSWORD = "bench"
PG_DSN = (
    os.environ.get("IWORK_MC_BENCH_PG_DSN")
    or os.environ.get("IWORK_MC_TEST_PG_DSN")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
#: Distinct calls prepared per second of run, at least.
MIN_RATE = 5000.0
TWO_CORES = os.cpu_count() == 2 and shutil.which("taskset") is not None
#: Where a single server process runs, and where N of them may run.
ONE_CPU, ALL_CPUS, LOAD_CPU = "0", "0,1", "1"


@dataclass(frozen=True)
class Plan:
    """How much of each scenario a mode runs (seconds are per measured run)."""

    mode: str
    levels: tuple[int, ...]
    level_s: int
    processes: int  # N, the several-process configuration
    sqlite_n: bool = True
    postgres: bool = True
    pg_curve: tuple[int, ...] = ()  # extra process counts on PostgreSQL, at concurrency 64
    ceiling_n: bool = True
    drain_s: float = 5.0
    pg_drain: bool = True
    smpp_drain: bool = True
    webhook_drain: bool = True
    e2e_s: int = 5
    kannel: bool = True
    overload_s: int = 20
    memory_s: int = 0
    main_level: int = 64
    ceiling: bool = True
    drains: bool = True
    #: The flow-control limit of the overload run, as a share of the sustainable rate.
    limit_share: float = 0.6


STANDARD = Plan(
    mode="standard",
    levels=(1, 16, 64, 256),
    level_s=4,
    processes=2,
    pg_curve=(4,),
    drain_s=4.0,
    e2e_s=5,
    overload_s=20,
    memory_s=60,
)
QUICK = Plan(
    mode="quick",
    levels=(16, 64),
    level_s=2,
    processes=2,
    postgres=False,
    ceiling_n=False,
    drain_s=2.0,
    pg_drain=False,
    e2e_s=2,
    kannel=False,
    overload_s=3,
)
CHECK = Plan(
    mode="check-only",
    levels=(16,),
    level_s=1,
    processes=2,
    postgres=False,
    ceiling=False,
    ceiling_n=False,
    drains=False,
    pg_drain=False,
    smpp_drain=False,
    e2e_s=1,
    kannel=False,
    overload_s=2,
    main_level=16,
    limit_share=0.5,
)


# -- the calls ---------------------------------------------------------------------------


def write_calls(path: Path, count: int, tag: str, *, timestamp: str | None = None) -> None:
    """``count`` distinct signed calls (msg_key ``<tag>-<i>``), as accept.write_calls writes.

    The canonical string TOP signs has the msg_key in the middle of the event,
    so the HMAC state of everything before it is computed once and copied per
    call: about 30x faster than signing each call from scratch, and checked
    against :func:`iwork_mc.top.signing.sign` on the first call.
    """
    timestamp = timestamp or params.format_timestamp(int(time.time() * 1000))
    marker = "@@MSG_KEY@@"
    event = json.dumps(
        {**SEED, "msg_key": marker}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    system = {
        "method": "alibaba.iwork.mc.msg.sendmobile",
        "app_key": APP_KEY,
        "timestamp": timestamp,
        "v": "2.0",
        "format": "json",
        "sign_method": "hmac-sha256",
    }
    canonical = signing.canonical_string({**system, "mobile_receiver_message_event": event})
    head, tail = canonical.split(marker)
    state = hmac.new(SECRET.encode(), head.encode(), hashlib.sha256)
    tail_bytes = tail.encode()
    query = urlencode(system) + "&sign="
    body_head, body_tail = urlencode({"mobile_receiver_message_event": event}).split(
        quote_plus(marker)
    )
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            key = f"{tag}-{i}"
            mac = state.copy()
            mac.update(key.encode() + tail_bytes)
            out.write(
                f"/router/rest?{query}{mac.hexdigest().upper()}\t"
                f"{body_head}{quote(key)}{body_tail}\n"
            )
    # The shortcut must sign exactly what signing.sign signs.
    first = path.open(encoding="utf-8").readline() if count else ""
    if first:
        expected_event = json.dumps(
            {**SEED, "msg_key": f"{tag}-0"},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        expected = signing.sign(
            {**system, "mobile_receiver_message_event": expected_event}, SECRET, "hmac-sha256"
        )
        if f"sign={expected}\t" not in first:
            raise RuntimeError("write_calls: the fast signature differs from signing.sign")


class CallFiles:
    """Call files by tag, written once, reused by every configuration (each has a fresh store)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, tuple[Path, int]] = {}

    def get(self, tag: str, count: int) -> Path:
        known = self._files.get(tag)
        if known is not None and known[1] >= count:
            return known[0]
        path = self.directory / f"calls-{tag}.txt"
        write_calls(path, count, tag)
        # Written-back now, not during a run: on ext4 a store's fsync can wait for other
        # files' dirty pages, which stalled the first commits by up to 2 s.
        os.sync()
        self._files[tag] = (path, count)
        return path


# -- processes ---------------------------------------------------------------------------


def pin(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if TWO_CORES else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (0 once it is gone)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def vm_kb(pid: int, name: str) -> int:
    """A ``Vm*`` line of /proc/<pid>/status in kB (0 once the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """Every process's (name, utime + stime), from /proc."""
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
            fields_ = rest.split()
            found[int(entry.name)] = (name, (int(fields_[11]) + int(fields_[12])) / tick)
    return found


def busiest_others(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], ours: set[int]
) -> list[tuple[str, float]]:
    """The processes, not ours, that used the most CPU between two snapshots (≥ 0.2 s)."""
    used: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid not in ours:
            used[name] = used.get(name, 0.0) + cpu - before.get(pid, (name, 0.0))[1]
    top = sorted(used.items(), key=lambda item: -item[1])[:3]
    return [(name, round(cpu, 2)) for name, cpu in top if cpu >= 0.2]


def wait_quiet(within: float, threshold: float = 0.1) -> float:
    """The machine's busy share over the last second, after waiting up to ``within`` seconds
    for three quiet seconds in a row (below ``threshold``)."""
    deadline, quiet = time.monotonic() + within, 0
    while True:
        busy0, total0 = machine_busy()
        time.sleep(1)
        busy1, total1 = machine_busy()
        share = (busy1 - busy0) / max(1, total1 - total0)
        quiet = quiet + 1 if share < threshold else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            return share


def _rusage(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Server:
    """A server process (and its children) we started: readiness, CPU, RSS, stop by PID."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str],
        cpus: str,
        log: Path,
        port: int | None,
        children: int = 0,
    ) -> None:
        self.command = [*pin(cpus), *command]
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.children = children
        self.known: set[int] = {self.process.pid}
        try:
            self._wait_ready(port)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, port: int | None) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{shlex.join(self.command)} exited: {self.tail()}")
            if len(self.pids()) > self.children and (port is None or _answers(port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{shlex.join(self.command)} did not get ready: {self.tail()}")

    def tail(self, lines: int = 12) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def pids(self) -> list[int]:
        """The root process and its descendants; the root alone if it has no children."""
        found = [self.process.pid, *children_of(self.process.pid)]
        self.known.update(found)
        return found

    def workers(self) -> list[int]:
        """The processes doing the work: the children of a supervisor, else the root."""
        pids = self.pids()
        return pids[1:] if self.children else pids

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def hwm_kb(self) -> int:
        return sum(vm_kb(pid, "VmHWM") for pid in self.workers())

    def rss_kb(self) -> int:
        return sum(vm_kb(pid, "VmRSS") for pid in self.workers())

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.pids()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in self.known:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(10)
        # Children of a supervisor that is gone: only the ones we saw, by PID.
        for pid in self.known - {self.process.pid}:
            if Path(f"/proc/{pid}").exists() and _is_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def warm_up(port: int, calls: Path, count: int = 20) -> None:
    """Send the first ``count`` calls of ``calls`` one by one: caches, pools, first commits."""
    with calls.open(encoding="utf-8") as lines:
        for _, line in zip(range(count), lines, strict=False):
            path, body = line.rstrip("\n").split("\t")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                data=body.encode(),
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"iwork_mc" in cmdline or b"ceiling.py" in cmdline


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[Server]:
    server = Server(*args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# -- wrk ---------------------------------------------------------------------------------


def wrk(
    port: int,
    calls: Path,
    concurrency: int,
    seconds: int,
    *,
    pause_ms: float | None = None,
    every_second: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """One wrk run (``-t1``, on the load CPU); figures from its output and replay.lua's."""
    command = [
        *pin(LOAD_CPU),
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(REPLAY),
        f"http://127.0.0.1:{port}",
        "--",
        str(calls),
        *([f"{pause_ms:.1f}"] if pause_ms else []),
    ]
    started = time.monotonic()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        while every_second is not None and process.poll() is None:
            every_second(time.monotonic() - started)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(1)
        try:
            out, err = process.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError("wrk did not finish in time") from None
    if process.returncode != 0 or " requests in " not in out:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip()} {out.strip()}")
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    assert found is not None
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
    duration = float(found.group(2)) * scale
    figures = {k: int(v) for k, v in re.findall(r"^([A-Z0-9_]+) (\d+)$", out, re.MULTILINE)}
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    socket_errors = sum(map(int, sockets.groups())) if sockets else 0
    answers = int(found.group(1))
    successes = figures["SUCCESSES"]
    return {
        "concurrency": concurrency,
        "seconds": round(duration, 3),
        "answers": answers,
        "successes": successes,
        "limited": figures["LIMITED"],
        "failures": figures["FAILURES"] - figures["LIMITED"],
        "socket_errors": socket_errors,
        "errors": figures["FAILURES"] - figures["LIMITED"] + socket_errors,
        "rate": successes / duration if duration else 0.0,
        "answer_rate": answers / duration if duration else 0.0,
        "p50_ms": figures["P50_US"] / 1000,
        "p90_ms": figures["P90_US"] / 1000,
        "p99_ms": figures["P99_US"] / 1000,
        "max_ms": figures["MAX_US"] / 1000,
        "replayed": max(0, figures["SENT"] - figures["CALLS"]),
        "command": shlex.join(["wrk", *command[command.index("wrk") + 1 :]]),
    }


# -- stores ------------------------------------------------------------------------------


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``options=-csearch_path=<schema>`` (URL form), as tests/conftest.py does."""
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options={quote(f'-csearch_path={schema}')}"


class Database:
    """A fresh store for one configuration: a SQLite file, or a PostgreSQL schema."""

    def __init__(
        self, kind: str, workdir: Path, name: str, *, rate: tuple[float, int] = BENCH_RATE
    ) -> None:
        self.kind = kind
        self.data_dir = workdir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.schema: str | None = None
        if kind == "sqlite":
            self.url = f"sqlite:///{self.data_dir / 'iwork-mc.db'}"
        else:
            import psycopg
            from psycopg import sql

            self.schema = f"bench_{secrets.token_hex(6)}"
            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            self.url = with_search_path(PG_DSN, self.schema)
        self.upgrade_command = [*CLI, "--database-url", self.url, "db", "upgrade"]
        subprocess.run(self.upgrade_command, check=True, capture_output=True, env=self.env())
        asyncio.run(_insert_app(self.url, rate))

    def env(self, **settings: Any) -> dict[str, str]:
        """The environment of an iwork-mc process on this store, with ``settings`` as IWORK_MC_*."""
        extra = {f"IWORK_MC_{k.upper()}": str(v) for k, v in settings.items()}
        return {
            **os.environ,
            "IWORK_MC_DATA_DIR": str(self.data_dir),
            "IWORK_MC_DATABASE_URL": self.url,
            "IWORK_MC_LOG_LEVEL": "warning",
            **extra,
        }

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of ``query`` (``?`` placeholders on both backends)."""
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.data_dir / "iwork-mc.db")) as db:
                return list(db.execute(query, args).fetchall())
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as db:
            return list(db.execute(query.replace("?", "%s"), args).fetchall())  # type: ignore[arg-type]

    def stored(self, tag: str) -> tuple[int, int]:
        """(rows, distinct msg_keys) stored for calls tagged ``tag``."""
        row = self.rows(
            "SELECT count(*), count(DISTINCT msg_key) FROM messages WHERE app_key = ? "
            "AND msg_key LIKE ?",
            APP_KEY,
            f"{tag}-%",
        )[0]
        return int(row[0]), int(row[1])

    def handed(self) -> tuple[int, int]:
        """(messages past the channel, messages still queued or sending)."""
        counts = dict(self.rows("SELECT status, count(*) FROM messages GROUP BY status"))
        waiting = int(counts.get("queued", 0)) + int(counts.get("sending", 0))
        return sum(int(v) for v in counts.values()) - waiting, waiting

    def drop(self) -> None:
        if self.schema is not None:
            import psycopg
            from psycopg import sql

            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)))


async def _insert_app(url: str, rate: tuple[float, int]) -> None:
    store = create_store(url)
    await store.open()
    try:
        await store.insert_app(
            App(
                app_key=APP_KEY,
                name="bench",
                secret=SECRET,
                enabled=True,
                created_at_ms=int(time.time() * 1000),
                rate_limit=rate[0],
                rate_burst=rate[1],
            )
        )
    finally:
        await store.close()


# -- the FakeSMSC, in a thread of its own ------------------------------------------------


class SMSCThread:
    """A FakeSMSC served by an event loop in a thread (on the load CPU, like this process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-smsc")
        self._thread.start()
        policy = SMSCPolicy(system_id=SMSC_ID, password=SMSC_PASSWORD)
        self.smsc: FakeSMSC = self.call(self._start(policy))

    @staticmethod
    async def _start(policy: SMSCPolicy) -> FakeSMSC:
        smsc = FakeSMSC(policy)
        await smsc.start()
        return smsc

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def taken(self) -> int:
        """submit_sm answered ESME_ROK so far."""
        s = self.smsc
        return s.submits - s.throttled - s.rejected - s.dropped

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.smsc.aclose(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


def smpp_settings(smsc_port: int) -> dict[str, Any]:
    return {
        "channel": "smpp",
        "smpp_port": smsc_port,
        "smpp_system_id": SMSC_ID,
        "smpp_password": SMSC_PASSWORD,
        "smpp_window": 10,
        "smpp_binds": 1,
        "worker_concurrency": 64,
        "poll_interval_s": 0.05,
    }


# -- the run -----------------------------------------------------------------------------


@dataclass
class Bench:
    plan: Plan
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    out: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.begun = time.monotonic()
        self.calls = CallFiles(self.workdir)
        self.results.update(
            {
                "plan": asdict(self.plan),
                "ceiling": [],
                "accept": [],
                "drain": [],
                "e2e": [],
                "kannel": None,
                "overload": None,
                "memory": None,
                "checks": [],
                "notes": [],
                "commands": {},
                "skipped": {},
            }
        )
        self.fastest = 0.0  # the fastest accept rate so far

    # -- helpers

    def log(self, line: str) -> None:
        self.out(f"[{time.monotonic() - self.begun:5.1f}s] {line}")

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.results["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        self.log(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        return ok

    def command(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        shown = {k: v for k, v in (env or {}).items() if k.startswith("IWORK_MC_")}
        shown.pop("IWORK_MC_DATA_DIR", None)
        if "IWORK_MC_DATABASE_URL" in shown:
            shown["IWORK_MC_DATABASE_URL"] = re.sub(
                r"search_path%3D\w+",
                "search_path%3D<fresh schema>",
                re.sub(
                    r"sqlite:///\S+",
                    "sqlite:///<fresh dir>/iwork-mc.db",
                    shown["IWORK_MC_DATABASE_URL"],
                ),
            )
        text = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(shown.items()))
        command = [Path(c).name if c == sys.executable else c for c in command]
        line = f"{text} {shlex.join(command)}".strip()
        self.results["commands"].setdefault(name, self.clean(line))

    def clean(self, command: str) -> str:
        """``command`` with the run's temporary directory and the checkout's path left out."""
        return command.replace(str(self.workdir), "<tmp>").replace(f"{ROOT}/", "")

    def calls_for(self, tag: str, seconds: float, floor: float = MIN_RATE) -> Path:
        """Enough distinct calls that none is replayed (a replay is reported by the checks).

        ``floor`` per second (by default several times what one process accepts here), or
        1.5x the fastest accept run so far if that is more.  (wrk's Lua turns every line
        into a request before the run starts: oversized files cost seconds.)
        """
        rate = max(floor, 1.5 * self.fastest)
        return self.calls.get(tag, int(rate * seconds) + 2000)

    def measure(
        self, server: Server, port: int, calls: Path, concurrency: int, seconds: int, **kwargs: Any
    ) -> dict[str, Any]:
        cpu0, (busy0, total0) = server.cpu(), machine_busy()
        load0, own0 = _rusage(resource.RUSAGE_CHILDREN), _rusage(resource.RUSAGE_SELF)
        processes0 = cpu_by_process()
        result = wrk(port, calls, concurrency, seconds, **kwargs)
        load, own = _rusage(resource.RUSAGE_CHILDREN) - load0, _rusage(resource.RUSAGE_SELF) - own0
        ours = {os.getpid(), *server.pids()}
        result["other_top"] = busiest_others(processes0, cpu_by_process(), ours)
        result["command"] = self.clean(result["command"])
        busy1, total1 = machine_busy()
        result["cpu_s"] = round(server.cpu() - cpu0, 2)
        result["cpu_share"] = round(result["cpu_s"] / result["seconds"], 2)
        result["machine_busy"] = round((busy1 - busy0) / max(1, total1 - total0), 2)
        # CPU the machine spent on neither the server, nor wrk, nor this process (the
        # FakeSMSC): PostgreSQL, Kannel or anything else running at the time.
        busy_s = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
        result["load_cpu_s"] = round(load + own, 2)
        result["other_cpu_s"] = round(max(0.0, busy_s - result["cpu_s"] - load - own), 2)
        result["rss_kb"] = server.hwm_kb()
        return result

    def check_stored(self, db: Database, tag: str, result: dict[str, Any], what: str) -> None:
        stored, distinct = db.stored(tag)
        result["stored"], result["duplicates"] = stored, stored - distinct
        # wrk stops with up to `concurrency` calls in flight: stored, maybe, but not counted.
        upper = result["successes"] + result["concurrency"] + result["errors"]
        ok = (
            0 < result["successes"] <= stored <= upper
            and stored == distinct
            and result["errors"] == 0
            and result["replayed"] == 0
        )
        result["check"] = "ok" if ok else "FAILED"
        self.check(
            f"{what}: acknowledged calls stored",
            ok,
            f"{result['successes']} acknowledged, {stored} stored ({stored - distinct} "
            f"duplicates), {result['errors']} errors, {result['replayed']} replayed calls",
        )

    def show(self, label: str, r: dict[str, Any]) -> None:
        self.log(
            f"  {label:<28} c{r['concurrency']:<4} {r['rate']:8.0f}/s  p50 {r['p50_ms']:7.2f}"
            f"  p99 {r['p99_ms']:7.2f}  max {r['max_ms']:7.1f} ms  err {r['errors']}"
            f"  cpu {r['cpu_s']:.1f}s  rss {r['rss_kb'] / 1024:.0f} MB"
        )

    def iwork(self, *args: str) -> list[str]:
        return [*CLI, *args]

    # -- scenarios

    def ceiling(self, processes: int, levels: tuple[int, ...]) -> None:
        port = free_port()
        command = [
            sys.executable,
            str(BENCH / "ceiling.py"),
            "--port",
            str(port),
            "--processes",
            str(processes),
        ]
        self.command(f"ceiling, {processes} process{'es' if processes > 1 else ''}", command)
        cpus = ONE_CPU if processes == 1 else ALL_CPUS
        log = self.workdir / f"ceiling-{processes}.log"
        with running(
            command,
            env=dict(os.environ),
            cpus=cpus,
            log=log,
            port=port,
            children=processes if processes > 1 else 0,
        ) as server:
            warm_up(port, self.calls.get("WARM", 20))
            for level in levels:
                calls = self.calls_for(f"L{level}", self.plan.level_s)
                r = self.measure(server, port, calls, level, self.plan.level_s)
                r.update(processes=processes, replayed=0)  # replays are harmless here
                self.results["ceiling"].append(r)
                self.show(f"ceiling {processes}p", r)

    def accept(self, kind: str, processes: int, levels: tuple[int, ...]) -> Database:
        db = Database(kind, self.workdir, f"{kind}-{processes}p")
        self.command(f"db upgrade ({kind})", db.upgrade_command, db.env())
        port = free_port()
        command = self.iwork("serve", "--port", str(port), "--processes", str(processes))
        self.command(f"accept, {kind}", command, db.env())
        cpus = ONE_CPU if processes == 1 else ALL_CPUS
        with running(
            command,
            env=db.env(),
            cpus=cpus,
            log=db.data_dir / "serve.log",
            port=port,
            children=processes if processes > 1 else 0,
        ) as server:
            warm_up(port, self.calls.get("WARM", 20))
            for level in levels:
                tag = f"L{level}"
                calls = self.calls_for(tag, self.plan.level_s)
                r = self.measure(server, port, calls, level, self.plan.level_s)
                r.update(backend=kind, processes=processes)
                self.results["accept"].append(r)
                self.fastest = max(self.fastest, r["rate"])
                self.show(f"accept {kind} {processes}p", r)
                self.check_stored(db, tag, r, f"accept {kind} {processes}p c{level}")
        return db

    def drain(
        self, db: Database, workers: int, channel: str, smsc: SMSCThread | None,
        receiver: WebhookReceiver | None = None,
    ) -> None:  # fmt: skip
        """Messages handed to the channel per second by ``workers`` worker processes."""
        settings: dict[str, Any] = {"worker_concurrency": 64, "poll_interval_s": 0.05}
        if channel == "smpp":
            assert smsc is not None
            settings = smpp_settings(smsc.smsc.port)
        if channel == "webhook":
            assert receiver is not None  # a local receiver that verifies every signature
            hook = {"kind": "webhook", "url": receiver.url, "secret": receiver.secret}
            settings["channels"] = json.dumps({"hook": hook})
        env = db.env(**settings)
        command = self.iwork("worker")
        self.command(f"drain, {channel}", command, env)
        cpus = ONE_CPU if workers == 1 else ALL_CPUS
        servers: list[Server] = []
        try:
            for i in range(workers):
                log = db.data_dir / f"worker-{channel}-{workers}-{i}.log"
                servers.append(Server(command, env=env, cpus=cpus, log=log, port=None))
            launched, (handed0, waiting0) = time.monotonic(), db.handed()
            deadline = launched + 15
            while waiting0 and db.handed()[0] == handed0 and time.monotonic() < deadline:
                time.sleep(0.05)
            started, (handed0, waiting0) = time.monotonic(), db.handed()
            if started - launched > 5:
                self.log(f"  (the workers took {started - launched:.1f} s to hand a first message)")
            cpu0 = sum(s.cpu() for s in servers)
            taken0 = smsc.taken if smsc else 0
            receipts0 = smsc.smsc.receipts_acked if smsc else 0
            time.sleep(self.plan.drain_s)
            handed1, waiting1 = db.handed()
            elapsed = time.monotonic() - started
            cpu = sum(s.cpu() for s in servers) - cpu0
            rss = sum(s.hwm_kb() for s in servers)
        finally:
            for server in servers:
                server.stop()
        r: dict[str, Any] = {
            "backend": db.kind,
            "startup_s": round(started - launched, 2),
            "channel": channel,
            "workers": workers,
            "seconds": round(elapsed, 2),
            "handed": handed1 - handed0,
            "rate": (handed1 - handed0) / elapsed,
            "backlog_start": waiting0,
            "backlog_end": waiting1,
            "ran_dry": waiting1 == 0,
            "cpu_s": round(cpu, 2),
            "rss_kb": rss,
        }
        if smsc is not None:
            r["smsc_rate"] = (smsc.taken - taken0) / elapsed
            r["receipt_rate"] = (smsc.smsc.receipts_acked - receipts0) / elapsed
        self.results["drain"].append(r)
        dry = " (backlog ran out: a lower bound)" if r["ran_dry"] else ""
        self.log(
            f"  drain {db.kind} {channel} {workers} worker(s): {r['rate']:.0f} msgs/s{dry}, "
            f"cpu {cpu:.1f}s"
        )

    def e2e_smpp(self, smsc: SMSCThread, concurrency: int) -> dict[str, Any]:
        """``iwork-mc run`` (gateway + worker, SQLite, SMPP) accepting while delivering."""
        db = Database("sqlite", self.workdir, "e2e-smpp")
        port = free_port()
        env = db.env(**smpp_settings(smsc.smsc.port))
        command = self.iwork("run", "--no-echo", "--port", str(port))
        self.command("end to end, SMPP", command, env)
        tag, seconds = "E2E", self.plan.e2e_s
        calls = self.calls_for(tag, seconds)
        with running(
            command, env=env, cpus=ONE_CPU, log=db.data_dir / "run.log", port=port
        ) as server:
            before = smsc.taken
            warm_up(port, self.calls.get("WARM", 20))
            deadline = time.monotonic() + 10
            while smsc.taken - before < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
            taken0, receipts0 = smsc.taken, smsc.smsc.receipts_acked
            started, cpu0 = time.monotonic(), server.cpu()
            r = self.measure(server, port, calls, concurrency, seconds)
            acked = r["successes"]
            time.sleep(0.2)  # calls in flight when wrk stopped: committed by now, or never
            stored = db.stored(tag)[0]
            reached_s = receipts_s = None
            deadline = time.monotonic() + 90
            progress, moved = (-1, -1), time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - moved < 10:
                now = time.monotonic() - started
                taken, receipts = smsc.taken - taken0, smsc.smsc.receipts_acked - receipts0
                if reached_s is None and taken >= acked:
                    reached_s = now  # the last acknowledged message, as Kannel's is measured
                if taken >= stored and receipts >= stored:
                    receipts_s = now
                    break
                if (taken, receipts) != progress:
                    progress, moved = (taken, receipts), time.monotonic()
                time.sleep(0.01)
            delivered = "SELECT count(*) FROM messages WHERE msg_key LIKE ? AND status = ?"
            deadline = time.monotonic() + 10  # the store records the last receipts
            while (
                db.rows(delivered, f"{tag}-%", "delivered")[0][0] < stored
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            r["cpu_accept_s"] = r["cpu_s"]
            r["cpu_s"] = round(server.cpu() - cpu0, 2)  # accepting, then delivering the rest
            r["rss_kb"] = server.hwm_kb()
        r.update(backend="sqlite", processes=1, scenario="run + SMPP")
        self.check_stored(db, tag, r, "end to end (SMPP) accept")
        r["reached"] = smsc.taken - taken0
        r["receipts"] = smsc.smsc.receipts_acked - receipts0
        r["reached_s"], r["receipts_s"] = reached_s, receipts_s
        last = reached_s or (time.monotonic() - started)
        r["delivery_rate"] = r["reached"] / last
        r["receipt_rate"] = r["receipts"] / receipts_s if receipts_s else None
        r.update(self._message_latencies(db, tag))
        self.check(
            "end to end (SMPP): every acknowledged message reached the SMSC and its receipt "
            "came back",
            receipts_s is not None and r["reached"] >= r["stored"] == r["delivered_rows"],
            f"{acked} acknowledged, {r['reached']} taken by the SMSC, {r['receipts']} receipts "
            f"acknowledged, {r['delivered_rows']} rows delivered",
        )
        self.results["e2e"].append(r)
        self.log(
            f"  e2e SMPP: accept {r['rate']:.0f}/s, → SMSC {r['delivery_rate']:.0f}/s "
            f"(last at {last:.1f}s), receipts {r['receipt_rate'] or 0:.0f}/s"
        )
        return r

    def _message_latencies(self, db: Database, tag: str) -> dict[str, Any]:
        rows = db.rows(
            "SELECT m.accepted_at_ms, m.updated_at_ms, m.status, (SELECT min(t.at_ms) FROM "
            "timeline t WHERE t.message_id = m.id AND t.status = 'submitted') FROM messages m "
            "WHERE m.app_key = ? AND m.msg_key LIKE ?",
            APP_KEY,
            f"{tag}-%",
        )
        submitted = sorted(s - a for a, _, _, s in rows if s is not None)
        delivered = sorted(u - a for a, u, status, _ in rows if status == "delivered")
        out: dict[str, Any] = {"delivered_rows": len(delivered)}
        for name, values in (("submit", submitted), ("receipt", delivered)):
            for p in (50, 90, 99):
                out[f"{name}_p{p}_ms"] = _percentile(values, p)
            out[f"{name}_max_ms"] = values[-1] if values else None
        return out

    def kannel(self, smsc: SMSCThread, concurrency: int) -> None:
        try:
            import kannel
        except Exception as exc:  # a missing or broken module is reported, not fatal
            self.results["kannel"] = {"error": f"bench/kannel.py: {type(exc).__name__}: {exc}"}
            return
        try:
            directory = kannel.ensure_kannel()
            if directory is None:
                self.results["kannel"] = {
                    "error": "Kannel is not installed and could not be "
                    "installed (apt-get install kannel)"
                }
                return
            result = smsc.call(
                kannel.measure_kannel_async(
                    self.plan.e2e_s,
                    concurrency,
                    smsc=smsc.smsc,
                    smsc_system_id=SMSC_ID,
                    smsc_password=SMSC_PASSWORD,
                    window=10,
                    workdir=self.workdir / "kannel",
                    drain_s=90.0,
                ),
                timeout=400,
            )
            result["version"] = kannel.kannel_version(directory)
            # On wrk's clock, as the iwork-mc figures are.
            if result.get("requests") and result.get("wrk_rate"):
                result["rate"] = result["accepted"] * result["wrk_rate"] / result["requests"]
            else:
                result["rate"] = result.get("accept_rate", 0.0)
            self.results["kannel"] = result
            self.log(
                f"  Kannel {result['version']}: accept {result['rate']:.0f}/s, p99 "
                f"{result['p99_ms']:.1f} ms, → SMSC {result['delivery_rate']:.0f}/s"
            )
        except Exception as exc:
            line = (str(exc).strip().splitlines() or [""])[0]
            self.results["kannel"] = {"error": f"{type(exc).__name__}: {line}"}
            self.log(f"  Kannel: not measured — {type(exc).__name__}: {line}")

    def overload(self, sustainable: float) -> None:
        """Flow control at about the sustainable rate, driven at twice that for overload_s."""
        limit = max(50, int(round(sustainable * self.plan.limit_share, -1)))
        db = Database("sqlite", self.workdir, "overload", rate=(limit, OVERLOAD_BURST))
        port = free_port()
        env = db.env()
        command = self.iwork("serve", "--port", str(port))
        self.command("overload", command, env)
        concurrency, seconds = 256, self.plan.overload_s
        target = 2 * sustainable
        pause_ms = max(1.0, concurrency * 1000 / target - 1.0)
        calls = self.calls.get("OVL", int(target * 1.5 * seconds) + 2000)
        with running(
            command, env=env, cpus=ONE_CPU, log=db.data_dir / "serve.log", port=port
        ) as server:
            warm_up(port, self.calls.get("WARM", 20))
            r = self.measure(server, port, calls, concurrency, seconds, pause_ms=pause_ms)
        r.update(
            backend="sqlite",
            processes=1,
            rate_limit=limit,
            pause_ms=pause_ms,
            sustainable=sustainable,
            target_rate=target,
            offered_ratio=r["answer_rate"] / sustainable,
        )
        self.results["overload"] = r
        self.log(
            f"  overload: offered {r['answer_rate']:.0f}/s ({r['offered_ratio']:.1f}x), "
            f"accepted {r['rate']:.0f}/s, code 7 {r['limited']}, p99 {r['p99_ms']:.1f} ms, "
            f"max {r['max_ms']:.0f} ms"
        )
        self.check_stored(db, "OVL", r, "overload")
        self.check(
            "overload: flow control answers code 7",
            r["limited"] > 0,
            f"{r['limited']} code-7 answers of {r['answers']}",
        )
        bound = 1000.0
        self.check(
            "overload: the server keeps answering, latency bounded",
            r["socket_errors"] == 0 and r["max_ms"] < bound,
            f"{r['socket_errors']} socket errors/timeouts, p99 {r['p99_ms']:.1f} ms, "
            f"max {r['max_ms']:.0f} ms (bound {bound:.0f} ms)",
        )

    def memory(self, concurrency: int) -> None:
        db = Database("sqlite", self.workdir, "memory")
        port = free_port()
        command = self.iwork("serve", "--port", str(port))
        seconds = self.plan.memory_s
        calls = self.calls_for("MEM", seconds, floor=1000)
        raw: list[tuple[float, int, float]] = []  # (seconds since wrk started, RSS kB, CPU s)
        with running(
            command, env=db.env(), cpus=ONE_CPU, log=db.data_dir / "serve.log", port=port
        ) as server:
            warm_up(port, self.calls.get("WARM", 20))
            idle = server.rss_kb()

            def sample(t: float) -> None:
                raw.append((t, server.rss_kb(), server.cpu()))

            r = self.measure(server, port, calls, concurrency, seconds, every_second=sample)
            sample(raw[-1][0] + 1 if raw else 0.0)
        # The load starts once wrk has read its calls: the first second the server works.
        start = next((i for i in range(1, len(raw)) if raw[i][2] - raw[i - 1][2] > 0.2), 1) - 1
        t0 = raw[start][0]
        samples = [(round(t - t0, 1), kb) for t, kb, _ in raw[start:]]
        r.update(backend="sqlite", processes=1, idle_rss_kb=idle, samples=samples)
        self.check_stored(db, "MEM", r, "memory run")
        at_5 = next((kb for t, kb in samples if t >= 5), samples[0][1])
        r["start_rss_kb"], r["end_rss_kb"] = at_5, samples[-1][1]
        r["growth"] = r["end_rss_kb"] / r["start_rss_kb"] - 1 if r["start_rss_kb"] else 0.0
        self.results["memory"] = r
        self.log(
            f"  memory: RSS idle {idle / 1024:.1f} MB, 5 s into the load {at_5 / 1024:.1f} MB, "
            f"after {samples[-1][0]:.0f} s {samples[-1][1] / 1024:.1f} MB ({r['growth']:+.1%}), "
            f"{r['rate']:.0f}/s"
        )

    # -- the whole run

    def run(self) -> None:
        plan, begun = self.plan, time.monotonic()
        n = plan.processes
        self.log(f"iwork-mc bench, {plan.mode} mode")
        if plan.ceiling:
            self.log("ceiling (bench/ceiling.py)")
            self.ceiling(1, plan.levels)
        if plan.ceiling_n:
            self.ceiling(n, (plan.main_level,))
        self.log("accept, SQLite")
        sqlite_1 = self.accept("sqlite", 1, plan.levels)
        sqlite_n = self.accept("sqlite", n, plan.levels) if plan.sqlite_n else None
        ones = [
            r
            for r in self.results["accept"]
            if r["backend"] == "sqlite" and r["processes"] == 1 and r["errors"] == 0
        ]
        # Sustainable: the rate one process keeps up at the main concurrency level.
        main = [r["rate"] for r in ones if r["concurrency"] == plan.main_level and r["rate"]]
        sustainable = (main or [r["rate"] for r in ones if r["rate"] > 0] or [500.0])[0]
        self.results["sustainable"] = sustainable
        smsc = SMSCThread()
        try:
            if plan.drains:
                self.log("drain (handed to the channel), SQLite")
                self.drain(sqlite_1, 1, "sandbox", None)
                self.drain(sqlite_1, n, "sandbox", None)
            if plan.drains and plan.smpp_drain and sqlite_n is not None:
                self.drain(sqlite_n, 1, "smpp", smsc)
                self.drain(sqlite_n, n, "smpp", smsc)
            if plan.drains and plan.webhook_drain and sqlite_n is not None:
                receiver = WebhookReceiver()
                try:
                    self.drain(sqlite_n, 1, "webhook", None, receiver)
                finally:
                    receiver.close()
            if plan.postgres:
                self.postgres(smsc)
            self.log("end to end through SMPP")
            self.e2e_smpp(smsc, plan.main_level)
            if plan.kannel:
                self.log("Kannel (bench/kannel.py)")
                self.kannel(smsc, plan.main_level)
            else:
                self.results["kannel"] = {"error": f"skipped in {plan.mode} mode"}
        finally:
            smsc.close()
        self.log("overload")
        self.overload(sustainable)
        if plan.memory_s:
            self.log(f"memory ({plan.memory_s} s)")
            self.memory(plan.main_level)
        else:
            self.results["skipped"]["memory"] = f"skipped in {plan.mode} mode"
        self.results["elapsed_s"] = round(time.monotonic() - begun, 1)

    def postgres(self, smsc: SMSCThread) -> None:
        plan = self.plan
        self.log("accept, PostgreSQL")
        try:
            import psycopg

            with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                self.results["postgres_version"] = row[0] if row else "?"
        except Exception as exc:
            self.results["skipped"]["postgres"] = f"PostgreSQL unreachable: {exc}"
            self.log(f"  PostgreSQL: not measured — {exc}")
            return
        databases = []
        try:
            for processes in sorted({1, plan.processes}):
                databases.append(self.accept("postgres", processes, plan.levels))
            for processes in plan.pg_curve:
                databases.append(self.accept("postgres", processes, (plan.main_level,)))
            if plan.pg_drain:
                self.drain(databases[0], 1, "sandbox", None)
                self.drain(databases[0], plan.processes, "sandbox", None)
        finally:
            for db in databases:
                db.drop()


def _percentile(values: list[int], p: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return float(values[index])


# -- the machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def run(*command: str) -> str:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=20, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    lscpu = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in run("lscpu").splitlines())
    )
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"MemTotal:\s+(\d+)", meminfo)
    versions = {}
    for package in ("uvicorn", "uvloop", "httptools", "starlette", "psycopg"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "cpu": lscpu.get("Model name", platform.processor()),
        "cores": os.cpu_count(),
        "memory_gib": round(int(total.group(1)) / 1024 / 1024, 1) if total else None,
        "kernel": platform.release(),
        "os": run("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "hypervisor": lscpu.get("Hypervisor vendor", ""),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": (run("sh", "-c", "wrk -v 2>&1 | head -n1").split(" [")[0]),
        "git_commit": run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(run("git", "-C", str(ROOT), "status", "--porcelain", "--", "src")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "packages": versions,
        "pinning": "server CPU 0, load CPU 1 (taskset)" if TWO_CORES else "none",
    }


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer levels, SQLite only (< 1 min)")
    mode.add_argument(
        "--check-only",
        action="store_true",
        help="correctness checks only, tiny durations; writes no report",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the report [docs/benchmarks.md; with --quick: var/bench-quick/benchmarks.md]",
    )
    parser.add_argument("--json", type=Path, help="the raw results [bench/results/<mode>.json]")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for 3 s in a row with the machine under 10%% busy",
    )
    args = parser.parse_args(argv)
    plan = CHECK if args.check_only else QUICK if args.quick else STANDARD
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or `make bench`)", file=sys.stderr)
        return 2
    if TWO_CORES:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process, its threads and wrk: CPU 1
    argv_shown = ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
    results: dict[str, Any] = {"command": shlex.join(argv_shown), "machine": machine()}
    results["background_busy"] = wait_quiet(args.wait_quiet)
    if results["background_busy"] > 0.1:
        print(
            f"warning: the machine is {results['background_busy']:.0%} busy before the run: "
            "the figures will be low",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="iwork-mc-bench-") as tmp:
        bench = Bench(plan, Path(tmp), results)
        try:
            bench.run()
        except Exception:
            traceback.print_exc()
            bench.check("the run completed", False, traceback.format_exc(limit=3).strip())
    failed = [c for c in results["checks"] if not c["ok"]]
    # The raw results, to rebuild the report with bench/report.py (bench/results/ is ignored).
    raw = args.json or ROOT / "bench" / "results" / f"{plan.mode}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    if not args.check_only:
        import report

        out = args.out or (
            ROOT / "var" / "bench-quick" / "benchmarks.md"
            if args.quick
            else ROOT / "docs" / "benchmarks.md"
        )
        written = report.write(results, out)
        print(f"wrote {', '.join(str(p) for p in written)}")
    print(
        f"correctness checks: {len(results['checks']) - len(failed)} ok, {len(failed)} failed"
        f" ({results.get('elapsed_s', '?')} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
