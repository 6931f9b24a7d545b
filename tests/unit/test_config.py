"""Settings: one precedence rule, flags > environment > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from iwork_mc.callback_targets import AllowList
from iwork_mc.config import ConfigError, Settings


def test_defaults() -> None:
    """With nothing given, the documented defaults apply."""
    settings = Settings.load({})
    assert ("127.0.0.1", 8080, Path("var"), ("CN",)) == (
        settings.host, settings.port, settings.data_dir, settings.allowed_regions
    )  # fmt: skip
    assert "sqlite:///var/iwork-mc.db" == settings.effective_database_url


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    """A flag beats its IWORK_MC_ variable, which beats the TOML file."""
    config = tmp_path / "iwork-mc.toml"
    config.write_text('port = 7000\nhost = "127.0.0.2"\nlog_level = "debug"\n', encoding="utf-8")
    env = {"IWORK_MC_CONFIG": str(config), "IWORK_MC_PORT": "7100", "IWORK_MC_HOST": "127.0.0.3"}
    settings = Settings.load(env, {"port": 7200, "host": None})
    assert (7200, "127.0.0.3", "debug") == (settings.port, settings.host, settings.log_level)


def test_explicit_config_file_wins_over_env_named_file(tmp_path: Path) -> None:
    """--config names the file even when IWORK_MC_CONFIG names another."""
    chosen, other = tmp_path / "a.toml", tmp_path / "b.toml"
    chosen.write_text("port = 1\n", encoding="utf-8")
    other.write_text("port = 2\n", encoding="utf-8")
    assert 1 == Settings.load({"IWORK_MC_CONFIG": str(other)}, config_file=chosen).port


def test_lists_and_every_region() -> None:
    """Region lists are comma-separated and upper-cased; * means every region."""
    assert ("CN", "HK") == Settings.load({"IWORK_MC_ALLOWED_REGIONS": "cn, hk"}).allowed_regions
    settings = Settings.load({"IWORK_MC_ALLOWED_REGIONS": "*"})
    assert ((), frozenset()) == (settings.allowed_regions, settings.event_limits.allowed_regions)


def test_database_url_and_store_options() -> None:
    """The database URL picks the backend options passed to create_store."""
    sqlite = Settings.load(
        {"IWORK_MC_DATA_DIR": "/srv/mc", "IWORK_MC_SQLITE_BUSY_TIMEOUT_MS": "500"}
    )
    assert "sqlite:////srv/mc/iwork-mc.db" == sqlite.effective_database_url
    assert {"busy_timeout_ms": 500} == sqlite.store_options
    pg = Settings.load(
        {"IWORK_MC_DATABASE_URL": "postgresql://db/mc", "IWORK_MC_PG_POOL_SIZE": "4"}
    )
    assert {"max_size": 4, "timeout": 2.0} == pg.store_options


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IWORK_MC_PORT": "eighty"}, "setting port: 'eighty' is not a valid int"),
        (
            {"IWORK_MC_APP_RATE_LIMIT": "fast"},
            "setting app_rate_limit: 'fast' is not a valid float",
        ),
    ],
    ids=["int", "float"],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    """A value of the wrong type is refused with the setting's name."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message == str(caught.value)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    """A missing file, invalid TOML and unknown keys are refused with clear messages."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        Settings.load({}, config_file=tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        Settings.load({}, config_file=broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load({}, config_file=unknown)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IWORK_MC_DEFAULT_REGION": "XX"}, "setting default_region: 'XX' is not a region code"),
        ({"IWORK_MC_ALLOWED_REGIONS": "CN,ZZ"}, "setting allowed_regions: ZZ are not region codes"),
        (
            {"IWORK_MC_ALLOWED_REGIONS": ","},
            "setting allowed_regions: ',' is not a valid comma-separated list (* for every region)",
        ),
        ({"IWORK_MC_LOG_FORMAT": "xml"}, "setting log_format: 'xml' is not one of console, json"),
    ],
    ids=["default-region", "allowed-regions", "empty-regions", "log-format"],
)
def test_values_are_checked(env: dict[str, str], message: str) -> None:
    """Region codes and the log format are checked when settings load."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message == str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"IWORK_MC_SMPP_REGISTERED_DELIVERY": "maybe"},
            "setting smpp_registered_delivery: 'maybe' is not a boolean: "
            "use true/false, 1/0, yes/no or on/off",
        ),
        ({"IWORK_MC_WORKER_CONCURRENCY": "0"}, "setting worker_concurrency: must be at least 1 (got 0)"),
        ({"IWORK_MC_LEASE_S": "-5"}, "setting lease_s: must be more than 0 (got -5)"),
        ({"IWORK_MC_POLL_INTERVAL_S": "0"}, "setting poll_interval_s: must be more than 0 (got 0)"),
        ({"IWORK_MC_PORT": "0"}, "setting port: must be at least 1 (got 0)"),
        ({"IWORK_MC_PORT": "65536"}, "setting port: must be at most 65535 (got 65536)"),
        ({"IWORK_MC_SMPP_PORT": "70000"}, "setting smpp_port: must be at most 65535 (got 70000)"),
        (
            {"IWORK_MC_TIMEZONE": "Mars/Olympus"},
            "setting timezone: 'Mars/Olympus' is an unknown time zone (e.g. Asia/Shanghai, UTC)",
        ),
        ({"IWORK_MC_LOG_LEVEL": "loud"}, "setting log_level: 'loud' is not one of debug, info, warning, error, critical"),
        ({"IWORK_MC_SMPP_BIND_MODE": "both"}, "setting smpp_bind_mode: 'both' is not one of transceiver, separate"),
    ],
)  # fmt: skip
def test_bounds_and_choices_are_checked(env: dict[str, str], message: str) -> None:
    """Booleans, counts, durations, ports, time zones and choices outside their range are refused."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message == str(caught.value)


@pytest.mark.parametrize(
    ("word", "expected"),
    [("on", True), ("ON", True), ("yes", True), ("1", True), ("true", True),
     ("off", False), ("no", False), ("0", False), ("False", False)],
)  # fmt: skip
def test_boolean_words(word: str, expected: bool) -> None:
    """on/off, yes/no, 1/0 and true/false all count: `on` is true, not silently false."""
    assert (
        expected
        is Settings.load({"IWORK_MC_SMPP_REGISTERED_DELIVERY": word}).smpp.registered_delivery
    )
    assert expected is Settings.load({}, {"smpp_query_sm": word}).smpp_query_sm


def test_a_bad_value_in_the_file_names_the_setting(tmp_path: Path) -> None:
    """A TOML value is checked like an environment one."""
    config = tmp_path / "iwork-mc.toml"
    config.write_text("worker_concurrency = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^setting worker_concurrency: must be at least 1"):
        Settings.load({}, config_file=config)


def test_settings_are_a_frozen_value_read_from_nothing_but_the_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built directly, settings ignore the process environment and cannot be changed."""
    monkeypatch.setenv("IWORK_MC_PORT", "9999")
    settings = Settings(host="127.0.0.2")
    assert (8080, "127.0.0.2") == (settings.port, settings.host)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_region_codes_are_upper_cased() -> None:
    """A lower-case default region still parses numbers without a country code."""
    assert "CN" == Settings.load({"IWORK_MC_DEFAULT_REGION": "cn"}).event_limits.default_region


def test_smpp_settings_map_onto_the_channel_config() -> None:
    """Each smpp_<name> setting becomes SMPPConfig.<name>; the password shows in no repr."""
    settings = Settings.load(
        {"IWORK_MC_CHANNEL": "smpp", "IWORK_MC_SMPP_PORT": "2776", "IWORK_MC_SMPP_PASSWORD": "pw-123",
         "IWORK_MC_SMPP_LONG_MESSAGES": "sar", "IWORK_MC_SMPP_ENQUIRE_LINK_INTERVAL_S": "5"}
    )  # fmt: skip
    config = settings.smpp
    assert (2776, "pw-123", "sar", 5.0) == (
        config.port, config.password, config.long_messages, config.enquire_link_interval_s
    )  # fmt: skip
    assert "pw-123" not in repr(settings) and "pw-123" not in repr(config)


def test_smpp_choices_are_checked() -> None:
    """An unknown channel or long-message method is refused with the allowed values."""
    with pytest.raises(ConfigError, match="smpp_long_messages: 'udh7' is not one of"):
        Settings.load({"IWORK_MC_SMPP_LONG_MESSAGES": "udh7"})
    with pytest.raises(ConfigError, match="channel: 'email' is not one of sandbox, smpp"):
        Settings.load({"IWORK_MC_CHANNEL": "email"})


def test_named_channels_and_routes_come_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "iwork-mc.toml"
    config.write_text(
        """
[channels.primary]
kind = "smpp"
host = "127.0.0.1"
port = 2776
system_id = "park"

[channels.backup]
kind = "sandbox"

[[routes]]
name = "china"
regions = ["cn"]
channels = ["primary", "backup"]
""",
        encoding="utf-8",
    )
    settings = Settings.load({}, config_file=config)
    assert [(c.name, c.kind) for c in settings.channel_specs] == [
        ("primary", "smpp"),
        ("backup", "sandbox"),
    ]
    primary = settings.smpp_for(settings.channel_specs[0])
    assert (primary.port, primary.system_id, primary.window) == (2776, "park", 10)
    (route,) = settings.effective_routes
    assert (route.name, route.regions, route.channels) == ("china", ("CN",), ("primary", "backup"))
    # The environment form (JSON) carries the same structure to child processes.
    assert Settings.load(settings.as_environment()) == settings


def test_without_routes_every_message_tries_the_channels_in_order() -> None:
    settings = Settings.load(
        {"IWORK_MC_CHANNELS": '{"a": {"kind": "sandbox"}, "b": {"kind": "sandbox"}}'}
    )
    (route,) = settings.effective_routes
    assert route.channels == ("a", "b")
    assert Settings.load({}).effective_routes[0].channels == ("sandbox",)


@pytest.mark.parametrize("routes", ["", "  ", "[]"])
def test_an_empty_route_list_means_the_default_route(routes: str) -> None:
    """IWORK_MC_ROUTES set but empty is no routes: every message takes the default route."""
    (route,) = Settings.load({"IWORK_MC_ROUTES": routes}).effective_routes
    assert ("default", ("sandbox",)) == (route.name, route.channels)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IWORK_MC_CHANNELS": '{"a": {"kind": "fax"}}'}, "kind 'fax' is not one of"),
        (
            {"IWORK_MC_CHANNELS": '{"a": {"kind": "sandbox", "host": "x"}}'},
            "unknown option(s) host",
        ),
        ({"IWORK_MC_CHANNELS": '{"a": {"host": "x"}}'}, "needs a kind"),
        ({"IWORK_MC_ROUTES": '[{"name": "r", "channels": ["nope"]}]'}, "no channel named nope"),
        ({"IWORK_MC_ROUTES": '[{"name": "r", "channels": []}]'}, "names no channel"),
        (
            {"IWORK_MC_ROUTES": '[{"channels": ["sandbox"], "regions": ["XX"]}]'},
            "XX are not region",
        ),
        ({"IWORK_MC_ROUTES": '[{"channels": ["sandbox"], "via": 1}]'}, "unknown key(s) via"),
        ({"IWORK_MC_ROUTES": '[{"name": "r", '}, "setting routes: Expecting property name"),
        ({"IWORK_MC_CHANNELS": '{"a": '}, "setting channels: Expecting value"),
        ({"IWORK_MC_ROUTES": '{"name": "r"}'}, "setting routes: expected a list of routes"),
        ({"IWORK_MC_CHANNELS": '["a"]'}, "setting channels: expected a table of channels"),
        ({"IWORK_MC_ROUTES": '["sandbox"]'}, "setting routes: route 1 is not a table"),
        ({"IWORK_MC_ROUTES": '[{"channels": "sandbox"}]'}, "channels must be a list of strings"),
        ({"IWORK_MC_ROUTES": '[{"channels": ["sandbox"], "prefixes": [86]}]'}, "prefixes must be"),
        ({"IWORK_MC_QUIET_HOURS": "22-8"}, "expected HH:MM-HH:MM"),
        ({"IWORK_MC_TIMEZONE": "Mars/Olympus", "IWORK_MC_QUIET_HOURS": "22:00-08:00"}, "unknown"),
        ({"IWORK_MC_RECEIVER_LIMITS_PER_APP": "week=3"}, "minute, hour or day"),
        ({"IWORK_MC_DEFAULT_TEMPLATE": "{% if %}"}, "default_template: line 1"),
        ({"IWORK_MC_MAX_SEGMENTS": "0"}, "max_segments: must be at least 1"),
        ({"IWORK_MC_HTTP_MAX_HEAD_BYTES": "0"}, "http_max_head_bytes: must be at least 1"),
        ({"IWORK_MC_HTTP_HEAD_TIMEOUT_S": "0"}, "http_head_timeout_s: must be more than 0"),
        ({"IWORK_MC_APP_RATE_BURST": "0"}, "app_rate_burst: must be at least 1"),
        ({"IWORK_MC_APP_RATE_LIMIT": "-1"}, "app_rate_limit: must be at least 0"),
    ],
)
def test_delivery_settings_are_checked(env: dict[str, str], message: str) -> None:
    """Malformed or inconsistent channels, routes and policies are refused, saying why."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            '"bind_mode": "bogus"',
            "channels.a.bind_mode: 'bogus' is not one of transceiver, separate",
        ),
        ('"long_messages": "udh9"', "channels.a.long_messages: 'udh9' is not one of udh8"),
        ('"port": "2775"', "channels.a.port: '2775' is not of type int"),
        ('"registered_delivery": 1', "channels.a.registered_delivery: 1 is not of type bool"),
        ('"window": true', "channels.a.window: True is not of type int"),
    ],
)
def test_a_named_smpp_channels_options_are_checked(options: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({"IWORK_MC_CHANNELS": f'{{"a": {{"kind": "smpp", {options}}}}}'})
    assert message in str(caught.value)


def test_a_named_smpp_channel_takes_a_whole_number_for_a_float_option() -> None:
    settings = Settings.load({"IWORK_MC_CHANNELS": '{"a": {"kind": "smpp", "rate": 5}}'})
    assert 5 == settings.smpp_for(settings.channel_specs[0]).rate


def test_callback_allow_hosts_is_parsed_and_checked() -> None:
    """The callback allow-list is empty by default, read from text, and a bad entry is named."""
    assert AllowList() == Settings.load({}).callback_allow_list
    settings = Settings.load({"IWORK_MC_CALLBACK_ALLOW_HOSTS": "127.0.0.1, hooks.corp.internal"})
    assert AllowList.parse("127.0.0.1/32,hooks.corp.internal") == settings.callback_allow_list
    with pytest.raises(ConfigError) as caught:
        Settings.load({"IWORK_MC_CALLBACK_ALLOW_HOSTS": "10.0.0.0/33"})
    assert str(caught.value).startswith(
        "setting callback_allow_hosts: '10.0.0.0/33' is not a network"
    )
