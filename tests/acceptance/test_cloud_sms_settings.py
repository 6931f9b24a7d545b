"""A cloud SMS channel with a setting missing stops `worker` and `run` at start, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from processes import cli

CONFIG = """
[channels.sms]
kind = "aliyun_sms"
access_key_id = "LTAI5t-test"
sign_name = "园区通知"
templates = { "" = "SMS_100" }
"""


@pytest.mark.parametrize("command", ["worker", "run"])
def test_a_channel_missing_its_secret_stops_the_command_at_start(
    tmp_path: Path, command: str
) -> None:
    config = tmp_path / "iwork-mc.toml"
    config.write_text(CONFIG, encoding="utf-8")
    result = cli(tmp_path, "--config", str(config), command, check=False, timeout=30)
    assert 2 == result.returncode
    assert "channels.sms.access_key_secret: is required" in result.stderr
    assert "access_key_secret_env" in result.stderr
    assert "Traceback" not in result.stderr
