"""Flow control across gateway processes: one app's rate holds over every `iwork-mc serve`.

Two real gateway processes on one store (a SQLite file, or PostgreSQL) take
calls from one app alternately.  Together they admit at most the app's burst
plus its rate over the run, plus one leased slice per process (the documented
overshoot, docs/howto/flow-control.md); another app is not slowed down.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from iwork_mc.ratelimits import Rate

from processes import Server, cli, start
from topcalls import event_json, java_layout, signed

pytestmark = pytest.mark.slow

RATE = Rate(per_second=5.0, burst=5)
PROCESSES = 2
RUN_S = 2.5


def create_app(data_dir: Path, url: str, name: str) -> dict[str, Any]:
    created: dict[str, Any] = json.loads(
        cli(data_dir, "--database-url", url, "apps", "create", name, "--json").stdout
    )
    return created


def call(client: httpx.Client, server: Server, app: dict[str, Any]) -> dict[str, Any]:
    event = event_json(msg_key=f"k-{time.time_ns()}")
    layout = java_layout(signed(app["app_key"], app["secret"], event=event, format="json"))
    answer: dict[str, Any] = client.post(server.url, **layout).json()
    return answer


def outcomes(answers: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
    """(accepted, limited with code 7, anything else)."""
    accepted = [a for a in answers if "alibaba_iwork_mc_msg_sendmobile_response" in a]
    limited = [a for a in answers if a.get("error_response", {}).get("code") == 7]
    return len(accepted), len(limited), [a for a in answers if a not in accepted + limited]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_gateways_together_admit_one_apps_rate(
    backend: str, tmp_path: Path, servers: list[Server], request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    data_dir = tmp_path / "data"
    cli(data_dir, "--database-url", url, "db", "upgrade")
    limited_app = create_app(data_dir, url, "limited")
    other_app = create_app(data_dir, url, "other")
    set_rate = cli(
        data_dir, "--database-url", url, "apps", "set-rate", limited_app["app_key"],
        "--rate", str(RATE.per_second), "--burst", str(RATE.burst), "--json",
    )  # fmt: skip
    assert (RATE.per_second, RATE.burst) == tuple(
        json.loads(set_rate.stdout)[k] for k in ("rate_limit", "rate_burst")
    )
    gateways = [
        start(tmp_path / f"gw{n}", "--database-url", url, "serve") for n in range(PROCESSES)
    ]
    servers.extend(gateways)
    for gateway in gateways:
        gateway.wait_ready()

    answers: list[dict[str, Any]] = []
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < RUN_S:
            batch = [gateways[(n + i) % PROCESSES] for i in range(4)]
            n += 4
            answers += pool.map(lambda gw: call(client, gw, limited_app), batch)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        others = [call(client, gateways[i % PROCESSES], other_app) for i in range(20)]

    accepted, limited, unexpected = outcomes(answers)
    assert [] == unexpected
    bound = RATE.burst + RATE.per_second * elapsed + PROCESSES * RATE.lease_size
    assert RATE.burst <= accepted <= bound, (accepted, limited, elapsed)
    assert limited > 0
    error = next(a["error_response"] for a in answers if "error_response" in a)
    assert "accesscontrol.limited-by-app-access-count" == error["sub_code"]
    assert error["sub_msg"].startswith("This ban will last for ")
    # The other app has its own bucket (the default rate): none of its calls is limited.
    assert (20, 0, []) == outcomes(others)
