"""Invariants 1 and 2 across real processes: durable before acknowledged, one message per msg_key."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from processes import Server, cli, start
from topcalls import event_json, java_layout, signed

SUCCESS = "alibaba_iwork_mc_msg_sendmobile_response"


def create_app(data_dir: Path, *global_args: str) -> dict[str, str]:
    cli(data_dir, *global_args, "db", "upgrade")
    app: dict[str, str] = json.loads(
        cli(data_dir, *global_args, "apps", "create", "load", "--json").stdout
    )
    return app


def accepted(response: httpx.Response) -> bool:
    body = response.json()
    return SUCCESS in body and body[SUCCESS]["result"]["success"] is True


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_message(tmp_path: Path, servers: list[Server]) -> None:
    """kill -9 while clients send: every acknowledged msg_key is stored after restart, once."""
    app = create_app(tmp_path)
    server = start(tmp_path, "serve")
    servers.append(server)
    server.wait_ready()
    acknowledged: list[str] = []
    stop = threading.Event()

    def send(sender: int) -> None:
        with httpx.Client(timeout=5) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                key = f"kill-{sender}-{i}"
                call = signed(
                    app["app_key"], app["secret"], event=event_json(msg_key=key), format="json"
                )
                try:
                    response = client.post(server.url, **java_layout(call))
                except httpx.TransportError:
                    return
                if accepted(response):
                    acknowledged.append(key)

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in senders:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    stop.set()
    for thread in senders:
        thread.join(10)
    assert len(acknowledged) >= 200

    restarted = start(tmp_path, "serve")
    servers.append(restarted)
    restarted.wait_ready()
    with sqlite3.connect(tmp_path / "iwork-mc.db") as db:
        stored = dict(
            db.execute("SELECT msg_key, count(*) FROM messages GROUP BY msg_key").fetchall()
        )
    assert set() == set(acknowledged) - set(stored)
    assert {1} == set(stored.values())
    # A client retrying an acknowledged call after the crash gets success, not a second message.
    again = signed(
        app["app_key"], app["secret"], event=event_json(msg_key=acknowledged[-1]), format="json"
    )
    assert accepted(httpx.post(restarted.url, **java_layout(again)))
    with sqlite3.connect(tmp_path / "iwork-mc.db") as db:
        assert len(stored) == db.execute("SELECT count(*) FROM messages").fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_identical_requests_racing_on_two_servers_make_one_message(
    tmp_path: Path, servers: list[Server], backend: str, request: pytest.FixtureRequest
) -> None:
    """The same request sent at the same moment to two gateway processes stores one message."""
    global_args = (
        () if backend == "sqlite" else ("--database-url", request.getfixturevalue("pg_url"))
    )
    app = create_app(tmp_path, *global_args)
    pair = [start(tmp_path, *global_args, "serve") for _ in range(2)]
    servers.extend(pair)
    for server in pair:
        server.wait_ready()
    keys = [f"race-{i}" for i in range(25)]
    answers: list[bool] = []
    clients = [httpx.Client(timeout=10) for _ in pair]
    try:
        for key in keys:
            call = java_layout(
                signed(app["app_key"], app["secret"], event=event_json(msg_key=key), format="json")
            )
            barrier = threading.Barrier(2)

            def race(
                client: httpx.Client, server: Server, barrier: threading.Barrier = barrier,
                call: dict[str, object] = call,
            ) -> None:  # fmt: skip
                barrier.wait()
                answers.append(accepted(client.post(server.url, **call)))  # type: ignore[arg-type]

            threads = [
                threading.Thread(target=race, args=pair_)
                for pair_ in zip(clients, pair, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    finally:
        for client in clients:
            client.close()
    assert [True] * 50 == answers
    status = json.loads(
        cli(tmp_path, *global_args, "status", keys[0], "--app-key", app["app_key"], "--json").stdout
    )
    assert "queued" == status["status"]
    if backend == "sqlite":
        with sqlite3.connect(tmp_path / "iwork-mc.db") as db:
            assert 25 == db.execute("SELECT count(*) FROM messages").fetchone()[0]
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url")) as db:
            assert 25 == db.execute("SELECT count(*) FROM messages").fetchone()[0]  # type: ignore[index]
