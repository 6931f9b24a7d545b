"""Settings: one frozen value object, built once at the edge and passed in.

Precedence, highest first (documented in docs/settings.md):

1. command-line flags,
2. ``IWORK_MC_<NAME>`` environment variables,
3. the TOML file named by ``--config`` or ``IWORK_MC_CONFIG`` (top-level keys
   named like the fields below),
4. the defaults below.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import phonenumbers

from iwork_mc.callback_targets import AllowList
from iwork_mc.channels.smpp_config import (
    BindMode,
    DestinationFormat,
    LongMessages,
    SMPPConfig,
)
from iwork_mc.events import EventLimits
from iwork_mc.policies import CapRule, PolicyError, QuietHours, parse_limits
from iwork_mc.retry import RetryPolicy
from iwork_mc.routing import DEFAULT_ROUTE, Route
from iwork_mc.templates import DEFAULT_TEMPLATE, Renderer, TemplateError

__all__ = ["CHANNEL_KINDS", "ENV_PREFIX", "ChannelSpec", "ConfigError", "Settings"]

CHANNEL_KINDS = ("sandbox", "smpp")
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
    over the flat ``smpp_*`` settings; ``sandbox`` takes none.
    """

    name: str
    kind: str
    options: tuple[tuple[str, Any], ...] = ()


ENV_PREFIX = "IWORK_MC_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: Where the SQLite database, the sandbox outbox and the dev app's credentials live.
    data_dir: Path = Path("var")
    #: ``sqlite:///path.db`` or ``postgresql://…``; default: ``<data_dir>/iwork-mc.db``.
    database_url: str = ""
    #: How long SQLite waits for another process's write lock before answering 15.
    sqlite_busy_timeout_ms: int = 10_000
    #: Connections each process keeps to PostgreSQL at most.
    pg_pool_size: int = 10
    host: str = "127.0.0.1"
    port: int = 8080
    #: Allowed distance between a request's timestamp and server time.
    timestamp_tolerance_s: int = 600
    #: Largest request body accepted (query string included in nothing else).
    max_body_bytes: int = 65_536
    #: Largest ``mobile_receiver_message_event`` text (code 41 above it).
    max_event_bytes: int = 16_384
    #: Region assumed for receiver numbers written without a country code.
    default_region: str = "CN"
    #: Regions whose numbers are accepted (ISO 3166 codes); ``*``: every region.
    allowed_regions: tuple[str, ...] = ("CN",)
    #: Calls per second allowed per app and gateway process (0: no limit); code 7 above it.
    app_rate_limit: float = 0.0
    #: Calls an app may burst above its rate.
    app_rate_burst: int = 100
    #: How long an app looked up in the store is trusted before it is read again.
    app_cache_ttl_s: float = 2.0
    #: How long the old secret stays valid after ``apps rotate-secret``.
    secret_grace_s: int = 86_400
    #: Messages one worker process sends at once.
    worker_concurrency: int = 16
    #: How long a claimed message stays leased to its worker before another may take it.
    lease_s: float = 60.0
    #: How often an idle worker looks for due messages.
    poll_interval_s: float = 0.2
    #: Where workers deliver: ``sandbox`` (a local file) or ``smpp`` (an SMSC).
    channel: str = "sandbox"
    smpp_host: str = _SMPP.host
    smpp_port: int = _SMPP.port
    smpp_system_id: str = _SMPP.system_id
    smpp_password: str = field(default=_SMPP.password, repr=False)
    smpp_system_type: str = _SMPP.system_type
    #: ``transceiver`` (one session both ways) or ``separate`` (transmitter + receiver).
    smpp_bind_mode: str = _SMPP.bind_mode
    smpp_binds: int = _SMPP.binds
    smpp_window: int = _SMPP.window
    #: submit_sm per second per session; 0: no cap.
    smpp_rate: float = _SMPP.rate
    smpp_enquire_link_interval_s: float = _SMPP.enquire_link_interval_s
    smpp_response_timeout_s: float = _SMPP.response_timeout_s
    smpp_source_addr: str = _SMPP.source_addr
    smpp_source_ton: int = _SMPP.source_ton
    smpp_source_npi: int = _SMPP.source_npi
    #: ``international`` (8613888888888, TON 1) or ``national`` (13888888888, TON 2).
    smpp_destination_format: str = _SMPP.destination_format
    #: ``udh8``, ``udh16``, ``sar`` or ``payload``.
    smpp_long_messages: str = _SMPP.long_messages
    smpp_registered_delivery: bool = _SMPP.registered_delivery
    smpp_query_sm: bool = _SMPP.query_sm
    smpp_in_doubt_resend_s: float = _SMPP.in_doubt_resend_s
    #: Named channel instances (TOML ``[channels.<name>]`` tables, or JSON in the env).
    #: Empty: one channel named after ``channel``, configured by the flat settings.
    channels: tuple[ChannelSpec, ...] = ()
    #: Ordered routes (TOML ``[[routes]]``); empty: every message tries the channels in order.
    routes: tuple[Route, ...] = ()
    #: Time zone of quiet hours and of ``event_time`` in templates.
    timezone: str = "Asia/Shanghai"
    #: ``HH:MM-HH:MM`` during which non-urgent messages wait; empty: none.
    quiet_hours: str = ""
    #: How long a message may wait for delivery before it expires.
    message_validity_s: int = 86_400
    #: How long past its validity a submitted message waits for its receipt before it
    #: is expired ("no delivery receipt").
    receipt_wait_s: float = 3_600.0
    #: Most SMS segments one rendered text may cost (accept answers MESSAGE_TOO_LONG above).
    max_segments: int = 10
    #: The Jinja2 text for events no template matches.
    default_template: str = DEFAULT_TEMPLATE
    #: How long a gateway trusts its copy of the templates.
    template_cache_ttl_s: float = 2.0
    #: Per-receiver caps per app, e.g. ``minute=2,hour=10,day=20``; empty: none.
    receiver_limits_per_app: str = ""
    #: Per-receiver caps over all apps.
    receiver_limits_global: str = ""
    #: The same text to the same receiver within this many seconds is refused (0: off).
    dedupe_window_s: int = 0
    #: Delivery retries: attempt n waits up to retry_base_s * 2**(n-1), capped.
    retry_base_s: float = 2.0
    retry_max_delay_s: float = 300.0
    #: Attempts per channel of a message's route before falling back (or failing).
    retry_max_attempts: int = 10
    #: Status callbacks: attempts per event, and how long one POST may take.
    callback_max_attempts: int = 16
    callback_timeout_s: float = 10.0
    #: Non-public hosts callbacks may reach anyway: comma-separated IPs, CIDR networks
    #: and host names (e.g. ``10.20.0.0/16, hooks.corp.internal``); empty: public hosts only.
    callback_allow_hosts: str = ""
    #: Where this host's iwork-mc processes share their Prometheus counters
    #: (``PROMETHEUS_MULTIPROC_DIR``); empty: ``<data_dir>/metrics``.
    metrics_dir: str = ""
    #: OTLP/HTTP traces endpoint (e.g. ``http://127.0.0.1:4318/v1/traces``); empty: no
    #: tracing.  Needs the ``tracing`` extra.
    tracing_otlp_endpoint: str = ""
    #: The ``service.name`` of the spans this process exports.
    tracing_service_name: str = "iwork-mc"
    #: ``console`` (human) or ``json`` (one object per line).
    log_format: str = "console"
    log_level: str = "info"

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
        return {"max_size": self.pg_pool_size}

    def as_environment(self) -> dict[str, str]:
        """``IWORK_MC_*`` variables that load back into these settings."""
        env = {}
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.name in ("channels", "routes"):
                text = json.dumps(_plain_structure(setting.name, value))
            elif isinstance(value, tuple):
                text = ",".join(value) if value else "*"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[ENV_PREFIX + setting.name.upper()] = text
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
        """Build settings from flags (``overrides``, ``None`` values ignored), env and file."""
        values: dict[str, Any] = {}
        path = config_file or (
            Path(environ[ENV_PREFIX + "CONFIG"]) if environ.get(ENV_PREFIX + "CONFIG") else None
        )
        if path is not None:
            values.update(_read_toml(path))
        for setting in fields(cls):
            env_value = environ.get(ENV_PREFIX + setting.name.upper())
            if env_value is not None and env_value != "":
                values[setting.name] = env_value
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        settings = cls(**{name: _coerce(name, value) for name, value in values.items()})
        _validate(settings)
        return settings


_TYPES = typing.get_type_hints(Settings)


def _validate(settings: Settings) -> None:
    regions = phonenumbers.SUPPORTED_REGIONS
    if settings.default_region not in regions:
        raise ConfigError(f"default_region: {settings.default_region!r} is not a region code")
    unknown = [r for r in settings.allowed_regions if r not in regions]
    if unknown:
        raise ConfigError(f"allowed_regions: {', '.join(unknown)} are not region codes")
    if settings.log_format not in ("console", "json"):
        raise ConfigError(f"log_format: {settings.log_format!r} is neither console nor json")
    choices = {
        "channel": ("sandbox", "smpp"),
        **{f"smpp_{name}": allowed for name, allowed in _SMPP_CHOICES.items()},
    }
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise ConfigError(
                f"{name}: {getattr(settings, name)!r} is not one of {', '.join(allowed)}"
            )
    for name in ("message_validity_s", "max_segments", "retry_max_attempts"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    try:
        settings.quiet  # noqa: B018 - parsing is the check
        settings.receiver_rules  # noqa: B018
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    try:
        settings.callback_allow_list  # noqa: B018 - parsing is the check
    except ValueError as exc:
        raise ConfigError(f"callback_allow_hosts: {exc}") from None
    try:
        Renderer(settings.timezone).compile(settings.default_template)
    except TemplateError as exc:
        raise ConfigError(f"default_template: {exc}") from None
    _validate_channels(settings)


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
        }
        for r in value
    ]


def _structure(name: str, value: Any) -> Any:
    """Parse ``channels`` (a table of tables) or ``routes`` (a list of tables)."""
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
        unknown = set(table) - {"name", "channels", "prefixes", "regions", "templates"}
        if unknown:
            raise ValueError(f"route {index + 1}: unknown key(s) {', '.join(sorted(unknown))}")
        routes.append(
            Route(
                name=str(table.get("name", f"route-{index + 1}")),
                channels=_strings(table, "channels", index),
                prefixes=_strings(table, "prefixes", index),
                regions=tuple(r.upper() for r in _strings(table, "regions", index)),
                templates=_strings(table, "templates", index),
            )
        )
    return tuple(routes)


def _strings(table: Mapping[str, Any], key: str, index: int) -> tuple[str, ...]:
    items = table.get(key, [])
    if isinstance(items, str) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"route {index + 1}: {key} must be a list of strings")
    return tuple(items)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _coerce(name: str, value: Any) -> Any:
    if name not in _TYPES:
        raise ConfigError(f"unknown setting {name!r}")
    kind = _TYPES[name]
    if name in ("channels", "routes"):
        try:
            return _structure(name, value)
        except ValueError as exc:  # JSONDecodeError included
            raise ConfigError(f"setting {name}: {exc}") from None
    try:
        if kind is Path:
            return Path(value)
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if kind in (int, float):
            return kind(value)
        if typing.get_origin(kind) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            cleaned = [str(item).strip().upper() for item in items if str(item).strip()]
            # "*" spells "every region": an empty list would more likely be a mistake.
            if not cleaned:
                raise ValueError("empty")
            return () if cleaned == ["*"] else tuple(cleaned)
        if name == "default_region":
            return str(value).strip().upper()
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {_describe(kind)}") from exc


def _describe(kind: Any) -> str:
    if isinstance(kind, types.GenericAlias):
        return "comma-separated list (* for every region)"
    return getattr(kind, "__name__", str(kind))
