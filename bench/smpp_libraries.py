"""Submit throughput of Python SMPP client libraries against one SMSC on loopback.

Every client binds as a transceiver to the same SMSC on 127.0.0.1 and submits N short
messages (registered_delivery=0, so no receipts), keeping at most WINDOW submit_sm
outstanding: through the library's own window where it has one (smpp34), through the
caller otherwise (a counter of submit_sm_resp still due). The figure is N divided by the
time from the first submit_sm to the last submit_sm_resp, measured inside the client.
docs/decisions/0001-smpp-implementation.md has the results and what they mean.

The SMSC runs in its own process, and so does each client, one client at a time, in
rounds over all the libraries (`--repeat` rounds; the table gives each one's median).
Our core and FakeSMSC run in the project's venv (this interpreter); the candidates in a
scratch venv, never the project's:

    python3 -m venv /tmp/smppcmp
    /tmp/smppcmp/bin/pip install smpplib aiosmpplib smpp.pdu3 smpp.twisted3 pyOpenSSL \
        smpp34 aiosmpp naz uvloop
    /tmp/smppcmp/bin/pip install --pre rusmppyc
    .venv/bin/python bench/smpp_libraries.py --repeat 7

`--smsc fake` (default) serves `iwork_mc.testing.FakeSMSC`; `--smsc proto` a minimal
asyncio SMSC (below) that does nothing but answer, so that the client is the bottleneck;
`--smsc smpp34` smpp34's Rust server, an SMSC written independently of ours. `--only`
picks libraries; `--serve` runs only the SMSC (prints `PORT <n>`, stops when stdin
closes); `--client NAME --port P` runs one client and prints one JSON line. Each run is
bounded: a client gives up after DEADLINE_S, the SMSC after `--lifetime` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

HOST = "127.0.0.1"
SYSTEM_ID = "bench"
PASSWORD = "secret"
DESTINATION = "8613800138000"
SOURCE = "10690000"
TEXT = b"Your code is 123456"
DEADLINE_S = 60.0  # one client run never takes longer than this

CORE = "iwork_mc.smpp"
#: How each client keeps WINDOW submit_sm outstanding, for the table.
HOW = {
    "smpplib": "blocking socket; caller counts responses (read_once)",
    "aiosmpplib": "broker.dequeue waits for a window slot; hook counts responses",
    "smpp.twisted3": "Twisted reactor; caller keeps WINDOW Deferreds in flight",
    "smpp34": "library window (window_size=WINDOW); WINDOW tasks await submit_sm",
    "rusmppyc": "WINDOW tasks await submit_sm",
    "aiosmpp": "semaphore released by the submit_sm_resp handler",
    "naz": "broker.dequeue waits for a window slot; hook counts responses",
    "iwork_mc.smpp": "one asyncio task; len(conn.pending) is the window",
}
LIBRARIES = [
    "smpplib",
    "aiosmpplib",
    "smpp.twisted3",
    "smpp34",
    "rusmppyc",
    "aiosmpp",
    "naz",
    CORE,
]


# --------------------------------------------------------------------------- the SMSCs

_HEADER = struct.Struct(">IIII")


def _pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return _HEADER.pack(16 + len(body), command_id, status, sequence) + body


async def _proto_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One ESME connection to the minimal SMSC: bind, submit_sm, enquire_link, unbind."""
    next_id = 0
    try:
        while True:
            header = await reader.readexactly(16)
            length, command_id, _status, sequence = _HEADER.unpack(header)
            if length > 16:
                await reader.readexactly(length - 16)  # the body: nothing in it matters here
            if command_id in (0x1, 0x2, 0x9):  # bind_receiver/transmitter/transceiver
                # system_id, then sc_interface_version TLV = 0x34
                resp_body = b"proto\x00" + struct.pack(">HHB", 0x0210, 1, 0x34)
                writer.write(_pdu(command_id | 0x80000000, 0, sequence, resp_body))
            elif command_id == 0x4:  # submit_sm
                next_id += 1
                writer.write(_pdu(0x80000004, 0, sequence, b"%x\x00" % next_id))
            elif command_id == 0x15:  # enquire_link
                writer.write(_pdu(0x80000015, 0, sequence))
            elif command_id == 0x6:  # unbind
                writer.write(_pdu(0x80000006, 0, sequence))
                await writer.drain()
                break
            elif command_id & 0x80000000:  # a response: nothing to answer
                continue
            else:
                writer.write(_pdu(0x80000000, 0x3, sequence))  # generic_nack ESME_RINVCMDID
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        print(f"proto SMSC: session answered {next_id} submit_sm", file=sys.stderr, flush=True)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _serve(kind: str, port: int, lifetime: float) -> None:
    if kind == "fake":
        from iwork_mc.testing import FakeSMSC, SMSCPolicy

        policy = SMSCPolicy(system_id=SYSTEM_ID, password=PASSWORD)
        async with FakeSMSC(policy=policy, port=port) as smsc:
            print(f"PORT {smsc.port}", flush=True)
            await _wait_for_stdin_close(lifetime)
            print(f"submits={smsc.submits} binds={smsc.binds}", file=sys.stderr, flush=True)
    elif kind == "smpp34":
        await _serve_smpp34(port, lifetime)
    else:
        server = await asyncio.start_server(_proto_session, HOST, port)
        async with server:
            bound_port = server.sockets[0].getsockname()[1]
            print(f"PORT {bound_port}", flush=True)
            await _wait_for_stdin_close(lifetime)


async def _serve_smpp34(port: int, lifetime: float) -> None:
    """An independent SMSC: smpp34's Rust server, accepting every bind and submit_sm."""
    import smpp34

    if port == 0:  # smpp34.Server does not tell which port it got
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
    server = smpp34.Server(host=HOST, port=port, system_id="smpp34")
    await server.start()
    print(f"PORT {port}", flush=True)

    async def answer() -> None:
        next_id = 0
        while True:
            event = await server.next()
            if isinstance(event, smpp34.SubmitSmEvent):
                next_id += 1
                event.accept(f"{next_id:x}")

    answering = asyncio.create_task(answer())
    await _wait_for_stdin_close(lifetime)
    answering.cancel()
    await server.stop()


async def _wait_for_stdin_close(lifetime: float) -> None:
    """Serve until the parent closes our stdin, or `lifetime` seconds at most."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), lifetime)


# --------------------------------------------------------------------------- the clients


class Result:
    """What one client run measured."""

    def __init__(self, library: str, n: int, window: int) -> None:
        self.library = library
        self.n = n
        self.window = window
        self.ok = 0
        self.failed = 0
        self.started = 0.0
        self.finished = 0.0
        self.event: asyncio.Event | None = None  # set when done, for the asyncio clients

    def start(self) -> None:
        self.started = time.perf_counter()

    def resp(self, status: int) -> None:
        if status == 0:
            self.ok += 1
        else:
            self.failed += 1
        if self.ok + self.failed == self.n:
            self.finished = time.perf_counter()
            if self.event is not None:
                self.event.set()

    @property
    def done(self) -> bool:
        return self.ok + self.failed >= self.n

    def as_dict(self) -> dict[str, Any]:
        seconds = self.finished - self.started if self.finished else float("nan")
        return {
            "library": self.library,
            "version": _version(self.library),
            "n": self.n,
            "window": self.window,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(seconds, 4),
            "rate": round(self.n / seconds, 1) if self.finished else 0.0,
        }


def _version(library: str) -> str:
    dist = {CORE: "iwork-mc"}.get(library, library)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


async def _deadline(result: Result) -> None:
    """Wait until every response is in, or DEADLINE_S."""
    result.event = asyncio.Event()
    if not result.done:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(result.event.wait(), DEADLINE_S)


def client_smpplib(port: int, n: int, window: int) -> Result:
    """smpplib: blocking sockets; the caller keeps `window` submits outstanding."""
    import smpplib.client
    import smpplib.consts
    import smpplib.exceptions

    result = Result("smpplib", n, window)
    client = smpplib.client.Client(HOST, port, timeout=10, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu, **_: result.resp(int(pdu.status)))
    client.set_error_pdu_handler(lambda pdu: result.resp(int(pdu.status)))
    client.connect()
    client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    sent = 0
    deadline = time.monotonic() + DEADLINE_S
    result.start()
    while not result.done and time.monotonic() < deadline:
        while sent < n and sent - (result.ok + result.failed) < window:
            client.send_message(
                source_addr=SOURCE,
                destination_addr=DESTINATION,
                short_message=TEXT,
                registered_delivery=0,
                data_coding=smpplib.consts.SMPP_ENCODING_DEFAULT,
            )
            sent += 1
        client.read_once()
    with contextlib.suppress(smpplib.exceptions.ConnectionError):
        client.unbind()  # smpp34's server closes without an unbind_resp
    client.disconnect()
    return result


async def client_aiosmpplib(port: int, n: int, window: int) -> Result:
    """aiosmpplib: a broker the ESME drains; its dequeue waits for a free window slot."""
    from aiosmpplib import ESME, AbstractBroker, AbstractHook, PhoneNumber, SubmitSm
    from aiosmpplib import SubmitSmResp as Resp

    result = Result("aiosmpplib", n, window)
    slots = asyncio.Semaphore(window)

    class WindowBroker(AbstractBroker):
        def __init__(self) -> None:
            self.queue: asyncio.Queue[Any] = asyncio.Queue()

        async def enqueue(self, message: Any) -> None:
            await self.queue.put(message)

        async def dequeue(self) -> Any:
            message = await self.queue.get()
            if isinstance(message, SubmitSm):
                await slots.acquire()
                if not result.started:
                    result.start()
            return message

    class CountingHook(AbstractHook):
        async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
            pass

        async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
            if isinstance(smpp_message, Resp):
                slots.release()
                result.resp(int(smpp_message.command_status))

        async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
            slots.release()
            result.resp(-1)

    esme = ESME(
        smsc_host=HOST,
        smsc_port=port,
        system_id=SYSTEM_ID,
        password=PASSWORD,
        broker=WindowBroker(),
        hook=CountingHook(),
        log_level="WARNING",
    )
    for i in range(n):
        await esme.broker.enqueue(
            SubmitSm(
                short_message=TEXT.decode(),
                source=PhoneNumber(SOURCE),
                destination=PhoneNumber(DESTINATION),
                registered_delivery=0,
                log_id=str(i),
            )
        )
    runner = asyncio.create_task(esme.start())
    await _deadline(result)
    await esme.stop()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    return result


def client_twisted(port: int, n: int, window: int) -> Result:
    """smpp.twisted3: Deferreds on Twisted's reactor; the caller keeps `window` outstanding."""
    import logging

    from smpp.pdu.operations import SubmitSM
    from smpp.pdu.pdu_types import RegisteredDelivery, RegisteredDeliveryReceipt
    from smpp.twisted.client import SMPPClientTransceiver
    from smpp.twisted.config import SMPPClientConfig
    from twisted.internet import reactor

    logging.getLogger("smpp").setLevel(logging.WARNING)
    result = Result("smpp.twisted3", n, window)
    config = SMPPClientConfig(
        host=HOST, port=port, username=SYSTEM_ID, password=PASSWORD, enquireLinkTimerSecs=30
    )
    no_receipt = RegisteredDelivery(RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED)
    sent = 0

    def submit_next(smpp: Any) -> None:
        nonlocal sent
        if sent >= n:
            return
        sent += 1
        pdu = SubmitSM(
            source_addr=SOURCE.encode(),
            destination_addr=DESTINATION.encode(),
            short_message=TEXT,
            registered_delivery=no_receipt,
        )
        deferred = smpp.sendDataRequest(pdu)
        deferred.addCallbacks(lambda resp: on_resp(smpp, 0), lambda err: on_resp(smpp, -1))

    def on_resp(smpp: Any, status: int) -> None:
        result.resp(status)
        if result.done:
            smpp.unbindAndDisconnect().addBoth(lambda _: reactor.stop())
        else:
            submit_next(smpp)

    def bound(smpp: Any) -> None:
        result.start()
        for _ in range(window):
            submit_next(smpp)

    def failed(err: Any) -> None:
        print(err, file=sys.stderr)
        reactor.stop()

    SMPPClientTransceiver(config, lambda smpp, pdu: None).connectAndBind().addCallbacks(
        bound, failed
    )
    reactor.callLater(DEADLINE_S, lambda: reactor.running and reactor.stop())
    reactor.run()
    return result


async def client_smpp34(port: int, n: int, window: int) -> Result:
    """smpp34: Rust/tokio core with its own window (window_size); `window` tasks submit."""
    import smpp34

    result = Result("smpp34", n, window)
    client = smpp34.Client(
        host=HOST,
        port=port,
        system_id=SYSTEM_ID,
        password=PASSWORD,
        bind_type="TRX",
        window_size=window,
    )
    smsc = await client.connect()
    counter = iter(range(n))

    async def worker() -> None:
        for _ in counter:
            resp = await smsc.submit_sm(
                destination_addr=DESTINATION,
                short_message=TEXT,
                source_addr=SOURCE,
                registered_delivery=0,
            )
            result.resp(resp.command_status)

    result.start()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(window))), DEADLINE_S)
    await smsc.unbind()
    await client.stop()
    return result


async def client_rusmppyc(port: int, n: int, window: int) -> Result:
    """rusmppyc: Rust client (SMPP 5.0 codec) bound as 3.4; `window` tasks submit."""
    import rusmppyc
    from rusmppyc import Client, InterfaceVersion

    result = Result("rusmppyc", n, window)
    client, events = await Client.connect(
        f"smpp://{HOST}:{port}",
        enquire_link_interval=30000,
        response_timeout=10000,
        interface_version_check=False,  # it speaks SMPP 5.0 and refuses a 3.4 bind otherwise
    )

    async def drain_events() -> None:
        async for _event in events:
            pass

    drainer = asyncio.create_task(drain_events())
    await client.bind_transceiver(
        system_id=SYSTEM_ID, password=PASSWORD, interface_version=InterfaceVersion.Smpp3_4()
    )
    counter = iter(range(n))

    async def worker() -> None:
        for _ in counter:
            try:
                await client.submit_sm(
                    source_addr=SOURCE,
                    destination_addr=DESTINATION,
                    short_message=TEXT,
                    registered_delivery=rusmppyc.RegisteredDelivery.default(),
                )
            except rusmppyc.exceptions.RusmppycException:
                result.resp(-1)
            else:
                result.resp(0)

    result.start()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(window))), DEADLINE_S)
    with contextlib.suppress(rusmppyc.exceptions.RusmppycException):
        # it raises ConnectionClosedException when the SMSC closes after unbind_resp
        await client.unbind()
        await client.close()
        await client.closed()
    drainer.cancel()
    return result


async def client_aiosmpp(port: int, n: int, window: int) -> Result:
    """aiosmpp: smpplib's API on asyncio streams; the caller keeps `window` outstanding."""
    import aiosmpp.client

    result = Result("aiosmpp", n, window)
    slots = asyncio.Semaphore(window)

    async def sent_handler(pdu: Any, **_: Any) -> None:
        slots.release()
        result.resp(int(pdu.status))

    client = aiosmpp.client.Client(HOST, port)
    client.set_message_sent_handler(sent_handler)
    await client.connect_async()
    await client.bind_transceiver_async(system_id=SYSTEM_ID, password=PASSWORD)

    async def reader() -> None:
        while not result.done:
            await client.read_once_async()

    reading = asyncio.create_task(reader())
    result.start()
    for _ in range(n):
        await asyncio.wait_for(slots.acquire(), DEADLINE_S)
        await client.send_message_async(
            source_addr=SOURCE, destination_addr=DESTINATION, short_message=TEXT
        )
    await asyncio.wait_for(reading, DEADLINE_S)
    return result


async def client_naz(port: int, n: int, window: int) -> Result:
    """naz: aiosmpplib's predecessor; same broker/hook design, same window-in-the-broker."""
    import naz

    result = Result("naz", n, window)
    slots = asyncio.Semaphore(window)

    class WindowBroker(naz.broker.BaseBroker):
        def __init__(self) -> None:
            self.queue: asyncio.Queue[Any] = asyncio.Queue()

        async def enqueue(self, message: Any) -> None:
            await self.queue.put(message)

        async def dequeue(self) -> Any:
            message = await self.queue.get()
            await slots.acquire()
            if not result.started:
                result.start()
            return message

    class CountingHook(naz.hooks.BaseHook):
        async def to_smsc(
            self, smpp_command: str, log_id: str, hook_metadata: str, pdu: bytes
        ) -> None:
            pass

        async def from_smsc(
            self, smpp_command: str, log_id: str, hook_metadata: str, status: Any, pdu: bytes
        ) -> None:
            if smpp_command == "submit_sm_resp":
                slots.release()
                result.resp(int(status.value))

    import logging

    logger = logging.getLogger("naz.bench")
    logger.setLevel(logging.WARNING)
    client = naz.Client(
        smsc_host=HOST,
        smsc_port=port,
        system_id=SYSTEM_ID,
        password=PASSWORD,
        broker=WindowBroker(),
        hook=CountingHook(),
        logger=naz.log.SimpleLogger("naz.bench", level=logging.WARNING),
    )
    for i in range(n):
        await client.broker.enqueue(
            naz.protocol.SubmitSM(
                short_message=TEXT.decode(),
                source_addr=SOURCE,
                destination_addr=DESTINATION,
                log_id=str(i),
                registered_delivery=0,
            )
        )
    await client.connect()
    await client.tranceiver_bind()
    tasks = [
        asyncio.create_task(client.dequeue_messages()),
        asyncio.create_task(client.receive_data()),
    ]
    await _deadline(result)
    for task in tasks:
        task.cancel()
    return result


async def client_core(port: int, n: int, window: int) -> Result:
    """Our sans-I/O core: a minimal asyncio ESME loop over iwork_mc.smpp.Connection."""
    from iwork_mc import smpp

    result = Result(CORE, n, window)
    reader, writer = await asyncio.open_connection(HOST, port)
    conn = smpp.Connection(our_role=smpp.Role.ESME)

    async def next_event() -> Any:
        while True:
            event = conn.next_event()
            if event is not smpp.NEED_DATA:
                return event
            conn.receive_data(await reader.read(65536))

    writer.write(conn.send(smpp.BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD)))
    bind_resp = await next_event()
    assert isinstance(bind_resp, smpp.BindTransceiverResp), bind_resp
    sent = 0
    deadline = time.monotonic() + DEADLINE_S
    result.start()
    while not result.done and time.monotonic() < deadline:
        while sent < n and len(conn.pending) < window:
            submit = smpp.SubmitSm(
                sequence_number=conn.next_sequence_number(),  # as an adapter tracking it would
                source_addr=SOURCE,
                destination_addr=DESTINATION,
                short_message=TEXT,
            )
            writer.write(conn.send(submit))
            sent += 1
        event = await next_event()
        if isinstance(event, smpp.SubmitSmResp):
            result.resp(int(event.command_status))
        elif event is smpp.CLOSED:
            break
    writer.write(conn.send(smpp.Unbind()))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(next_event(), 2)
    writer.close()
    return result


CLIENTS: dict[str, Callable[[int, int, int], Any]] = {
    "smpplib": client_smpplib,
    "aiosmpplib": client_aiosmpplib,
    "smpp.twisted3": client_twisted,
    "smpp34": client_smpp34,
    "rusmppyc": client_rusmppyc,
    "aiosmpp": client_aiosmpp,
    "naz": client_naz,
    CORE: client_core,
}


def _run(coro: Any, loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_client(name: str, port: int, n: int, window: int, loop: str) -> dict[str, Any]:
    func = CLIENTS[name]
    outcome = func(port, n, window)
    if asyncio.iscoroutine(outcome):
        outcome = _run(outcome, loop)
    assert isinstance(outcome, Result)
    return outcome.as_dict()


# --------------------------------------------------------------------------- orchestration


def _start_smsc(
    python: str, kind: str, lifetime: float, loop: str
) -> tuple[subprocess.Popen[str], int]:
    cmd = [python, __file__, "--serve", "--smsc", kind, "--lifetime", str(lifetime)]
    cmd += ["--loop", loop]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the SMSC did not start: {line!r}")
    return proc, int(line.split()[1])


def _run_one(python: str, name: str, port: int, n: int, window: int, loop: str) -> dict[str, Any]:
    cmd = [python, __file__, "--client", name, "--port", str(port)]
    cmd += ["--n", str(n), "--window", str(window), "--loop", loop]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=DEADLINE_S + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return {"library": name, "error": "timed out"}
    lines = done.stdout.strip().splitlines()
    try:
        row = dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"library": name, "error": tail[0][:160]}
    if done.returncode != 0:
        # It measured, then failed on the way out (smpp34 sometimes dies of SIGSEGV at exit).
        row["exit_status"] = done.returncode
    return row


def orchestrate(args: argparse.Namespace) -> None:
    """Run every client `repeat` times, round-robin (so load from elsewhere hits all alike)."""
    names = args.only.split(",") if args.only else LIBRARIES
    smsc_python = args.candidates_python if args.smsc == "smpp34" else sys.executable
    proc, port = _start_smsc(smsc_python, args.smsc, lifetime=900, loop=args.smsc_loop)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    load_before = os.getloadavg()[0]
    try:
        for _ in range(args.repeat):
            for name in names:
                if runs[name] and "error" in runs[name][-1]:
                    continue  # it failed once: do not spend DEADLINE_S on it again
                python = sys.executable if name == CORE else args.candidates_python
                run = _run_one(python, name, port, args.n, args.window, args.loop)
                runs[name].append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = [_summary(name, runs[name], args.n) for name in names]
    print(
        f"\nN={args.n} window={args.window} repeat={args.repeat} smsc={args.smsc} "
        f"(loop {args.smsc_loop}) client loop={args.loop} cores={os.cpu_count()} "
        f"python={sys.version.split()[0]} load1 before/after="
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}\n"
    )
    print("| library | version | submit/s (median) | runs, sorted | how the window is kept |")
    print("| --- | --- | ---: | --- | --- |")
    for row in rows:
        if "error" in row:
            print(f"| {row['library']} | | | | failed: {row['error']} |")
        else:
            runs_text = ", ".join(f"{r:.0f}" for r in row["rates"])
            how = HOW.get(row["library"], "").replace("WINDOW", str(args.window))
            print(
                f"| {row['library']} | {row['version']} | {row['rate']:.0f} | {runs_text} "
                f"| {how}{row['note']} |"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)


def _exit_text(status: int) -> str:
    return f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"


def _summary(name: str, runs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r and r["ok"] == n]
    if len(good) != len(runs) or not good:
        bad = next((r for r in runs if r not in good), {})
        error = bad.get("error") or f"{bad.get('ok')} of {n} submit_sm answered ESME_ROK"
        return {"library": name, "error": error}
    rates = sorted(r["rate"] for r in good)
    exits = [_exit_text(r["exit_status"]) for r in good if "exit_status" in r]
    note = ""
    if exits:
        note = f"; {', '.join(sorted(set(exits)))} at exit in {len(exits)} of {len(good)} runs"
    return {**good[0], "rate": statistics.median(rates), "rates": rates, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="only run the SMSC")
    parser.add_argument(
        "--smsc",
        choices=["fake", "proto", "smpp34"],
        default="fake",
        help="fake: iwork_mc.testing.FakeSMSC; proto: the minimal SMSC above; "
        "smpp34: smpp34's Rust server (runs in --candidates-python)",
    )
    parser.add_argument("--lifetime", type=float, default=600.0, help="--serve: seconds at most")
    parser.add_argument("--client", choices=sorted(CLIENTS), help="only run this client")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n", type=int, default=2000, help="messages per run")
    parser.add_argument("--window", type=int, default=10, help="outstanding submit_sm")
    parser.add_argument("--repeat", type=int, default=3, help="runs per library")
    parser.add_argument("--only", help="comma-separated libraries (default: all)")
    parser.add_argument("--candidates-python", default="/tmp/smppcmp/bin/python")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the asyncio clients (uvloop must be installed in their venv)",
    )
    parser.add_argument(
        "--smsc-loop",
        choices=["asyncio", "uvloop"],
        default="uvloop",
        help="event loop of the SMSC (uvloop, as `iwork-mc run` uses: keeps the SMSC fast)",
    )
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.serve:
        _run(_serve(args.smsc, args.port, args.lifetime), args.smsc_loop)
    elif args.client:
        row = run_client(args.client, args.port, args.n, args.window, args.loop)
        print(json.dumps(row), flush=True)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
