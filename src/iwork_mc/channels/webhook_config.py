"""Settings of a ``webhook`` channel: where to POST and the Standard Webhooks secret (pure)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from iwork_mc.channels.options import ChannelOptionError, check_known, number, text

__all__ = ["SECRET_PREFIX", "WebhookConfig"]

#: Standard Webhooks secrets are ``whsec_`` + base64 of the key.
SECRET_PREFIX = "whsec_"
#: The key lengths the Standard Webhooks spec recommends, in bytes.
_KEY_BYTES = (24, 64)


@dataclass(frozen=True, kw_only=True)
class WebhookConfig:
    """Where a webhook channel POSTs, how it signs, how long it waits (docs/howto/webhook.md)."""

    url: str = field(repr=False)  # its path or query may carry a token
    secret: str = field(repr=False)
    #: The whole POST (connect, send, answer) may take this long; then it is retried.
    timeout_s: float = 10.0
    #: POSTs in flight at once, at most.  Throughput is about max_connections / latency;
    #: more than needed costs CPU (httpx's pool work grows with its connections).
    max_connections: int = 8

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WebhookConfig:
        """Parse a ``[channels.NAME]`` table; :class:`ChannelOptionError` names a bad option."""
        check_known(options, {"url", "secret", "timeout_s", "max_connections"})
        return cls(
            url=_url(text(options, "url")),
            secret=_secret(text(options, "secret")),
            timeout_s=number(options, "timeout_s", default=10.0, low=0.1, high=300.0),
            max_connections=int(number(options, "max_connections", default=8, low=1, high=1024)),
        )

    @property
    def display_url(self) -> str:
        """The URL fit for /healthz and logs: scheme, host and port only."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…"


def _url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ChannelOptionError("url", f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelOptionError("url", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ChannelOptionError(
            "url", "must not carry user:password@ (receivers check the signature instead)"
        )
    return url


def _secret(secret: str) -> str:
    secret = secret.strip()
    if not secret.startswith(SECRET_PREFIX):
        raise ChannelOptionError("secret", f"must be a Standard Webhooks secret ({SECRET_PREFIX}…)")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ChannelOptionError("secret", f"is not base64 after {SECRET_PREFIX}") from None
    low, high = _KEY_BYTES
    if not low <= len(key) <= high:
        raise ChannelOptionError(
            "secret", f"must hold a key of {low} to {high} bytes, not {len(key)}"
        )
    return secret
