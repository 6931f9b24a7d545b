"""Kannel, the reference peer: sendsms (smsbox) in, SMPP (bearerbox) out to the same FakeSMSC.

    python bench/kannel.py [--seconds 10] [--concurrency 16 64] [--window 10]
    python bench/kannel.py --ensure      # install Kannel if missing, print where it is

Kannel 1.4.5 (Debian's ``kannel`` package) runs as its two usual processes:
``bearerbox`` (the core: store, routing, the SMPP client) and ``smsbox`` (the
``/cgi-bin/sendsms`` HTTP interface), both pinned to CPU 0 where the machine
has two cores.  wrk replays distinct pre-generated ``GET /cgi-bin/sendsms``
calls and ``iwork_mc.testing.FakeSMSC`` takes the ``submit_sm`` PDUs, both on
CPU 1, as in ``e2e_smpp.py``.  Reported per concurrency level: the accept rate
and latency (an answer other than 202 "0: Accepted for delivery" is a
failure), the rate at which the answered messages reached the SMSC (accepted
``submit_sm``), from the first request to the last one, and the peak RSS of
both boxes.  A level takes ``--seconds``, plus the time Kannel needs to send
its backlog (10-20 s after a 10 s run here), plus about 2 s.

How Kannel is set up, and why (see :func:`kannel_conf`):

* ``store-type = file``: bearerbox appends every message it accepts to its
  store file (a ``write`` under a lock) before it acknowledges it to smsbox,
  and smsbox answers 202 only on that acknowledgement (``immediate-sendsms-reply``
  is off), so accepted means written, as with iwork-mc; the message is
  acknowledged in the file when the SMSC took it, and the file is rewritten
  from memory every ``store-dump-freq`` (10) s.  Neither Kannel store fsyncs:
  they survive a crash of Kannel, not of the machine, a weaker promise than
  iwork-mc's SQLite with ``synchronous=FULL``.  ``store-type = spool`` (a file
  per message, created, then unlinked when sent) promises the same, but on
  this machine's ext4 it spends bearerbox's CPU in the kernel's inode
  allocator (``ext4_create`` → ``recently_deleted``, 50 % of its profile),
  and accepts 400-900 requests/s instead of ~4,200, worse as the run goes on:
  that measures the file system more than Kannel (``--store-type spool``).
* ``smsc = smpp``: one transceiver bind, ``max-pending-submits`` = the window
  (10, iwork-mc's default ``IWORK_MC_SMPP_WINDOW``).
* ``dlr-storage = internal``, and every request asks for delivery reports
  (``dlr-mask=3``, so ``registered_delivery`` = 1, as iwork-mc asks), so
  Kannel keeps a DLR entry per message, matches the FakeSMSC's receipt with
  it and hands the report to the application: an HTTP GET from smsbox to
  ``dlr-url``, answered by :class:`DlrSink` in this process (CPU 1).
* ``log-level = 2`` (warnings) in both boxes and no access log, as iwork-mc
  runs with ``--log-level warning`` (at level 1 smsbox logs every request);
  ``-v 4`` keeps the boxes' default debug output off stderr.
* Every listener on 127.0.0.1 only, every client allowed from 127.0.0.1 only.

The boxes run with ``setpriv --pdeathsig TERM``: if the thread that started
them dies without stopping them (the benchmark killed), they are stopped too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from accept import pinned  # taskset -c CPU on a two-core machine, as every bench

from iwork_mc.testing import FakeSMSC, SMSCPolicy

__all__ = [
    "DlrSink",
    "KannelHandle",
    "ensure_kannel",
    "find_kannel",
    "free_port",
    "kannel_conf",
    "kannel_version",
    "measure_kannel",
    "measure_kannel_async",
    "running_kannel",
    "write_sendsms_calls",
]

BENCH = Path(__file__).resolve().parent
REPLAY = BENCH / "kannel_replay.lua"
PACKAGE = "kannel"
#: Where Debian puts the boxes; /usr/sbin is not on a non-root PATH.
SEARCH_DIRS = (Path("/usr/sbin"), Path("/usr/local/sbin"), Path("/usr/bin"), Path("/usr/local/bin"))
#: Calls prepared per second of run; a faster Kannel would replay some (as repeats).
MAX_RATE = 20_000
#: The text iwork-mc renders for the seed event of accept.py / e2e_smpp.py (UCS-2, one part).
TEXT = "iwork-action: name: 张三 http://www.aaa.com"
SENDER = "10000"
USERNAME = PASSWORD = "bench"
#: bearerbox's message store: "spool" (a file a message), "file" (one log), "none".
STORE_TYPE = "file"
STORE_LOCATIONS = {"spool": "spool", "file": "store"}
#: For 127.0.0.1 only: no proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: Seconds to wait after wrk ends for the last answered message to reach the SMSC.
DRAIN_S = 120.0


# -- installing ------------------------------------------------------------------------


def find_kannel() -> Path | None:
    """The directory holding both ``bearerbox`` and ``smsbox``, or ``None``."""
    candidates = [Path(p).parent for p in (shutil.which("bearerbox"),) if p]
    for directory in [*candidates, *SEARCH_DIRS]:
        if all(os.access(directory / box, os.X_OK) for box in ("bearerbox", "smsbox")):
            return directory
    return None


def kannel_version(directory: Path) -> str:
    """``bearerbox --version``'s version string (``1.4.5``), or ``"?"``."""
    try:
        out = subprocess.run(
            [str(directory / "bearerbox"), "--version"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"version `([^']+)'", out.stdout + out.stderr)
    return found.group(1) if found else "?"


def _pidfiles() -> dict[Path, int]:
    """PIDs in the Debian init script's pid files (it would start the boxes on install)."""
    pids = {}
    for path in Path("/var/run/kannel").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids[path] = int(path.read_text().split()[0])
    return pids


def _stop_started_by_postinst(before: dict[Path, int]) -> None:
    """Stop the boxes whose pid files appeared during the install (SIGTERM, then SIGKILL)."""
    started = []
    for path, pid in _pidfiles().items():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if before.get(path) != pid and name in ("bearerbox", "smsbox", "wapbox"):
            started.append(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in started:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
            time.sleep(0.1)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    return (errors or lines or [f"exit status {result.returncode}"])[-1].strip()


def ensure_kannel(*, install: bool = True) -> Path | None:
    """
    Find Kannel's ``bearerbox`` and ``smsbox``, installing Debian's ``kannel`` if missing.

    Idempotent and silent when Kannel is there.  Otherwise runs
    ``apt-get install -y kannel`` (after ``apt-get update`` if that fails),
    and stops the boxes the package's init script may start on a machine
    without a policy-rc.d that forbids it.

    Returns:
        The directory holding both binaries, or ``None`` after printing one
        line to stderr that says why Kannel cannot be had.
    """
    found = find_kannel()
    if found is not None:
        return found

    def fail(reason: str) -> None:
        print(f"kannel: not available: {reason}", file=sys.stderr)

    if not install:
        fail("bearerbox/smsbox not found (install the Debian package kannel)")
        return None
    if shutil.which("apt-get") is None:
        fail("bearerbox/smsbox not found and there is no apt-get to install package kannel")
        return None
    if os.geteuid() != 0:
        fail("bearerbox/smsbox not found; installing package kannel needs root")
        return None
    before = _pidfiles()
    try:
        result = _apt("install", "-y", "--no-install-recommends", PACKAGE)
        if result.returncode != 0:
            update = _apt("update")
            if update.returncode != 0:
                fail(f"apt-get update failed: {_last_error(update)}")
                return None
            result = _apt("install", "-y", "--no-install-recommends", PACKAGE)
    except subprocess.TimeoutExpired as exc:
        fail(f"{' '.join(map(str, exc.cmd))} took over {exc.timeout:.0f} s")
        return None
    finally:
        _stop_started_by_postinst(before)
    if result.returncode != 0:
        fail(f"apt-get install {PACKAGE} failed: {_last_error(result)}")
        return None
    found = find_kannel()
    if found is None:
        fail(f"package {PACKAGE} installed but bearerbox/smsbox not found")
    return found


# -- running ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pdeathsig() -> list[str]:
    """``setpriv --pdeathsig TERM``: the child gets SIGTERM when the thread that started it ends."""
    return ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


def kannel_conf(
    *,
    workdir: Path,
    smsc_port: int,
    box_port: int,
    sendsms_port: int,
    admin_port: int,
    smsc_system_id: str,
    smsc_password: str,
    window: int = 10,
    store_type: str = STORE_TYPE,
    log_level: int = 2,
    username: str = USERNAME,
    password: str = PASSWORD,
    admin_password: str = "bench-admin",
) -> str:
    """The text of a minimal kannel.conf for one SMPP transceiver and one sendsms user."""

    def group(name: str, **options: str | int) -> str:
        lines = [f"group = {name}"]
        for key, value in options.items():
            text = str(value) if isinstance(value, int) else f'"{value}"'
            lines.append(f"{key.replace('_', '-')} = {text}")
        return "\n".join(lines) + "\n"

    # Every listener on 127.0.0.1 only; every client allowed from 127.0.0.1 only.
    return "\n".join(
        [
            group(
                "core",
                admin_port=admin_port, admin_interface="127.0.0.1",
                admin_password=admin_password, admin_deny_ip="*.*.*.*",
                admin_allow_ip="127.0.0.1", smsbox_port=box_port,
                smsbox_interface="127.0.0.1", box_deny_ip="*.*.*.*", box_allow_ip="127.0.0.1",
                log_file=str(workdir / "bearerbox.log"), log_level=log_level,
                **({"store_type": store_type,
                    "store_location": str(workdir / STORE_LOCATIONS[store_type])}
                   if store_type != "none" else {}),
                dlr_storage="internal",
            ),
            group(
                "smsc",
                smsc="smpp", smsc_id="fakesmsc", host="127.0.0.1", port=smsc_port,
                transceiver_mode=1, smsc_username=smsc_system_id,
                smsc_password=smsc_password, system_type="", max_pending_submits=window,
                enquire_link_interval=30, reconnect_delay=1,
            ),
            group(
                "smsbox",
                bearerbox_host="127.0.0.1", bearerbox_port=box_port,
                sendsms_port=sendsms_port, sendsms_interface="127.0.0.1",
                log_file=str(workdir / "smsbox.log"), log_level=log_level,
            ),
            group(
                "sendsms-user",
                username=username, password=password, user_deny_ip="*.*.*.*",
                user_allow_ip="127.0.0.1", default_sender=SENDER, max_messages=1,
            ),
        ]
    )  # fmt: skip


@dataclass
class KannelHandle:
    """A running Kannel: its two boxes, where they listen, and where they write."""

    bearerbox: subprocess.Popen[bytes]
    smsbox: subprocess.Popen[bytes]
    workdir: Path
    conf: Path
    sendsms_port: int
    admin_port: int
    box_port: int
    username: str = USERNAME
    password: str = PASSWORD
    admin_password: str = "bench-admin"
    #: VmHWM (kB) by box name, read when the boxes are stopped (and by :meth:`peak_rss_kb`).
    peak_rss: dict[str, int] = field(default_factory=dict)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def status(self) -> str:
        """bearerbox's ``/status.txt`` (the SMSC link's state and the queues)."""
        query = urlencode({"password": self.admin_password})
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?{query}"
        with _LOCAL.open(url, timeout=2) as answer:
            return str(answer.read().decode("utf-8", "replace"))

    def smsc_online(self) -> bool:
        """Whether bearerbox reports the SMPP link bound (``online``)."""
        try:
            status = self.status()
        except OSError:
            return False
        return re.search(r"^\s*fakesmsc\[.*\(online ", status, re.MULTILINE) is not None

    def peak_rss_kb(self) -> dict[str, int]:
        """Peak resident set (VmHWM, kB) of each box so far, as far as they still run."""
        for name, process in (("bearerbox", self.bearerbox), ("smsbox", self.smsbox)):
            hwm = _vm_hwm(process.pid)
            if hwm is not None:
                self.peak_rss[name] = max(hwm, self.peak_rss.get(name, 0))
        return dict(self.peak_rss)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, s) each box has used so far, as far as they still run."""
        used = {}
        for name, process in (("bearerbox", self.bearerbox), ("smsbox", self.smsbox)):
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return used

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of both boxes' logs and stderr, for error messages."""
        return _log_tail(self.workdir, lines)


def _vm_hwm(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def _wait_until(
    check: Callable[[], bool],
    within: float,
    what: str,
    processes: dict[str, subprocess.Popen[bytes]],
    workdir: Path,
) -> None:
    """Poll ``check()`` every 50 ms until it is true; RuntimeError after ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"kannel: {name} exited "
                    f"({process.returncode}) while {what}\n{_log_tail(workdir)}"
                )
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"kannel: timed out after {within:.0f} s {what}\n{_log_tail(workdir)}")


def _log_tail(workdir: Path, lines: int = 15) -> str:
    """The last lines of both boxes' logs and stderr, for error messages."""
    parts = []
    for name in ("bearerbox.stderr", "bearerbox.log", "smsbox.stderr", "smsbox.log"):
        path = workdir / name
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name}\n" + "\n".join(text))
    return "\n".join(parts)


def _answers(url: str) -> bool:
    try:
        with _LOCAL.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the box listens
    except OSError:
        return False


@contextlib.contextmanager
def running_kannel(
    smsc_port: int,
    workdir: Path,
    *,
    sendsms_port: int,
    admin_port: int,
    smsc_system_id: str,
    smsc_password: str,
    window: int = 10,
    box_port: int | None = None,
    store_type: str = STORE_TYPE,
    log_level: int = 2,
    cpu: int | None = 0,
    wait_bound: bool = True,
    start_timeout: float = 30.0,
    stop_timeout: float = 15.0,
) -> Iterator[KannelHandle]:
    """
    Run bearerbox and smsbox against the SMSC on 127.0.0.1:``smsc_port``.

    Writes ``workdir/kannel.conf`` (see :func:`kannel_conf`), starts bearerbox,
    waits for its admin port, starts smsbox, waits until ``/cgi-bin/sendsms``
    answers and (with ``wait_bound``) until the SMPP link is online.  Logs go
    to ``workdir`` (``*.log``, ``*.stderr``), the message store to
    ``workdir/store`` (or ``workdir/spool/``).  On exit both boxes are stopped
    by PID, smsbox first: SIGTERM, then SIGKILL after ``stop_timeout``
    seconds; their peak RSS is read first.  Started through ``setpriv
    --pdeathsig TERM``, they also get SIGTERM when the thread that entered the
    context ends, so enter and leave it on a thread that outlives the run (the
    main thread, or an event loop's default executor as
    :func:`measure_kannel_async` does).

    Args:
        cpu: pin both boxes to this CPU with taskset where the machine has two
            cores (``None``: do not pin).
        box_port: the bearerbox port smsbox connects to (default: a free one).

    Raises:
        RuntimeError: Kannel is missing, a box exited, or a wait timed out.
    """
    directory = find_kannel()
    if directory is None:
        raise RuntimeError("kannel: bearerbox/smsbox not found (see ensure_kannel())")
    workdir.mkdir(parents=True, exist_ok=True)
    if store_type == "spool":
        (workdir / "spool").mkdir(exist_ok=True)
    box_port = box_port if box_port is not None else free_port()
    conf = workdir / "kannel.conf"
    conf.write_text(
        kannel_conf(
            workdir=workdir, smsc_port=smsc_port, box_port=box_port,
            sendsms_port=sendsms_port, admin_port=admin_port,
            smsc_system_id=smsc_system_id, smsc_password=smsc_password,
            window=window, store_type=store_type, log_level=log_level,
        ),
        encoding="utf-8",
    )  # fmt: skip
    prefix = pinned(cpu) if cpu is not None else []

    prefix += _pdeathsig()

    def start(box: str) -> subprocess.Popen[bytes]:
        # -v 4: only panics on stderr (default is debug); the log file gets log-level.
        with (workdir / f"{box}.stderr").open("wb") as err:
            return subprocess.Popen(
                [*prefix, str(directory / box), "-v", "4", str(conf)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=workdir,
            )  # fmt: skip

    bearerbox = start("bearerbox")
    smsbox: subprocess.Popen[bytes] | None = None
    handle: KannelHandle | None = None
    try:
        admin = f"http://127.0.0.1:{admin_port}/"
        _wait_until(
            lambda: _answers(admin), start_timeout, "waiting for bearerbox's admin port",
            {"bearerbox": bearerbox}, workdir,
        )  # fmt: skip
        smsbox = start("smsbox")
        handle = KannelHandle(
            bearerbox=bearerbox, smsbox=smsbox, workdir=workdir, conf=conf,
            sendsms_port=sendsms_port, admin_port=admin_port, box_port=box_port,
        )  # fmt: skip
        boxes = {"bearerbox": bearerbox, "smsbox": smsbox}
        url = handle.sendsms_url
        _wait_until(lambda: _answers(url), start_timeout, "waiting for sendsms", boxes, workdir)
        if wait_bound:
            _wait_until(
                handle.smsc_online, start_timeout, "waiting for the SMPP bind", boxes, workdir
            )
        yield handle
    finally:
        if handle is not None:
            handle.peak_rss_kb()
        try:
            if smsbox is not None:
                _stop(smsbox, stop_timeout)
        finally:
            _stop(bearerbox, stop_timeout)


# -- measuring -------------------------------------------------------------------------


def write_sendsms_calls(
    path: Path,
    count: int,
    *,
    tag: int = 0,
    username: str = USERNAME,
    password: str = PASSWORD,
    text: str = TEXT,
    dlr_url: str | None = None,
) -> None:
    """
    Write ``count`` distinct sendsms calls, one ``/cgi-bin/sendsms?…`` path a line.

    Each goes to its own handset (``139`` + ``tag`` + a serial number), with
    the same UCS-2 text iwork-mc renders for the seed event.  With
    ``dlr_url``, each asks for delivered/failed reports (``dlr-mask=3``).
    """
    fixed = {"username": username, "password": password, "text": text, "charset": "UTF-8",
             "coding": 2}  # fmt: skip
    if dlr_url is not None:
        fixed |= {"dlr-mask": 3, "dlr-url": dlr_url}
    query = urlencode(fixed)
    with path.open("w", encoding="ascii") as out:
        out.writelines(f"/cgi-bin/sendsms?to=139{tag % 10}{i:07d}&{query}\n" for i in range(count))


async def _wrk(url: str, calls: Path, concurrency: int, seconds: float) -> dict[str, float]:
    command = [
        *pinned(1), *_pdeathsig(), "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(REPLAY), url, "--", str(calls),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError("wrk did not finish in time") from None
    output = out.decode()
    if process.returncode != 0 or " requests in " not in output:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}{output}")
    figures = {k: float(v) for k, v in re.findall(r"^([A-Z0-9_]+) (\d+)$", output, re.MULTILINE)}
    summary = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", output)
    if summary is None:
        raise RuntimeError(f"wrk's output not understood: {output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[summary.group(3)]
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    return {
        "requests": int(summary.group(1)), "duration_s": float(summary.group(2)) * scale,
        "rate": float(rate.group(1)) if rate else 0.0, "socket_errors": errors, **figures,
    }  # fmt: skip


class _Taken:
    """
    Counts the ``submit_sm`` a FakeSMSC took from now on, looking at each once.

    (``FakeSMSC.accepted`` builds a list of all of them: polled every 10 ms
    through a long run, it would take the CPU the FakeSMSC needs.)
    """

    def __init__(self, smsc: FakeSMSC) -> None:
        self.smsc = smsc
        self.seen = len(smsc.submissions)
        self.count = 0

    def __call__(self) -> int:
        new = self.smsc.submissions[self.seen :]
        self.seen += len(new)
        self.count += sum(1 for submission in new if submission.accepted)
        return self.count


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class DlrSink:
    """
    The ``dlr-url`` service: answers every GET with 200 and counts them.

    Kannel hands each delivery report to the application as an HTTP GET from
    smsbox; this is the cheapest application there is (keep-alive, no body).
    """

    def __init__(self) -> None:
        self.reports = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dlr"

    async def __aenter__(self) -> DlrSink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.reports += 1
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def measure_kannel_async(
    seconds: float,
    concurrency: int,
    *,
    smsc: FakeSMSC | None = None,
    smsc_system_id: str = "bench",
    smsc_password: str = "bench",
    window: int = 10,
    dlr: bool = True,
    store_type: str = STORE_TYPE,
    workdir: Path | None = None,
    drain_s: float = DRAIN_S,
) -> dict[str, Any]:
    """
    One Kannel run at one concurrency level, in the running event loop.

    Pass ``smsc``, a started FakeSMSC in this loop that accepts
    ``smsc_system_id``/``smsc_password``, or get one of its own.  Its counters
    are read as differences, so one FakeSMSC can serve several runs.  Blocking
    work (starting and stopping Kannel) runs in a thread, so the FakeSMSC keeps
    answering.  The figures are those of :func:`measure_kannel`.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    if find_kannel() is None:
        raise RuntimeError("kannel: bearerbox/smsbox not found (see ensure_kannel())")
    async with contextlib.AsyncExitStack() as stack:
        if smsc is None:
            policy = SMSCPolicy(system_id=smsc_system_id, password=smsc_password)
            smsc = await stack.enter_async_context(FakeSMSC(policy))
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kannel-")))
        workdir.mkdir(parents=True, exist_ok=True)
        sink = await stack.enter_async_context(DlrSink())
        calls = workdir / f"calls-{concurrency}.txt"
        await asyncio.to_thread(
            write_sendsms_calls, calls, int(MAX_RATE * seconds), tag=concurrency,
            dlr_url=sink.url if dlr else None,
        )  # fmt: skip
        kannel = running_kannel(
            smsc.port, workdir / "kannel", sendsms_port=free_port(), admin_port=free_port(),
            smsc_system_id=smsc_system_id, smsc_password=smsc_password, window=window,
            store_type=store_type,
        )  # fmt: skip
        handle = await asyncio.to_thread(kannel.__enter__)
        try:
            taken, acked0 = _Taken(smsc), smsc.receipts_acked
            boxes0 = handle.cpu_seconds()
            own0 = resource.getrusage(resource.RUSAGE_SELF)
            children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            launched = time.monotonic()
            result = await _wrk(handle.sendsms_url, calls, concurrency, seconds)
            # wrk loads the calls before its first request: time counts from there.
            started = launched + max(time.monotonic() - launched - result["duration_s"], 0.0)
            accept_s = result["duration_s"]
            answered = int(result["requests"])
            ok = max(answered - int(result["FAILURES"]), 0)
            # When the last answered message reached the SMSC, its receipt was
            # acknowledged by Kannel, and the report reached the application.
            done: dict[str, float] = {}
            # (Every message that reached the SMSC: wrk leaves some unanswered at its end.)
            goals: dict[str, Callable[[], bool]] = {
                "smsc": lambda: taken() >= ok,
                **({"receipts": lambda: smsc.receipts_acked - acked0 >= max(ok, taken()),
                    "reports": lambda: sink.reports >= max(ok, taken())} if dlr else {}),
            }  # fmt: skip
            deadline = time.monotonic() + drain_s
            while len(done) < len(goals) and time.monotonic() < deadline:
                for name, reached in goals.items():
                    if name not in done and reached():
                        done[name] = time.monotonic() - started
                await asyncio.sleep(0.01)
            ended = time.monotonic() - started
            cpu_wall_s = time.monotonic() - launched
            handle.peak_rss_kb()
            # CPU seconds over the run: the boxes, wrk (the only child reaped
            # meanwhile), and this process (FakeSMSC and the DLR sink).
            cpu = {
                name: used - boxes0.get(name, 0.0) for name, used in handle.cpu_seconds().items()
            }
            cpu["wrk"] = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(children0)
            cpu["fakesmsc"] = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(own0)
        finally:
            await asyncio.to_thread(kannel.__exit__, None, None, None)
        delivered = taken()
        # The rate of the answered messages up to the last of them, or of all so far.
        delivery_s = done.get("smsc", ended)
        delivery_rate = (ok if "smsc" in done else delivered) / delivery_s
        return {
            "concurrency": concurrency,
            "seconds": seconds,
            "window": window,
            "dlr": dlr,
            "store_type": store_type,
            "requests": answered,
            "accepted": ok,
            "failures": int(result["FAILURES"]) + int(result["socket_errors"]),
            "accept_rate": result["rate"] * ok / answered if answered else 0.0,
            "wrk_rate": result["rate"],
            "p50_ms": result["P50_US"] / 1000,
            "p90_ms": result["P90_US"] / 1000,
            "p99_ms": result["P99_US"] / 1000,
            "max_ms": result["MAX_US"] / 1000,
            "accept_s": accept_s,
            "delivered": delivered,
            "delivered_all": "smsc" in done,
            "delivery_s": delivery_s,
            "delivery_rate": delivery_rate,
            "receipts_acked": smsc.receipts_acked - acked0,
            "receipts_s": done.get("receipts"),
            "reports": sink.reports,
            "reports_s": done.get("reports"),
            "cpu_s": {name: round(used, 2) for name, used in cpu.items()},
            "cpu_wall_s": cpu_wall_s,
            "rss_kb": {"bearerbox": handle.peak_rss.get("bearerbox", 0),
                       "smsbox": handle.peak_rss.get("smsbox", 0)},
        }  # fmt: skip


def measure_kannel(
    seconds: float,
    concurrency: int,
    *,
    smsc_system_id: str = "bench",
    smsc_password: str = "bench",
    window: int = 10,
    dlr: bool = True,
    store_type: str = STORE_TYPE,
    workdir: Path | None = None,
    drain_s: float = DRAIN_S,
) -> dict[str, Any]:
    """
    Measure Kannel at one concurrency level, with a FakeSMSC of its own.

    The FakeSMSC and the load run in a thread pinned to CPU 1 (where the
    machine has two cores), Kannel on CPU 0; the caller's own CPU affinity is
    left alone.  From a running event loop, use :func:`measure_kannel_async`.

    Returns:
        ``accept_rate`` (wrk's requests/s, less failures; ``wrk_rate``
        with them), ``requests`` (answers wrk counted), ``accepted`` (202s),
        ``p50_ms``,
        ``p90_ms``, ``p99_ms``, ``max_ms``, ``failures`` (other answers and
        socket errors); ``delivered`` (accepted ``submit_sm`` at the SMSC),
        ``delivery_s`` (first request to the last of the answered messages
        reaching the SMSC, at most ``drain_s`` after wrk ends; wrk's own
        start-up, loading the calls, left out), ``delivery_rate`` (answered
        messages / ``delivery_s``; all that reached the SMSC / the time
        waited if not all did), ``delivered_all``; ``receipts_acked`` and
        ``receipts_s`` (receipts Kannel answered, time to the last),
        ``reports`` and ``reports_s`` (DLR callbacks the DlrSink got);
        ``cpu_s`` (CPU seconds of bearerbox, smsbox, wrk and this process,
        the FakeSMSC's, over ``cpu_wall_s``); ``rss_kb`` (peak RSS of
        ``bearerbox`` and ``smsbox``); and the run's parameters.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        if os.cpu_count() == 2:
            os.sched_setaffinity(0, {1})  # this thread only
        try:
            outcome["result"] = asyncio.run(
                measure_kannel_async(
                    seconds, concurrency, smsc_system_id=smsc_system_id,
                    smsc_password=smsc_password, window=window, dlr=dlr, store_type=store_type,
                    workdir=workdir, drain_s=drain_s,
                )
            )  # fmt: skip
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="kannel-bench")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["result"])


# -- running alone ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--store-type", choices=["file", "spool", "none"], default=STORE_TYPE)
    parser.add_argument("--no-dlr", action="store_true", help="do not ask for delivery reports")
    parser.add_argument("--ensure", action="store_true", help="only find or install Kannel")
    args = parser.parse_args()

    directory = ensure_kannel()
    if directory is None:
        sys.exit(1)
    if args.ensure:
        print(f"kannel {kannel_version(directory)}: {directory}")
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    dlr = "no DLR" if args.no_dlr else "dlr-mask 3 to a local dlr-url"
    print(f"Kannel {kannel_version(directory)} (bearerbox + smsbox, store-type "
          f"{args.store_type}) → SMPP "
          f"to FakeSMSC on 127.0.0.1; {args.seconds}s a level, window {args.window}, "
          f"{dlr}")  # fmt: skip
    columns = ("req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "failed", "→SMSC/s", "drain s",
               "bb MB", "sb MB")  # fmt: skip
    print(f"{'conc':>5} " + " ".join(f"{c:>8}" for c in columns))
    for level in args.concurrency:
        started = time.monotonic()
        r = measure_kannel(
            args.seconds, level, window=args.window, dlr=not args.no_dlr, store_type=args.store_type
        )
        row = (
            f"{r['accept_rate']:8.0f}", *(f"{r[k]:8.2f}" for k in ("p50_ms", "p90_ms", "p99_ms",
            "max_ms")), f"{r['failures']:8d}", f"{r['delivery_rate']:8.0f}",
            f"{r['delivery_s'] - r['accept_s']:8.2f}",
            *(f"{r['rss_kb'][box] / 1024:8.1f}" for box in ("bearerbox", "smsbox")),
        )  # fmt: skip
        print(f"{level:>5} " + " ".join(row))
        notes = [f"answered {r['accepted']}", f"reached the SMSC {r['delivered']}"]
        if not r["delivered_all"]:
            notes[-1] += f" (NOT ALL within {DRAIN_S:.0f} s)"
        if r["dlr"]:
            for name, count, at in (("receipts acked", r["receipts_acked"], r["receipts_s"]),
                                    ("reports", r["reports"], r["reports_s"])):  # fmt: skip
                notes.append(f"{name} {count}" + (f" by {at:.1f} s" if at else ""))
        cpu = ", ".join(f"{name} {used:.1f}" for name, used in r["cpu_s"].items())
        notes.append(f"CPU s over {r['cpu_wall_s']:.1f} s: {cpu}")
        notes.append(f"run {time.monotonic() - started:.1f} s")
        print("      " + "; ".join(notes))


if __name__ == "__main__":
    main()
