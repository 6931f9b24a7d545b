"""System parameters of a TOP call, checked one step at a time (pure).

The gateway runs the steps in the order spec/top-protocol.md fixes:
method (21/22) → app_key (28/29) → timestamp (30/31) → v (32/33/34) →
format (23) → sign (24/25).  The app lookup between the app_key and timestamp
steps is I/O, so it lives in the gateway; everything here is a pure function of
the merged parameter map (and of ``now``, passed in).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta, timezone

from iwork_mc.top import signing
from iwork_mc.top.envelope import FORMATS, Format
from iwork_mc.top.errors import PlatformCode, TopError

#: Every system parameter of TOP; anything else is an application parameter.
SYSTEM_PARAMS = frozenset(
    {
        "method", "app_key", "session", "timestamp", "format", "v", "sign_method",
        "sign", "partner_id", "target_app_key", "simplify",
    }
)  # fmt: skip
SUPPORTED_VERSION = "2.0"
#: TOP reads ``yyyy-MM-dd HH:mm:ss`` timestamps as GMT+8 whatever the client's zone.
TOP_TIMEZONE = timezone(timedelta(hours=8))

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
_EPOCH_MILLIS = re.compile(r"\d{13}", re.ASCII)
_VERSION = re.compile(r"\d+(\.\d+)*", re.ASCII)

__all__ = [
    "SUPPORTED_VERSION",
    "SYSTEM_PARAMS",
    "TOP_TIMEZONE",
    "answer_format",
    "check_app_key",
    "check_format",
    "check_method",
    "check_signature",
    "check_timestamp",
    "check_version",
    "format_timestamp",
    "is_simplified",
    "parse_timestamp",
]


def answer_format(params: Mapping[str, str]) -> Format:
    """The format to answer in, even before ``format`` is validated: JSON only if asked."""
    return "json" if params.get("format", "").strip().lower() == "json" else "xml"


def is_simplified(params: Mapping[str, str]) -> bool:
    """``simplify=true`` (JSON only) drops the root wrapper of success answers."""
    return params.get("simplify", "").strip().lower() == "true"


def check_method(params: Mapping[str, str], known: Collection[str]) -> str:
    """Step 1: the method is present (21) and served here (22)."""
    method = params.get("method", "").strip()
    if not method:
        raise TopError(PlatformCode.MISSING_METHOD)
    if method not in known:
        raise TopError(PlatformCode.INVALID_METHOD, sub_msg=f"unknown method {method[:100]}")
    return method


def check_app_key(params: Mapping[str, str]) -> str:
    """Step 2a: the app_key is present (28); whether it exists (29) needs the store."""
    app_key = params.get("app_key", "").strip()
    if not app_key:
        raise TopError(PlatformCode.MISSING_APP_KEY)
    return app_key


def parse_timestamp(text: str) -> int | None:
    """Epoch milliseconds of a TOP timestamp, or ``None`` if it has neither accepted form.

    Accepted: ``yyyy-MM-dd HH:mm:ss`` read as GMT+8, and 13-digit epoch milliseconds
    (what the official Python SDK sends).
    """
    text = text.strip()
    if _EPOCH_MILLIS.fullmatch(text):
        return int(text)
    if _DATETIME.fullmatch(text):
        try:
            # The layout is fixed by the regex; slicing is ~10x cheaper than strptime.
            moment = datetime(
                int(text[0:4]), int(text[5:7]), int(text[8:10]),
                int(text[11:13]), int(text[14:16]), int(text[17:19]), tzinfo=TOP_TIMEZONE,
            )  # fmt: skip
        except ValueError:
            return None
        return int(moment.timestamp() * 1000)
    return None


def format_timestamp(epoch_millis: int) -> str:
    """The ``yyyy-MM-dd HH:mm:ss`` GMT+8 form of an instant, as the Java SDK sends it."""
    moment = datetime.fromtimestamp(epoch_millis / 1000, TOP_TIMEZONE)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def check_timestamp(params: Mapping[str, str], now_millis: int, tolerance_millis: int) -> int:
    """Step 3: the timestamp is present (30), well-formed and within the window (31)."""
    text = params.get("timestamp", "")
    if not text.strip():
        raise TopError(PlatformCode.MISSING_TIMESTAMP)
    millis = parse_timestamp(text)
    if millis is None:
        raise TopError(
            PlatformCode.INVALID_TIMESTAMP,
            sub_msg="use yyyy-MM-dd HH:mm:ss (GMT+8) or 13-digit epoch milliseconds",
        )
    if abs(millis - now_millis) > tolerance_millis:
        raise TopError(
            PlatformCode.INVALID_TIMESTAMP,
            sub_msg=f"timestamp is more than {tolerance_millis // 1000} s from server time",
        )
    return millis


def check_version(params: Mapping[str, str]) -> None:
    """Step 4: ``v`` is present (32), well-formed (33) and ``2.0`` (34)."""
    version = params.get("v", "").strip()
    if not version:
        raise TopError(PlatformCode.MISSING_VERSION)
    if not _VERSION.fullmatch(version):
        raise TopError(PlatformCode.INVALID_VERSION)
    if version != SUPPORTED_VERSION:
        raise TopError(PlatformCode.UNSUPPORTED_VERSION, sub_msg="only v=2.0 is supported")


def check_format(params: Mapping[str, str]) -> Format:
    """Step 5: ``format`` is absent (xml) or one of xml/json (23)."""
    raw = params.get("format")
    if raw is None or not raw.strip():
        return "xml"
    fmt = raw.strip().lower()
    for known in FORMATS:
        if fmt == known:
            return known
    raise TopError(PlatformCode.INVALID_FORMAT, sub_msg="format must be xml or json")


def check_signature(params: Mapping[str, str], secrets: Iterable[str]) -> None:
    """Step 6: ``sign`` is present (24) and signs the parameters with a valid secret (25)."""
    signature = params.get("sign", "")
    if not signature.strip():
        raise TopError(PlatformCode.MISSING_SIGNATURE)
    method = _sign_method(params)
    if not signing.verify(params, secrets, method, signature):
        raise TopError(PlatformCode.INVALID_SIGNATURE)


def _sign_method(params: Mapping[str, str]) -> signing.SignMethod | None:
    raw = params.get("sign_method")
    if raw is None or not raw.strip():
        return None
    wanted = raw.strip().lower()
    for method in signing.SIGN_METHODS:
        if wanted == method:
            return method
    raise TopError(
        PlatformCode.INVALID_SIGNATURE,
        sub_msg="sign_method must be md5, hmac or hmac-sha256",
    )
