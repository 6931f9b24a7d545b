"""Signing a ``/v1`` REST call with the TOP signature (pure; docs/reference/rest.md).

The gateway (verify) and the SDK (sign) build one parameter map: every query
parameter (a name given several times has its values joined by ``,`` in
order), plus ``app_key``, ``timestamp`` (epoch milliseconds), ``http_method``
(upper case), ``path`` (percent-decoded) and ``body_sha256`` (hex SHA-256 of
the raw body).  The map is signed as a TOP call is, with HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from iwork_mc.top.signing import SignMethod

__all__ = [
    "HEADER_APP_KEY",
    "HEADER_SIGN",
    "HEADER_SIGN_METHOD",
    "HEADER_TIMESTAMP",
    "RESERVED_PARAMS",
    "SIGN_METHOD",
    "signing_params",
]

HEADER_APP_KEY = "x-app-key"
HEADER_TIMESTAMP = "x-timestamp"
HEADER_SIGN_METHOD = "x-sign-method"
HEADER_SIGN = "x-sign"
SIGN_METHOD: SignMethod = "hmac-sha256"

#: Names the signature adds itself; a query parameter may not use them.
RESERVED_PARAMS = frozenset({"app_key", "timestamp", "http_method", "path", "body_sha256"})


def signing_params(
    query: Iterable[tuple[str, str]],
    *,
    app_key: str,
    timestamp: str,
    http_method: str,
    path: str,
    body: bytes,
) -> dict[str, str]:
    """The parameter map a REST call's signature covers."""
    params: dict[str, str] = {}
    for name, value in query:
        params[name] = f"{params[name]},{value}" if name in params else value
    params.update(
        app_key=app_key,
        timestamp=timestamp,
        http_method=http_method.upper(),
        path=path,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    return params
