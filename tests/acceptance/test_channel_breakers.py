"""`iwork-mc run` routing by channel health: /healthz and GET /v1/channels follow the breaker.

A webhook channel whose receiver answers 503, then 200, is the route's first
channel; the sandbox is the second.  Real processes, real HTTP, real time
(the breaker's settings are small so the test takes seconds).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

from iwork_mc.client import Client, RestClient

from processes import Server, cli, start, wait_for_status
from receivers import Answer, Receiver

SECRET = "whsec_" + base64.b64encode(b"acceptance-test-key-0123456789ab").decode()


def breakers(server: Server) -> dict[str, Any]:
    health: dict[str, Any] = httpx.get(f"{server.base_url}/healthz", timeout=5).json()
    return health["breakers"]  # type: ignore[no-any-return]


def wait_for_breaker(server: Server, channel: str, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if breakers(server)[channel]["state"] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{channel} did not become {state}: {breakers(server)}")


def test_a_failing_channel_opens_moves_traffic_and_comes_back_after_a_probe(
    tmp_path: Path, servers: list[Server]
) -> None:
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "health", "--json").stdout)
    with Receiver(Answer(503), Answer(503)).running() as hook:
        env = {
            "IWORK_MC_CHANNELS": json.dumps(
                {"push": {"kind": "webhook", "url": f"{hook.url}/in", "secret": SECRET},
                 "lab": {"kind": "sandbox"}}
            ),
            "IWORK_MC_ROUTES": json.dumps([{"name": "r", "channels": ["push", "lab"]}]),
            "IWORK_MC_BREAKER_MIN_CALLS": "2",
            "IWORK_MC_BREAKER_OPEN_S": "3",
            "IWORK_MC_BREAKER_PROBES": "1",
            "IWORK_MC_RETRY_BASE_S": "120",  # the two 503'd messages wait past the test
        }  # fmt: skip
        server = start(tmp_path, "run", "--no-echo", env=env)
        servers.append(server)
        server.wait_ready()
        assert {"push": "closed", "lab": "closed"} == {
            name: b["state"] for name, b in breakers(server).items()
        }
        with Client(server.url, app["app_key"], app["secret"]) as top:
            for key in ("fail-1", "fail-2"):
                top.send_mobile(mobile_receiver="13888888888", json_data={"n": 1},
                                source="s", action="a", sender=1, msg_key=key)  # fmt: skip
            hook.wait_for(2)
            wait_for_breaker(server, "push", "open")
            with RestClient(server.base_url, app["app_key"], app["secret"]) as rest:
                # The worker shares the opening through the store at its next turn.
                for _ in range(100):
                    listed = {c["name"]: c for c in rest.list_channels()}
                    if listed["push"]["opening"] is not None:
                        break
                    time.sleep(0.02)
            assert ("webhook", "open", 2) == (
                listed["push"]["kind"], listed["push"]["breaker"]["state"],
                listed["push"]["breaker"]["failures"],
            )  # fmt: skip
            assert ("sandbox", "closed") == (
                listed["lab"]["kind"],
                listed["lab"]["breaker"]["state"],
            )
            # The opening is shared through the store; it lasts breaker_open_s (3 s).
            opening = listed["push"]["opening"]
            assert 0 < opening["open_until_ms"] - opening["opened_at_ms"] <= 3_000
            assert listed["lab"]["opening"] is None
            assert SECRET not in json.dumps(listed) and hook.url not in json.dumps(listed)

            top.send_mobile(mobile_receiver="13888888888", json_data={"n": 2},
                            source="s", action="a", sender=1, msg_key="moved")  # fmt: skip
            moved = wait_for_status(tmp_path, app["app_key"], "moved", "delivered")
            assert "lab" == moved["channel"]
            kinds = [entry["kind"] for entry in moved["timeline"]]  # type: ignore[index]
            assert ["accepted", "claimed", "channel_skipped", "claimed", "delivered"] == kinds

            wait_for_breaker(server, "push", "half_open")
            top.send_mobile(mobile_receiver="13888888888", json_data={"n": 3},
                            source="s", action="a", sender=1, msg_key="probe")  # fmt: skip
            probe = wait_for_status(tmp_path, app["app_key"], "probe", "delivered")
            wait_for_breaker(server, "push", "closed")
        assert "push" == probe["channel"]
        delivered = probe["timeline"][-1]  # type: ignore[index]
        assert ("delivered", True) == (delivered["kind"], delivered["detail"]["probe"])
        assert 3 == len(hook.received)
    assert "13888888888" not in server.text()
