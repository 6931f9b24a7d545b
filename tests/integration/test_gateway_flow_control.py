"""Flow control over real HTTP: on by default, one budget per app for TOP and /v1 (429)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from iwork_mc.client import RestClient
from iwork_mc.config import Settings
from iwork_mc.ratelimits import Rate
from iwork_mc.top import signing

from servers import GatewayThread
from topcalls import event_json, java_layout, signed, system_params


def test_flow_control_is_on_by_default() -> None:
    """Without any setting an app is limited (the documented 50 calls/s, bursts of 100)."""
    assert (50.0, 100) == (Settings().app_rate_limit, Settings().app_rate_burst)


def test_a_flooding_app_is_limited_with_the_default_settings(tmp_path: Path) -> None:
    """300 quick calls of one app, no rate configured anywhere: past the burst, code 7."""
    with GatewayThread(Settings(data_dir=tmp_path)) as gateway:
        app = gateway.create_app()
        # No event: each admitted call answers 40 at once, without a store write.
        call = system_params(app.app_key, format="json")
        call["sign"] = signing.sign(call, app.secret, "hmac-sha256")

        def one(client: httpx.Client) -> int:
            answer: dict[str, Any] = client.post(gateway.url, data=call).json()
            return int(answer["error_response"]["code"])

        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(4) as pool:
            started = time.monotonic()
            codes = list(pool.map(lambda _: one(client), range(300)))
            elapsed = time.monotonic() - started
    default = Rate(Settings().app_rate_limit, Settings().app_rate_burst)
    admitted = codes.count(40)
    assert {40, 7} == set(codes)
    assert admitted <= default.burst + default.per_second * elapsed + default.lease_size


def test_rest_calls_share_the_apps_budget_and_answer_429(tmp_path: Path) -> None:
    """Over its rate, /v1 answers 429 with Retry-After and a JSON error; TOP then answers 7."""
    with GatewayThread(Settings(data_dir=tmp_path, app_cache_ttl_s=0)) as gateway:
        app = gateway.create_app()
        assert gateway.store is not None
        gateway.run(gateway.store.set_app_rate(app.app_key, 0.2, 2))
        with RestClient(f"http://127.0.0.1:{gateway.port}", app.app_key, app.secret) as rest:
            statuses = [rest.request("GET", ["messages"]).status_code for _ in range(2)]
            limited = rest.request("GET", ["messages"])
        top = httpx.post(
            gateway.url,
            **java_layout(signed(app.app_key, app.secret, event=event_json(), format="json")),
        ).json()
    assert [200, 200] == statuses
    assert 429 == limited.status_code
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 5
    assert {"code": "rate_limited", "message": f"this app is over its rate; retry in {wait} s",
            "retry_after_s": wait} == limited.json()["error"]  # fmt: skip
    assert 7 == top["error_response"]["code"]
