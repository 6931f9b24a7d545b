"""Settings: one frozen value object, built once at the edge and passed in.

Precedence, highest first (documented in docs/settings.md):

1. command-line flags,
2. ``IWORK_MC_<NAME>`` environment variables,
3. the TOML file named by ``--config`` or ``IWORK_MC_CONFIG`` (top-level keys
   named like the fields below),
4. the defaults below.

It is a pydantic-settings model: each field's type says what it accepts
(ports 1-65535, positive durations, words from a list, true/false/on/off…),
and :meth:`Settings.load` turns pydantic's report into one line naming the
setting (``setting port: must be at most 65535 (got 70000)``).  Built
directly, ``Settings(port=…)`` reads no environment: only ``load`` does.
"""

from __future__ import annotations

import json
import tomllib
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from iwork_mc.breaker import BreakerPolicy
from iwork_mc.callback_targets import AllowList
from iwork_mc.channels import providers
from iwork_mc.channels.apprise_config import AppriseConfig
from iwork_mc.channels.options import ChannelOptionError
from iwork_mc.channels.smpp_config import (
    BindMode,
    DestinationFormat,
    LongMessages,
    SMPPConfig,
)
from iwork_mc.channels.webhook_config import WebhookConfig
from iwork_mc.events import EventLimits
from iwork_mc.policies import CapRule, PolicyError, QuietHours, parse_limits
from iwork_mc.retention import RetentionPolicy
from iwork_mc.retry import RetryPolicy
from iwork_mc.routing import DEFAULT_ROUTE, Route
from iwork_mc.templates import DEFAULT_TEMPLATE, Renderer, TemplateError

__all__ = ["CHANNEL_KINDS", "ENV_PREFIX", "ChannelSpec", "ConfigError", "Settings"]

CHANNEL_KINDS = ("sandbox", "smpp", "apprise", "webhook", *providers.KINDS)
#: Kinds whose ``[channels.NAME]`` table is parsed by the kind's own config class.
_CHANNEL_CONFIGS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "apprise": AppriseConfig.from_options,
    "webhook": WebhookConfig.from_options,
    **providers.PARSERS,
}
#: An option ``<name>_env = "VAR"`` takes option ``<name>`` from environment variable VAR.
_ENV_SUFFIX = "_env"
#: The SMPP defaults: the flat ``smpp_*`` settings take theirs from here.
_SMPP = SMPPConfig()
#: Settings (and SMPP channel options) that take one of a few words.
_SMPP_CHOICES: dict[str, tuple[str, ...]] = {
    "bind_mode": typing.get_args(BindMode),
    "destination_format": typing.get_args(DestinationFormat),
    "long_messages": typing.get_args(LongMessages),
}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A named channel instance: its kind and the options that differ from the defaults.

    For ``smpp`` the options are SMPPConfig fields (``host``, ``system_id``…)
    over the flat ``smpp_*`` settings; ``sandbox`` takes none; the cloud SMS
    kinds take their provider's options (channels/providers.py).
    """

    name: str
    kind: str
    #: Not in repr: options hold credentials.
    options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)


ENV_PREFIX = "IWORK_MC_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


#: The words a boolean setting accepts; anything else is refused, not read as false.
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a boolean: use true/false, 1/0, yes/no or on/off")


def _region(value: Any) -> Any:
    code = str(value).strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code")
    return code


def _regions(value: Any) -> Any:
    if value == ():
        return ()  # built directly: every region
    items = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [str(item).strip().upper() for item in items if str(item).strip()]
    # "*" spells "every region": an empty list would more likely be a mistake.
    if not cleaned:
        raise ValueError(f"{value!r} is not a valid comma-separated list (* for every region)")
    if cleaned == ["*"]:
        return ()
    unknown = [r for r in cleaned if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} are not region codes")
    return tuple(cleaned)


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is an unknown time zone (e.g. Asia/Shanghai, UTC)") from None
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Port = Annotated[int, Field(ge=1, le=65535)]
Count = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]
Byte = Annotated[int, Field(ge=0, le=255)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Region = Annotated[str, BeforeValidator(_region)]
Regions = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_regions)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Channels = Annotated[
    tuple[ChannelSpec, ...], NoDecode, BeforeValidator(lambda v: _structure("channels", v))
]
Routes = Annotated[tuple[Route, ...], NoDecode, BeforeValidator(lambda v: _structure("routes", v))]
LogFormat = Annotated[Literal["console", "json"], BeforeValidator(_lower)]
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    #: Where the SQLite database, the sandbox outbox and the dev app's credentials live.
    data_dir: Path = Path("var")
    #: ``sqlite:///path.db`` or ``postgresql://…``; default: ``<data_dir>/iwork-mc.db``.
    database_url: str = ""
    #: How long SQLite waits for another process's write lock before answering 15.
    sqlite_busy_timeout_ms: NonNegative = 10_000
    #: Connections each process keeps to PostgreSQL at most.
    pg_pool_size: Count = 10
    #: Seconds one PostgreSQL call may take (waiting for a connection included) before it
    #: answers 15 isp.store-unavailable; bounds every call during an outage.
    store_timeout_s: Seconds = 2.0
    #: Address the gateway listens on.
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    #: Port the gateway listens on (1-65535).
    port: Port = 8080
    #: Allowed distance between a request's timestamp and server time.
    timestamp_tolerance_s: Count = 600
    #: Largest request body accepted (query string included in nothing else).
    max_body_bytes: Count = 65_536
    #: Largest request head (request line and header fields); 431 above it.
    http_max_head_bytes: Count = 81_920
    #: Longest header field line; 431 above it.
    http_max_header_line_bytes: Count = 8_192
    #: Most header fields in one request; 431 above it.
    http_max_headers: Count = 100
    #: A request head must arrive within this many seconds of the connection opening
    #: (or of its first byte on a kept-alive connection), else the connection is closed.
    http_head_timeout_s: Seconds = 10.0
    #: A request body must arrive within this many seconds of its head.
    http_body_timeout_s: Seconds = 30.0
    #: An idle kept-alive connection is closed after this many seconds.
    http_keep_alive_timeout_s: Count = 5
    #: Largest ``mobile_receiver_message_event`` text (code 41 above it).
    max_event_bytes: Count = 16_384
    #: Region assumed for receiver numbers written without a country code.
    default_region: Region = "CN"
    #: Regions whose numbers are accepted (ISO 3166 codes); ``*``: every region.
    allowed_regions: Regions = ("CN",)
    #: Calls per second allowed per app over every gateway process on the store, TOP and
    #: REST together (0: no limit); code 7 / HTTP 429 above it.  ``apps set-rate`` overrides it.
    app_rate_limit: NonNegativeSeconds = 50.0
    #: Calls an app may burst above its rate.
    app_rate_burst: Count = 100
    #: How long an app looked up in the store is trusted before it is read again.
    app_cache_ttl_s: NonNegativeSeconds = 2.0
    #: How long the old secret stays valid after ``apps rotate-secret``.
    secret_grace_s: NonNegative = 86_400
    #: Messages one worker process sends at once.
    worker_concurrency: Count = 16
    #: How long a claimed message stays leased to its worker before another may take it.
    lease_s: Seconds = 60.0
    #: How often an idle worker looks for due messages.
    poll_interval_s: Seconds = 0.2
    #: Where workers deliver: ``sandbox`` (a local file) or ``smpp`` (an SMSC).
    channel: Literal["sandbox", "smpp"] = "sandbox"
    smpp_host: str = _SMPP.host
    smpp_port: Port = _SMPP.port
    smpp_system_id: str = _SMPP.system_id
    smpp_password: str = Field(default=_SMPP.password, repr=False)
    smpp_system_type: str = _SMPP.system_type
    #: ``transceiver`` (one session both ways) or ``separate`` (transmitter + receiver).
    smpp_bind_mode: BindMode = _SMPP.bind_mode
    smpp_binds: Count = _SMPP.binds
    smpp_window: Count = _SMPP.window
    #: submit_sm per second per session; 0: no cap.
    smpp_rate: NonNegativeSeconds = _SMPP.rate
    smpp_enquire_link_interval_s: Seconds = _SMPP.enquire_link_interval_s
    smpp_response_timeout_s: Seconds = _SMPP.response_timeout_s
    smpp_source_addr: str = _SMPP.source_addr
    smpp_source_ton: Byte = _SMPP.source_ton
    smpp_source_npi: Byte = _SMPP.source_npi
    #: ``international`` (8613888888888, TON 1) or ``national`` (13888888888, TON 2).
    smpp_destination_format: DestinationFormat = _SMPP.destination_format
    #: ``udh8``, ``udh16``, ``sar`` or ``payload``.
    smpp_long_messages: LongMessages = _SMPP.long_messages
    smpp_registered_delivery: Flag = _SMPP.registered_delivery
    smpp_query_sm: Flag = _SMPP.query_sm
    smpp_in_doubt_resend_s: NonNegativeSeconds = _SMPP.in_doubt_resend_s
    #: Named channel instances (TOML ``[channels.<name>]`` tables, or JSON in the env).
    #: Empty: one channel named after ``channel``, configured by the flat settings.
    channels: Channels = ()
    #: Ordered routes (TOML ``[[routes]]``); empty: every message tries the channels in order.
    routes: Routes = ()
    #: Time zone of quiet hours and of ``event_time`` in templates (an IANA name).
    timezone: TimeZone = "Asia/Shanghai"
    #: ``HH:MM-HH:MM`` during which non-urgent messages wait; empty: none.
    quiet_hours: str = ""
    #: How long a message may wait for delivery before it expires.
    message_validity_s: Count = 86_400
    #: How long past its validity a submitted message waits for its receipt before it
    #: is expired ("no delivery receipt").
    receipt_wait_s: Seconds = 3_600.0
    #: Most SMS segments one rendered text may cost (accept answers MESSAGE_TOO_LONG above).
    max_segments: Count = 10
    #: The Jinja2 text for events no template matches.
    default_template: str = DEFAULT_TEMPLATE
    #: How long a gateway trusts its copy of the templates.
    template_cache_ttl_s: NonNegativeSeconds = 2.0
    #: The longest one template render may take (a longer one fails TEMPLATE_RENDER_FAILED).
    template_render_timeout_s: Seconds = 0.1
    #: Per-receiver caps per app, e.g. ``minute=2,hour=10,day=20``; empty: none.
    receiver_limits_per_app: str = ""
    #: Per-receiver caps over all apps.
    receiver_limits_global: str = ""
    #: The same text to the same receiver within this many seconds is refused (0: off).
    dedupe_window_s: NonNegative = 0
    #: Delivery retries: attempt n waits up to retry_base_s * 2**(n-1), capped.
    retry_base_s: Seconds = 2.0
    retry_max_delay_s: Seconds = 300.0
    #: Attempts per channel of a message's route before falling back (or failing).
    retry_max_attempts: Count = 10
    #: Channel circuit breakers (counted per worker, openings shared through the store):
    #: a channel opens when at least breaker_failure_ratio of >= breaker_min_calls sends
    #: in breaker_window_s failed (or took breaker_slow_call_s or longer), is skipped for
    #: breaker_open_s, then closes after breaker_probes successful probes in a row.
    breaker_window_s: Count = 60
    breaker_min_calls: Count = 10
    breaker_failure_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    breaker_slow_call_s: Seconds = 30.0
    breaker_open_s: Seconds = 30.0
    breaker_probes: Count = 3
    #: Status callbacks: attempts per event, and how long one POST may take.
    callback_max_attempts: Count = 16
    callback_timeout_s: Seconds = 10.0
    #: Non-public hosts callbacks may reach anyway: comma-separated IPs, CIDR networks
    #: and host names (e.g. ``10.20.0.0/16, hooks.corp.internal``); empty: public hosts only.
    callback_allow_hosts: str = ""
    #: Seconds after a message ended (final status) until its personal data (receiver,
    #: json_data, rendered text) is redacted by the worker; 0: kept.
    retention_personal_data_s: NonNegative = 0
    #: Seconds after a message ended until the worker deletes it with its timeline; 0: kept.
    retention_messages_s: NonNegative = 0
    #: Messages one retention step redacts or deletes at most (one transaction each).
    retention_batch: Count = 500
    #: Size at which the sandbox's deliveries.jsonl is rotated.
    sandbox_max_bytes: Count = 10_000_000
    #: Rotated sandbox files kept (deliveries.jsonl.1 …); 0: the file starts over when full.
    sandbox_backups: NonNegative = 3
    #: Signs the web console's session cookies; empty: a random key kept in
    #: ``<data_dir>/console-secret.key`` (set it when gateways run on several hosts).
    console_secret_key: str = Field(default="", repr=False)
    #: How long a console sign-in lasts.
    console_session_s: Count = 43_200
    #: Failed console sign-ins in a row that lock an operator out, and for how long.
    console_max_failed_sign_ins: Count = 5
    console_lockout_s: Count = 900
    #: Where this host's iwork-mc processes share their Prometheus counters
    #: (``PROMETHEUS_MULTIPROC_DIR``); empty: ``<data_dir>/metrics``.
    metrics_dir: str = ""
    #: OTLP/HTTP traces endpoint (e.g. ``http://127.0.0.1:4318/v1/traces``); empty: no
    #: tracing.  Needs the ``tracing`` extra.
    tracing_otlp_endpoint: str = ""
    #: The ``service.name`` of the spans this process exports.
    tracing_service_name: str = "iwork-mc"
    #: ``console`` (human) or ``json`` (one object per line).
    log_format: LogFormat = "console"
    #: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
    log_level: LogLevel = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Built directly, settings are exactly the values given: the environment
        # and the TOML file come in through load() only.
        return (init_settings,)

    @field_validator("quiet_hours", "receiver_limits_per_app", "receiver_limits_global")
    @classmethod
    def _check_policy(cls, value: str, info: ValidationInfo) -> str:
        try:
            if info.field_name == "quiet_hours":
                QuietHours.parse(value, info.data.get("timezone", "UTC"))
            else:
                parse_limits(value, "app")
        except PolicyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("callback_allow_hosts")
    @classmethod
    def _check_allow_hosts(cls, value: str) -> str:
        AllowList.parse(value)  # its ValueError names the bad entry
        return value

    @field_validator("default_template")
    @classmethod
    def _check_template(cls, value: str, info: ValidationInfo) -> str:
        try:
            Renderer(info.data.get("timezone", "UTC")).compile(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_channels(self) -> Settings:
        _validate_channels(self)
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'iwork-mc.db'}"

    @property
    def effective_metrics_dir(self) -> Path:
        return Path(self.metrics_dir) if self.metrics_dir else self.data_dir / "metrics"

    @property
    def store_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`iwork_mc.store.create_store` on this URL's backend."""
        if self.effective_database_url.lower().startswith("sqlite:"):
            return {"busy_timeout_ms": self.sqlite_busy_timeout_ms}
        return {"max_size": self.pg_pool_size, "timeout": self.store_timeout_s}

    def as_environment(self) -> dict[str, str]:
        """``IWORK_MC_*`` variables that load back into these settings."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("channels", "routes"):
                text = json.dumps(_plain_structure(name, value))
            elif isinstance(value, tuple):
                text = ",".join(value) if value else "*"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env

    @property
    def smpp(self) -> SMPPConfig:
        """The SMPP channel's settings: each ``smpp_<name>`` is SMPPConfig's ``<name>``."""
        given = {
            option.name: getattr(self, f"smpp_{option.name}")
            for option in fields(SMPPConfig)
            if hasattr(self, f"smpp_{option.name}")
        }
        return SMPPConfig(**given)

    @property
    def channel_specs(self) -> tuple[ChannelSpec, ...]:
        return self.channels or (ChannelSpec(self.channel, self.channel),)

    @property
    def effective_routes(self) -> tuple[Route, ...]:
        if self.routes:
            return self.routes
        return (Route(name=DEFAULT_ROUTE, channels=tuple(c.name for c in self.channel_specs)),)

    def smpp_for(self, spec: ChannelSpec) -> SMPPConfig:
        """The SMPPConfig of a named smpp channel: the flat settings, then its own options."""
        return replace(self.smpp, **dict(spec.options))

    @property
    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_hours, self.timezone)

    @property
    def receiver_rules(self) -> tuple[CapRule, ...]:
        return parse_limits(self.receiver_limits_per_app, "app") + parse_limits(
            self.receiver_limits_global, "global"
        )

    @property
    def callback_allow_list(self) -> AllowList:
        return AllowList.parse(self.callback_allow_hosts)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_s=self.retry_base_s,
            max_delay_s=self.retry_max_delay_s,
            max_attempts=self.retry_max_attempts,
        )

    @property
    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            personal_data_s=self.retention_personal_data_s,
            messages_s=self.retention_messages_s,
            batch=self.retention_batch,
        )

    @property
    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            window_s=self.breaker_window_s,
            min_calls=self.breaker_min_calls,
            failure_ratio=self.breaker_failure_ratio,
            slow_call_s=self.breaker_slow_call_s,
            open_s=self.breaker_open_s,
            probes=self.breaker_probes,
        )

    @property
    def event_limits(self) -> EventLimits:
        return EventLimits(
            default_region=self.default_region,
            allowed_regions=frozenset(self.allowed_regions),
        )

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str],
        overrides: Mapping[str, Any] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Build settings from flags (``overrides``, ``None`` values ignored), env and file.

        Raises:
            ConfigError: a value is refused; the message names the setting.
        """
        path = config_file or (
            Path(environ[ENV_PREFIX + "CONFIG"]) if environ.get(ENV_PREFIX + "CONFIG") else None
        )
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = sorted(set(flags) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
        # Lowest precedence first: each source's values replace the ones before.
        sources = (
            InitSettingsSource(cls, _read_toml(path) if path is not None else {}),
            _Environment(cls, environ),
            InitSettingsSource(cls, flags),
        )
        values: dict[str, Any] = {}
        for source in sources:
            values.update(source())
        try:
            if "channels" in values:
                # ``<option>_env`` options name variables of this environment: resolved here.
                specs = _structure("channels", values["channels"])
                values["channels"] = _options_from_env(specs, environ)
        except ConfigError as exc:  # names the channel and option
            raise ConfigError(f"setting {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"setting channels: {exc}") from None
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


class _Environment(EnvSettingsSource):
    """``IWORK_MC_*`` variables read from a given mapping (``os.environ`` at the edge)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Names are matched case-insensitively; an empty variable counts as unset.
        return {key.lower(): value for key, value in self._environ.items() if value != ""}


def _describe(exc: ValidationError) -> str:
    """pydantic's first complaint as ``setting <name>: <reason>``, without its dump."""
    error = exc.errors(include_url=False)[0]
    name = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    value, kind, context = error.get("input"), error["type"], error.get("ctx", {})
    if kind == "value_error":
        reason = str(context.get("error", error["msg"]))
    elif kind in ("int_parsing", "int_from_float", "int_type"):
        reason = f"{value!r} is not a valid int"
    elif kind in ("float_parsing", "float_type"):
        reason = f"{value!r} is not a valid float"
    elif kind == "literal_error":
        choices = context.get("expected", "").replace("'", "").replace(" or ", ", ")
        reason = f"{value!r} is not one of {choices}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most"}[kind]  # fmt: skip
        bound = next(iter(context.values()))
        reason = f"must be {words} {bound:g} (got {value})"
    elif kind == "extra_forbidden":
        return f"unknown setting {name!r}"
    else:
        reason = f"{value!r}: {error['msg']}"
    # Cross-setting checks (channels, routes) name what they are about in the reason.
    return f"setting {name}: {reason}" if name else f"setting {reason}"


def _validate_channels(settings: Settings) -> None:
    names = [spec.name for spec in settings.channel_specs]
    if len(set(names)) != len(names):
        raise ConfigError("channels: two channels have the same name")
    smpp_options = {option.name for option in fields(SMPPConfig)}
    for spec in settings.channel_specs:
        if spec.kind not in CHANNEL_KINDS:
            raise ConfigError(
                f"channels.{spec.name}: kind {spec.kind!r} is not one of {', '.join(CHANNEL_KINDS)}"
            )
        if spec.kind in _CHANNEL_CONFIGS:
            try:
                _CHANNEL_CONFIGS[spec.kind](dict(spec.options))
            except ChannelOptionError as exc:
                raise ConfigError(f"channels.{spec.name}.{exc}") from None
            continue
        allowed = smpp_options if spec.kind == "smpp" else set()
        unknown = sorted(set(dict(spec.options)) - allowed)
        if unknown:
            raise ConfigError(f"channels.{spec.name}: unknown option(s) {', '.join(unknown)}")
        for name, value in spec.options:
            _check_smpp_option(spec.name, name, value)
    route_names = [route.name for route in settings.routes]
    if len(set(route_names)) != len(route_names):
        raise ConfigError("routes: two routes have the same name")
    for route in settings.routes:
        if not route.channels:
            raise ConfigError(f"routes.{route.name}: names no channel")
        missing = [name for name in route.channels if name not in names]
        if missing:
            raise ConfigError(f"routes.{route.name}: no channel named {', '.join(missing)}")
        bad = [r for r in route.regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ConfigError(f"routes.{route.name}: {', '.join(bad)} are not region codes")
        if route.weights and (
            len(route.weights) != len(route.channels)
            or any(w < 0 for w in route.weights)
            or sum(route.weights) == 0
        ):
            raise ConfigError(
                f"routes.{route.name}.weights: give one whole number >= 0 per channel "
                f"({len(route.channels)}), not all 0"
            )


def _options_from_env(
    specs: tuple[ChannelSpec, ...], environ: Mapping[str, str]
) -> tuple[ChannelSpec, ...]:
    """Resolve ``<option>_env = "VAR"`` options: secrets stay out of the config file."""
    resolved = []
    for spec in specs:
        options = dict(spec.options)
        for key in [k for k in options if k.endswith(_ENV_SUFFIX)]:
            variable, option = options.pop(key), key.removesuffix(_ENV_SUFFIX)
            if not isinstance(variable, str) or not environ.get(variable):
                raise ConfigError(
                    f"channels.{spec.name}.{key}: environment variable {variable} is not set"
                )
            if option in options:
                raise ConfigError(f"channels.{spec.name}: both {option} and {key} are set")
            options[option] = environ[variable]
        resolved.append(replace(spec, options=tuple(options.items())))
    return tuple(resolved)


def _check_smpp_option(channel: str, name: str, value: Any) -> None:
    """A named SMPP channel's option has the type (and, for words, a value) SMPPConfig takes."""
    default = getattr(_SMPP, name)
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    if isinstance(value, bool) != isinstance(default, bool) or not (
        isinstance(value, type(default)) or (numeric and isinstance(value, int | float))
    ):
        expected = type(default).__name__
        raise ConfigError(f"channels.{channel}.{name}: {value!r} is not of type {expected}")
    if name in _SMPP_CHOICES and value not in _SMPP_CHOICES[name]:
        raise ConfigError(
            f"channels.{channel}.{name}: {value!r} is not one of {', '.join(_SMPP_CHOICES[name])}"
        )


def _plain_structure(name: str, value: Any) -> Any:
    """channels/routes as the JSON an ``IWORK_MC_CHANNELS``/``_ROUTES`` variable holds."""
    if name == "channels":
        return {spec.name: {"kind": spec.kind, **dict(spec.options)} for spec in value}
    return [
        {
            "name": r.name,
            "channels": list(r.channels),
            "prefixes": list(r.prefixes),
            "regions": list(r.regions),
            "templates": list(r.templates),
            "weights": list(r.weights),
        }
        for r in value
    ]


def _structure(name: str, value: Any) -> Any:
    """Parse ``channels`` (a table of tables) or ``routes`` (a list of tables)."""
    if isinstance(value, tuple) and all(isinstance(v, ChannelSpec | Route) for v in value):
        return value  # already built (``Settings(channels=…)``)
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else ({} if name == "channels" else [])
    if name == "channels":
        if not isinstance(value, Mapping):
            raise ValueError("expected a table of channels")
        specs = []
        for channel_name, table in value.items():
            if not isinstance(table, Mapping) or "kind" not in table:
                raise ValueError(f"channels.{channel_name} needs a kind")
            options = tuple((k, v) for k, v in table.items() if k != "kind")
            specs.append(ChannelSpec(str(channel_name), str(table["kind"]), options))
        return tuple(specs)
    if not isinstance(value, list):
        raise ValueError("expected a list of routes")
    routes = []
    for index, table in enumerate(value):
        if not isinstance(table, Mapping):
            raise ValueError(f"route {index + 1} is not a table")
        unknown = set(table) - {"name", "channels", "prefixes", "regions", "templates", "weights"}
        if unknown:
            raise ValueError(f"route {index + 1}: unknown key(s) {', '.join(sorted(unknown))}")
        routes.append(
            Route(
                name=str(table.get("name", f"route-{index + 1}")),
                channels=_strings(table, "channels", index),
                prefixes=_strings(table, "prefixes", index),
                regions=tuple(r.upper() for r in _strings(table, "regions", index)),
                templates=_strings(table, "templates", index),
                weights=_weights(table, index),
            )
        )
    return tuple(routes)


def _strings(table: Mapping[str, Any], key: str, index: int) -> tuple[str, ...]:
    items = table.get(key, [])
    if isinstance(items, str) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"route {index + 1}: {key} must be a list of strings")
    return tuple(items)


def _weights(table: Mapping[str, Any], index: int) -> tuple[int, ...]:
    items = table.get("weights", [])
    if not isinstance(items, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in items
    ):
        raise ValueError(f"route {index + 1}: weights must be a list of whole numbers")
    return tuple(items)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data
