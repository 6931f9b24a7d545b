"""Settings of the apprise and webhook channels: parsed, checked, secrets from the environment."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from iwork_mc.channels.apprise_config import AppriseConfig, fill_receiver
from iwork_mc.channels.webhook_config import WebhookConfig
from iwork_mc.config import ConfigError, Settings

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def load(channels: dict[str, dict[str, object]], **env: str) -> Settings:
    return Settings.load({"IWORK_MC_CHANNELS": json.dumps(channels), **env})


def test_webhook_and_apprise_channels_load_from_a_toml_file(tmp_path: Path) -> None:
    """Both kinds are named channels usable in routes, like smpp and sandbox."""
    config = tmp_path / "iwork-mc.toml"
    config.write_text(
        f"""
[channels.push]
kind = "webhook"
url = "https://push.example.com/hooks/sms"
secret = "{SECRET}"
timeout_s = 5

[channels.team]
kind = "apprise"
url = "json://127.0.0.1:9/notify?to={{receiver}}"

[[routes]]
name = "all"
channels = ["push", "team"]
""",
        encoding="utf-8",
    )
    settings = Settings.load({}, config_file=config)
    assert [("push", "webhook"), ("team", "apprise")] == [
        (c.name, c.kind) for c in settings.channel_specs
    ]
    hook = WebhookConfig.from_options(dict(settings.channel_specs[0].options))
    assert ("https://push.example.com/hooks/sms", 5.0) == (hook.url, hook.timeout_s)
    assert SECRET not in repr(hook) and "push.example.com/hooks" not in repr(hook)
    assert Settings.load(settings.as_environment()) == settings


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"kind": "webhook", "secret": SECRET}, "channels.hook.url: is required"),
        ({"kind": "webhook", "url": "https://h/x"}, "channels.hook.secret: is required"),
        (
            {"kind": "webhook", "url": "ftp://h/x", "secret": SECRET},
            "channels.hook.url: must be an http",
        ),
        (
            {"kind": "webhook", "url": "https://u:p@h/x", "secret": SECRET},
            "channels.hook.url: must not carry user:password@",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": "s3cr3t"},
            "channels.hook.secret: must be a Standard Webhooks secret",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": "whsec_!!!!"},
            "channels.hook.secret: is not base64",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": "whsec_c2hvcnQ="},
            "channels.hook.secret: must hold a key of 24 to 64 bytes, not 5",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": SECRET, "timeout_s": 0},
            "channels.hook.timeout_s: must be between",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": SECRET, "timeout_s": "10"},
            "channels.hook.timeout_s: must be a number, not str",
        ),
        (
            {"kind": "webhook", "url": "https://h/x", "secret": SECRET, "secrte": SECRET},
            "channels.hook.secrte: unknown option",
        ),
        ({"kind": "apprise"}, "channels.hook.url: is required"),
        (
            {"kind": "apprise", "url": "nosuchservice://token@host"},
            "channels.hook.url: Apprise does not accept it",
        ),
        (
            {"kind": "apprise", "url": "twilio://only-a-sid"},
            "channels.hook.url: Apprise does not accept it",
        ),
        (
            {"kind": "apprise", "url": "json://h", "concurrency": 0},
            "channels.hook.concurrency: must be between 1 and 64",
        ),
        (
            {"kind": "apprise", "url": "json://h", "title": 3},
            "channels.hook.title: must be a string",
        ),
    ],
)
def test_wrong_or_incomplete_settings_name_the_channel_and_the_setting(
    options: dict[str, object], error: str
) -> None:
    """A bad channel table stops the start with an error naming channel and setting."""
    with pytest.raises(ConfigError) as caught:
        load({"hook": options})
    assert str(caught.value).startswith(f"setting {error}")
    # The error never echoes the secret it refused.
    assert SECRET not in str(caught.value)


def test_a_secret_comes_from_the_environment_through_an_env_option() -> None:
    """``secret_env = "VAR"`` keeps the secret out of the file; an unset VAR stops the start."""
    options = {"kind": "webhook", "url": "https://h/x", "secret_env": "PUSH_SECRET"}
    settings = load({"hook": options}, PUSH_SECRET=SECRET)
    assert ("secret", SECRET) in settings.channel_specs[0].options
    with pytest.raises(
        ConfigError,
        match=r"^setting channels.hook.secret_env: environment variable PUSH_SECRET is not set",
    ):
        load({"hook": options})
    with pytest.raises(ConfigError, match="both secret and secret_env are set"):
        load({"hook": {**options, "secret": SECRET}}, PUSH_SECRET=SECRET)
    url_from_env = {"kind": "apprise", "url_env": "TEAM_URL"}
    settings = load({"team": url_from_env}, TEAM_URL="json://127.0.0.1:9/x")
    assert ("url", "json://127.0.0.1:9/x") in settings.channel_specs[0].options


def test_the_receiver_fills_the_apprise_url_placeholders() -> None:
    """``{receiver}`` is the E.164 digits, ``{receiver_national}`` the national number."""
    url = "twilio://SID:token@15551234567/{receiver}?x={receiver_national}"
    assert "twilio://SID:token@15551234567/8613888888888?x=13888888888" == fill_receiver(
        url, "+8613888888888"
    )
    assert "mqtt://h/topic" == fill_receiver("mqtt://h/topic", "+8613888888888")
    with pytest.raises(ValueError):
        fill_receiver("json://h/{receiver_national}", "not a number")


def test_the_shown_apprise_url_masks_the_service_tokens() -> None:
    """/healthz and the banner show Apprise's masked URL, placeholders kept."""
    token = "b" * 32
    config = AppriseConfig.from_options(
        {"url": f"twilio://AC{'a' * 32}:{token}@15551234567/{{receiver}}"}
    )
    shown = config.display_url()
    assert token not in shown and "a" * 32 not in shown
    assert "{receiver}" in shown and shown.startswith("twilio://")
    assert "Twilio" == config.service_name()
    assert config.per_receiver and not AppriseConfig(url="mqtt://h/t").per_receiver
