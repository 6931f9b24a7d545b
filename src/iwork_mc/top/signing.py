"""TOP request signing, shared by the gateway (verify) and the SDK (sign).

Theory of operation (spec/top-protocol.md §3):

1. Take every parameter except ``sign`` (file parts never reach this module).
2. Sort by name in code-point order and concatenate ``name1value1name2value2…``
   with raw, undecoded-from-JSON values.
3. Digest the UTF-8 bytes: ``md5`` is ``MD5(secret + S + secret)``, ``hmac`` is
   HMAC-MD5 keyed with the secret, ``hmac-sha256`` is HMAC-SHA256 keyed with the
   secret.  An absent ``sign_method`` is the legacy ``MD5(S + secret)``.
4. Upper-case hex.

Clients disagree on empty values (the Java SDK drops them, the others sign
them), so :func:`verify` accepts a signature computed either way, and compares
in constant time, hex case-insensitively.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Literal

SignMethod = Literal["md5", "hmac", "hmac-sha256"]
SIGN_METHODS: tuple[SignMethod, ...] = ("md5", "hmac", "hmac-sha256")

__all__ = ["SIGN_METHODS", "SignMethod", "canonical_string", "sign", "verify"]


def canonical_string(params: Mapping[str, str]) -> str:
    """The string TOP signs: sorted ``name + value`` pairs, ``sign`` left out."""
    return "".join(name + params[name] for name in sorted(params) if name != "sign")


def sign(params: Mapping[str, str], secret: str, method: SignMethod | None = "md5") -> str:
    """Sign ``params`` with ``secret``.

    Args:
        params: every parameter that will be sent, system and application,
            including ``sign_method`` itself when it is sent.
        secret: the app secret.
        method: ``md5``, ``hmac`` or ``hmac-sha256``; ``None`` is the legacy
            form used when a client sends no ``sign_method``.

    Returns:
        The upper-case hex digest to send as ``sign``.
    """
    data = canonical_string(params).encode("utf-8")
    key = secret.encode("utf-8")
    if method == "md5":
        return hashlib.md5(key + data + key).hexdigest().upper()
    if method == "hmac":
        return hmac.new(key, data, hashlib.md5).hexdigest().upper()
    if method == "hmac-sha256":
        return hmac.new(key, data, hashlib.sha256).hexdigest().upper()
    if method is None:
        return hashlib.md5(data + key).hexdigest().upper()
    raise ValueError(f"unsupported sign_method {method!r}")


def _candidate_digests(
    params: Mapping[str, str], secret: str, method: SignMethod | None
) -> Iterable[str]:
    yield sign(params, secret, method)
    if method is None:
        # Some legacy clients wrap the secret on both sides without sending sign_method.
        yield sign(params, secret, "md5")


def verify(
    params: Mapping[str, str],
    secrets: Iterable[str],
    method: SignMethod | None,
    signature: str,
) -> bool:
    """Whether ``signature`` signs ``params`` with one of ``secrets``.

    Tries the parameters as received, then with empty and whitespace-only
    values dropped (the Java SDK never sends nor signs those).  Several secrets
    are tried so that a rotated secret keeps working during its grace period.
    """
    given = signature.strip().upper().encode("ascii", "replace")
    variants = [params]
    non_empty = {k: v for k, v in params.items() if v.strip()}
    if len(non_empty) != len(params):
        variants.append(non_empty)
    matched = False
    for secret in secrets:
        for variant in variants:
            for digest in _candidate_digests(variant, secret, method):
                # No early exit: the time taken must not depend on which candidate matched.
                matched |= hmac.compare_digest(digest.encode("ascii"), given)
    return matched
