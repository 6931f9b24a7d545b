"""Connections that cost too much are refused or closed, over real sockets, for both parsers.

A real gateway (the CLI's uvicorn configuration) on 127.0.0.1, driven with raw
sockets: huge or overfull request heads answer 431 without stalling other
calls; a connection that sends nothing, or trickles its head or body, is
closed once its deadline passes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iwork_mc.config import Settings

from servers import GatewayThread

HEAD_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
KEEP_ALIVE_S = 1


@pytest.fixture(scope="module", params=["httptools", "h11"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limits"),
        http_head_timeout_s=HEAD_TIMEOUT_S,
        http_body_timeout_s=BODY_TIMEOUT_S,
        http_keep_alive_timeout_s=KEEP_ALIVE_S,
    )
    with GatewayThread(settings, http=request.param) as gw:
        yield gw


def connect(gw: GatewayThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 5 s pass); a reset ends it too."""
    received = b""
    try:
        while chunk := sock.recv(65_536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def status_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


def closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (fails after ``limit_s``)."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    try:
        data = sock.recv(65_536)
    except ConnectionResetError:
        data = b""
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit_s} s")
    assert b"" == data or data.startswith(b"HTTP/1.1 4"), data
    return time.monotonic() - started


def healthz_seconds(gw: GatewayThread) -> float:
    started = time.monotonic()
    assert 200 == httpx.get(f"http://127.0.0.1:{gw.port}/healthz", timeout=10).status_code
    return time.monotonic() - started


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % n for n in range(101))
        + b"\r\n",
    ],
    ids=["100-KB-head", "9-KB-line", "101-fields"],
)
def test_an_oversized_head_answers_431_and_closes(gateway: GatewayThread, head: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(head)
        data = answer(sock)
    assert b"HTTP/1.1 431 Request Header Fields Too Large" == status_line(data)


def test_a_long_query_within_the_head_limit_is_served(gateway: GatewayThread) -> None:
    """A GET carrying a large event in its query (60 KB) is not refused as a head."""
    query = b"a=" + b"b" * 60_000
    with connect(gateway) as sock:
        sock.sendall(
            b"GET /router/rest?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % query
        )
        data = answer(sock)
    assert b"HTTP/1.1 200 OK" == status_line(data)
    assert b"<code>21</code>" in data  # the TOP endpoint answered: no method


def test_a_huge_head_is_cut_off_without_stalling_other_calls(gateway: GatewayThread) -> None:
    """16 MiB of header is refused after the first 80 KiB; meanwhile other calls answer fast."""
    outcome: dict[str, Any] = {}

    def flood() -> None:
        with connect(gateway) as sock:
            started = time.monotonic()
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
                for _ in range(256):
                    sock.sendall(b"a" * 65_536)
            except (BrokenPipeError, ConnectionResetError):
                outcome["cut_off"] = True
            outcome["answer"] = answer(sock)
            outcome["seconds"] = time.monotonic() - started

    flooder = threading.Thread(target=flood)
    flooder.start()
    others = [healthz_seconds(gateway) for _ in range(5)]
    flooder.join(30)
    assert not flooder.is_alive()
    assert outcome.get("cut_off") or status_line(outcome["answer"]).startswith(b"HTTP/1.1 431")
    assert outcome["seconds"] < 5, outcome["seconds"]
    assert max(others) < 1.0, others


def test_a_connection_that_sends_nothing_is_closed(gateway: GatewayThread) -> None:
    with connect(gateway) as sock:
        assert closed_after(sock, HEAD_TIMEOUT_S + 2.5) >= HEAD_TIMEOUT_S * 0.8


def test_a_trickled_head_is_closed_at_its_deadline(gateway: GatewayThread) -> None:
    """A byte every 0.1 s never completes the head; the connection ends near head_timeout_s."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n"
    with connect(gateway) as sock:
        started = time.monotonic()
        try:
            for byte in head[:40]:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(3)
        assert b"" == answer(sock)
        assert time.monotonic() - started < HEAD_TIMEOUT_S + 2.5


def test_a_trickled_body_is_closed_at_its_deadline(gateway: GatewayThread) -> None:
    head = b"POST /router/rest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with connect(gateway) as sock:
        sock.sendall(head)
        started = time.monotonic()
        try:
            for _ in range(40):
                sock.sendall(b"x")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(3)
        answer(sock)
        elapsed = time.monotonic() - started
    assert elapsed < BODY_TIMEOUT_S + 2.5


def test_a_kept_alive_connection_serves_several_requests(gateway: GatewayThread) -> None:
    """The guard follows request after request on one connection (heads split across reads)."""
    with connect(gateway) as sock:
        for _ in range(3):
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(request[:10])
            time.sleep(0.05)
            sock.sendall(request[10:])
            data = b""
            while not data.endswith(b'{"status":"ok"}'):
                data += sock.recv(65_536)
            assert b"HTTP/1.1 200 OK" == status_line(data)


def test_an_idle_kept_alive_connection_is_closed_after_its_timeout(gateway: GatewayThread) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b'{"status":"ok"}'):
            data += sock.recv(65_536)
        assert KEEP_ALIVE_S * 0.8 <= closed_after(sock, KEEP_ALIVE_S + 2.5)
