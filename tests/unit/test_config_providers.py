"""Settings of the cloud SMS channels: checked at load, secrets from the environment, never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iwork_mc.channels import providers
from iwork_mc.channels.aliyun_sms import AliyunSMSOptions
from iwork_mc.channels.tencent_sms import TencentSMSOptions
from iwork_mc.config import ConfigError, Settings

ALIYUN = """
[channels.aliyun]
kind = "aliyun_sms"
access_key_id = "LTAI5t-test"
access_key_secret_env = "ALIYUN_SECRET"
sign_name = "园区通知"
endpoint = "http://127.0.0.1:9"
[channels.aliyun.templates]
"" = "SMS_100"
"door-*" = "SMS_200"
"""
TENCENT = """
[channels.tencent]
kind = "tencent_sms"
secret_id = "AKID-test"
secret_key_env = "TENCENT_SECRET"
sdk_app_id = "1400000001"
sign_name = "园区通知"
templates = { "" = { id = "100", params = ["name"] } }
"""
SECRET_ENV = {"ALIYUN_SECRET": "aliyun-secret-1", "TENCENT_SECRET": "tencent-secret-1"}


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    config = tmp_path / "iwork-mc.toml"
    config.write_text(text, encoding="utf-8")
    return Settings.load(env if env is not None else SECRET_ENV, config_file=config)


def test_cloud_channels_load_with_their_secrets_from_the_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, ALIYUN + TENCENT)
    aliyun, tencent = settings.channel_specs
    options = providers.options_for(aliyun.kind, dict(aliyun.options))
    assert isinstance(options, AliyunSMSOptions)
    assert ("aliyun-secret-1", "SMS_200") == (
        options.access_key_secret,
        options.templates["door-*"],
    )
    options = providers.options_for(tencent.kind, dict(tencent.options))
    assert isinstance(options, TencentSMSOptions)
    assert ("tencent-secret-1", "ap-guangzhou") == (options.secret_key, options.region)


def test_no_secret_shows_in_the_settings_repr(tmp_path: Path) -> None:
    settings = load(tmp_path, ALIYUN + TENCENT)
    shown = repr(settings) + repr(settings.channel_specs)
    assert "aliyun-secret-1" not in shown and "tencent-secret-1" not in shown


def test_a_secret_in_the_file_needs_no_variable(tmp_path: Path) -> None:
    text = ALIYUN.replace(
        'access_key_secret_env = "ALIYUN_SECRET"', 'access_key_secret = "in-file"'
    )
    [spec] = load(tmp_path, text, env={}).channel_specs
    assert "in-file" == dict(spec.options)["access_key_secret"]


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            ALIYUN,
            {},
            "channels.aliyun.access_key_secret_env: environment variable ALIYUN_SECRET is not set",
        ),
        (
            TENCENT.replace('secret_key_env = "TENCENT_SECRET"', ""),
            {},
            'channels.tencent.secret_key: is required (or give secret_key_env = "VARIABLE")',
        ),
        (
            ALIYUN.replace('sign_name = "园区通知"', ""),
            SECRET_ENV,
            "channels.aliyun.sign_name: is required",
        ),
        (
            TENCENT.replace('sdk_app_id = "1400000001"', ""),
            SECRET_ENV,
            "channels.tencent.sdk_app_id: is required",
        ),
        (
            TENCENT.replace("templates = ", "templatez = "),
            SECRET_ENV,
            "channels.tencent.templatez: unknown option",
        ),
        (
            TENCENT.replace(
                'templates = { "" = { id = "100", params = ["name"] } }', "templates = {}"
            ),
            SECRET_ENV,
            "channels.tencent.templates: is required and must not be empty",
        ),
        (
            ALIYUN.replace("sign_name", "timeout_s = 'soon'\nsign_name"),
            SECRET_ENV,
            "channels.aliyun.timeout_s: 'soon' is not of type float",
        ),
        (
            ALIYUN.replace(
                "[channels.aliyun.templates]", "concurrency = 0\n[channels.aliyun.templates]"
            ),
            SECRET_ENV,
            "channels.aliyun.concurrency: must be at least 1",
        ),
    ],
)
def test_a_wrong_or_incomplete_channel_is_refused_by_name(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    assert message in str(caught.value)


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    text = ALIYUN.replace('access_key_secret_env = "ALIYUN_SECRET"', "access_key_secret = 12345678")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env={})
    assert "channels.aliyun.access_key_secret: the value is not of type str" in str(caught.value)
    assert "12345678" not in str(caught.value)


def test_cloud_channels_survive_the_trip_through_the_environment(tmp_path: Path) -> None:
    """as_environment (how a parent hands settings to a child process) keeps the tables."""
    settings = load(tmp_path, ALIYUN + TENCENT)
    env = settings.as_environment()
    assert "aliyun_sms" == json.loads(env["IWORK_MC_CHANNELS"])["aliyun"]["kind"]
    assert settings.channel_specs == Settings.load(env).channel_specs
