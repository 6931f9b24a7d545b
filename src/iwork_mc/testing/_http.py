"""What the cloud SMS emulators share: a real HTTP server on 127.0.0.1, scripts and records.

Each emulator is a :class:`http.server.ThreadingHTTPServer` in a daemon
thread, so the providers' blocking SDKs (run in the channel's own threads)
talk to it over real sockets.  Its behaviour per receiver number is scripted:

* :meth:`CloudEmulator.script` queues outcomes for a number's next sends:
  ``"ok"``, an error code of the provider (answered as the provider does), or
  ``"timeout"`` (the SMS is taken, but the answer comes only after
  ``slow_s``: the caller times out and is left in doubt);
* :attr:`CloudEmulator.fail_all` answers every send with one error code (a
  provider that is down or throttles everyone), until set back to ``None``;
* :meth:`CloudEmulator.receipt` sets what a number's receipts say:
  ``"delivered"`` (the default), ``"failed"``, ``"pending"`` (none until
  :meth:`CloudEmulator.complete`) or ``"twice"`` (delivered, reported twice).

:meth:`CloudEmulator.push_receipts` POSTs the reports as the provider pushes them.

Everything is kept for assertions: :attr:`CloudEmulator.sent` (each SMS the
provider took), :attr:`CloudEmulator.calls` (per action) and
:attr:`CloudEmulator.bad_signatures`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["CloudEmulator", "SentSMS"]

_HOST = "127.0.0.1"


@dataclass
class SentSMS:
    """One SMS the emulated provider took."""

    carrier_id: str
    phone: str
    sign_name: str
    template: str
    params: Any
    #: The caller's own reference (OutId / SessionContext).
    reference: str
    #: ``pending``, ``delivered`` or ``failed``.
    state: str
    sent_at: float


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, delayed ACKs cost 40 ms a call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(min(length, 1_048_576))
        status, answer, delay = self.server.emulator.handle(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        if delay:
            time.sleep(delay)
        data = json.dumps(answer, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", self.server.emulator.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the caller gave up waiting (a scripted timeout)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog (5) refuses connections under a channel's concurrent calls.
    request_queue_size = 256

    def __init__(self, emulator: CloudEmulator) -> None:
        super().__init__((_HOST, 0), _Handler)
        self.emulator = emulator


class CloudEmulator:
    """The shared part of :class:`~iwork_mc.testing.FakeAliyunSMS` and
    :class:`~iwork_mc.testing.FakeTencentSMS`: server, scripts, records."""

    #: The providers differ: Tencent's SDK reads errors only from exactly application/json.
    content_type = "application/json;charset=utf-8"

    def __init__(self, *, slow_s: float = 2.0) -> None:
        self.slow_s = slow_s
        self.fail_all: str | None = None
        self.sent: list[SentSMS] = []
        self.calls: Counter[str] = Counter()
        self.bad_signatures = 0
        self._scripts: dict[str, deque[str]] = {}
        self._receipts: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The URL to give the channel as its ``endpoint``."""
        return f"http://{_HOST}:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def script(self, phone: str, *outcomes: str) -> None:
        """Answer the number's next sends with ``outcomes`` in turn (then ``ok``)."""
        with self._lock:
            self._scripts.setdefault(phone, deque()).extend(outcomes)

    def receipt(self, phone: str, kind: str) -> None:
        """What the number's receipts say: delivered, failed, pending or twice."""
        if kind not in ("delivered", "failed", "pending", "twice"):
            raise ValueError(f"unknown receipt kind {kind!r}")
        self._receipts[phone] = kind

    def complete(self, carrier_id: str, state: str = "delivered") -> None:
        """A pending SMS gets its (late) report."""
        with self._lock:
            for sms in self.sent:
                if sms.carrier_id == carrier_id:
                    sms.state = state
                    self._report(sms)

    def push_receipts(self, url: str, *, times: int = 1) -> tuple[int, Any]:
        """POST the report of every SMS that has one to ``url`` (``times`` over, in one body),
        as the provider pushes them; returns the answer's status and JSON."""
        with self._lock:
            reports = [self._pushed(sms) for sms in self.sent if sms.state != "pending"]
        request = urllib.request.Request(
            url,
            data=json.dumps(reports * times).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read() or b"null")

    # -- for the emulators ----------------------------------------------------

    def _pushed(self, sms: SentSMS) -> dict[str, Any]:
        """The provider's push report of an SMS."""
        raise NotImplementedError

    def next_outcome(self, phone: str) -> str:
        with self._lock:
            if self.fail_all is not None:
                return self.fail_all
            queue = self._scripts.get(phone)
            return queue.popleft() if queue else "ok"

    def take(self, sms: SentSMS) -> None:
        """Keep an SMS the provider took, and its report as its receipt kind says."""
        kind = self._receipts.get(sms.phone, "delivered")
        with self._lock:
            if kind != "pending":
                sms.state = "failed" if kind == "failed" else "delivered"
            self.sent.append(sms)
            if kind != "pending":
                self._report(sms)
                if kind == "twice":
                    self._report(sms)

    def new_id(self) -> int:
        return next(self._ids)

    def _report(self, sms: SentSMS) -> None:
        """A provider that pushes reports to a queue queues one here (called under the lock)."""

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        """(status, JSON answer, seconds to wait before answering)."""
        raise NotImplementedError
