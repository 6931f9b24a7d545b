"""Settings: one frozen value object, built once at the edge and passed in.

Precedence, highest first (documented in docs/settings.md):

1. command-line flags,
2. ``IWORK_MC_<NAME>`` environment variables,
3. the TOML file named by ``--config`` or ``IWORK_MC_CONFIG`` (top-level keys
   named like the fields below),
4. the defaults below.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import phonenumbers

from iwork_mc.channels.smpp_config import SMPPConfig
from iwork_mc.events import EventLimits

__all__ = ["ENV_PREFIX", "ConfigError", "Settings"]

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
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = field(default="", repr=False)
    smpp_system_type: str = ""
    #: ``transceiver`` (one session both ways) or ``separate`` (transmitter + receiver).
    smpp_bind_mode: str = "transceiver"
    smpp_binds: int = 1
    smpp_window: int = 10
    #: submit_sm per second per session; 0: no cap.
    smpp_rate: float = 0.0
    smpp_enquire_link_interval_s: float = 30.0
    smpp_response_timeout_s: float = 10.0
    smpp_source_addr: str = ""
    smpp_source_ton: int = 5
    smpp_source_npi: int = 0
    #: ``international`` (8613888888888, TON 1) or ``national`` (13888888888, TON 2).
    smpp_destination_format: str = "international"
    #: ``udh8``, ``udh16``, ``sar`` or ``payload``.
    smpp_long_messages: str = "udh8"
    smpp_registered_delivery: bool = True
    smpp_query_sm: bool = False
    smpp_in_doubt_resend_s: float = 30.0
    #: ``console`` (human) or ``json`` (one object per line).
    log_format: str = "console"
    log_level: str = "info"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'iwork-mc.db'}"

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
            if isinstance(value, tuple):
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
        "smpp_bind_mode": ("transceiver", "separate"),
        "smpp_destination_format": ("international", "national"),
        "smpp_long_messages": ("udh8", "udh16", "sar", "payload"),
    }
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise ConfigError(
                f"{name}: {getattr(settings, name)!r} is not one of {', '.join(allowed)}"
            )


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
