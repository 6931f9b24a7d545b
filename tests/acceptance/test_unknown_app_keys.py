"""A flood of distinct, huge unknown app_keys against a real `iwork-mc serve` grows nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from processes import Server, cli, start

pytestmark = pytest.mark.slow

KEYS = 400
KEY_BYTES = 60_000


def rss_bytes(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def ask(sock: socket.socket, app_key: str) -> bytes:
    """One keep-alive GET with only an app_key: the answer's body."""
    sock.sendall(
        b"GET /router/rest?method=alibaba.iwork.mc.msg.sendmobile&format=json&app_key=%s "
        b"HTTP/1.1\r\nHost: x\r\n\r\n" % app_key.encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65_536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65_536)
    return body


def test_distinct_60_kb_app_keys_answer_29_and_leave_memory_flat(
    tmp_path: Path, servers: list[Server]
) -> None:
    data_dir = tmp_path / "data"
    cli(data_dir, "db", "upgrade")
    server = start(data_dir, "serve")
    servers.append(server)
    server.wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for n in range(50):  # warm up allocator and caches
            ask(sock, f"{n:08d}" * (KEY_BYTES // 8))
        before = rss_bytes(server)
        for n in range(KEYS):
            body = ask(sock, f"{n + 50:08d}" * (KEY_BYTES // 8))
            assert b'"code":29' in body and b"isv.appkey-not-exists" in body, body[:200]
        grown = rss_bytes(server) - before
    # Caching each key (the defect) grew the server by KEYS x KEY_BYTES = 60 MB.
    assert grown < 8_000_000, grown
