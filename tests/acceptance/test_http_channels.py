"""`iwork-mc run` with webhook and Apprise channels, and the start refusing bad channel settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import standardwebhooks

from iwork_mc.client import (
    AlibabaIworkMcMsgSendmobileRequest,
    MobileReceiverMessageEvent,
    TopClient,
)

from processes import Server, cli, start, wait_for_status
from receivers import Answer, Receiver
from topcalls import SEED_FIELDS

SECRET = "whsec_" + base64.b64encode(b"acceptance-test-key-0123456789ab").decode()


def test_a_bad_channel_setting_stops_the_worker_naming_channel_and_setting(tmp_path: Path) -> None:
    """A wrong webhook secret or an unknown Apprise service: exit 2, one line, nothing leaked."""
    cli(tmp_path, "db", "upgrade")
    wrong = {"push": {"kind": "webhook", "url": "https://h.example/x", "secret": "hunter2-secret"}}
    for channels, expected in [
        (wrong, "error: setting channels.push.secret: must be a Standard Webhooks secret"),
        ({"team": {"kind": "apprise", "url": "nosuch://tok3n@h"}}, "error: setting channels.team.url: Apprise does not accept it"),
        ({"push": {"kind": "webhook", "url": "https://h.example/x", "secret_env": "NOT_SET_HERE"}},
         "error: setting channels.push.secret_env: environment variable NOT_SET_HERE is not set"),
    ]:  # fmt: skip
        result = cli(
            tmp_path, "worker", env={"IWORK_MC_CHANNELS": json.dumps(channels)}, check=False
        )
        assert 2 == result.returncode
        assert result.stderr.startswith(expected), result.stderr
        assert "Traceback" not in result.stderr
        assert "hunter2" not in result.stderr and "tok3n" not in result.stderr


def test_run_delivers_through_a_failing_webhook_then_apprise(
    tmp_path: Path, servers: list[Server]
) -> None:
    """A route of webhook then apprise: a 4xx falls back to Apprise's json:// service.

    The webhook's secret comes from the environment; /healthz shows both channels
    with no secret and no token; the timeline tells the whole story.
    """
    cli(tmp_path, "db", "upgrade")
    app = json.loads(cli(tmp_path, "apps", "create", "http", "--json").stdout)
    with Receiver(Answer(410)).running() as hook, Receiver().running() as service:
        channels = {
            "push": {"kind": "webhook", "url": f"{hook.url}/in?token=t0k3n", "secret_env": "PUSH_SECRET"},
            "team": {"kind": "apprise", "url": f"json://bot:pa55@127.0.0.1:{service.port}/{{receiver}}"},
        }  # fmt: skip
        env = {"IWORK_MC_CHANNELS": json.dumps(channels), "PUSH_SECRET": SECRET}
        server = start(tmp_path, "run", "--no-echo", env=env)
        servers.append(server)
        server.wait_ready()
        health = httpx.get(f"{server.base_url}/healthz").json()
        shown = json.dumps(health)
        assert "t0k3n" not in shown and "pa55" not in shown and SECRET not in shown
        with TopClient(server.url, app["app_key"], app["secret"]) as top:
            top.execute(
                AlibabaIworkMcMsgSendmobileRequest(MobileReceiverMessageEvent(**SEED_FIELDS))
            )
        view = wait_for_status(tmp_path, app["app_key"], SEED_FIELDS["msg_key"], "delivered")
        [posted] = hook.wait_for(1)
        [notified] = service.wait_for(1)
    assert (
        "13888888888"
        in json.loads(
            json.dumps(standardwebhooks.Webhook(SECRET).verify(posted.body, posted.headers))
        )["data"]["receiver"]
    )
    assert "/8613888888888" == notified.path
    assert "team" == view["channel"]
    kinds = [entry["kind"] for entry in view["timeline"]]  # type: ignore[index]
    assert ["accepted", "claimed", "fallback", "claimed", "delivered"] == kinds
    assert "t0k3n" not in json.dumps(view) and "pa55" not in json.dumps(view)
    assert "13888888888" not in server.text()
