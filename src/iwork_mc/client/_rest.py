"""A small signed client for iwork-mc's own ``/v1`` REST API (blocking, httpx).

Every request is signed as docs/reference/rest.md describes: the headers
``X-App-Key``, ``X-Timestamp``, ``X-Sign-Method`` and ``X-Sign``, the last an
HMAC-SHA256 (:func:`iwork_mc.top.signing.sign`) over the query parameters
plus ``app_key``, ``timestamp``, ``http_method``, ``path`` and ``body_sha256``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from iwork_mc.client._base import USER_AGENT, Clock, map_httpx_exceptions
from iwork_mc.client._exceptions import SDKError
from iwork_mc.top import signing
from iwork_mc.top.rest_signing import SIGN_METHOD, signing_params

__all__ = ["RestAPIError", "RestClient"]

Query = Mapping[str, Any] | Iterable[tuple[str, Any]]


class RestAPIError(SDKError):
    """The REST API answered with an error: ``{"error": {"code": ..., "message": ...}}``.

    Args:
        status_code: the HTTP status (401, 404, 409, 422, ...).
        code: the error's stable code, e.g. ``invalid_signature``.
        message: its sentence.
        body: the whole error object (``line``, ``details``...).
    """

    def __init__(self, status_code: int, code: str, message: str, body: Mapping[str, Any]) -> None:
        super().__init__(status_code, code, message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.body = dict(body)

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _pairs(query: Query | None) -> list[tuple[str, str]]:
    items = query.items() if isinstance(query, Mapping) else (query or ())
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        pairs.extend((name, str(item)) for item in values)
    return pairs


class RestClient:
    """A blocking client of the ``/v1`` API of one app.

    Args:
        base_url: the server's root, e.g. ``http://127.0.0.1:8080``.
        app_key, secret: the app's credentials (the same as for TOP calls).
        timeout: seconds for each of connect, write, read and pool.
        transport: an httpx transport (``httpx.MockTransport`` in tests).
        clock: epoch seconds, for ``X-Timestamp``.

    Methods answer the decoded JSON; an error answer raises
    :class:`RestAPIError`, a transport failure a
    :class:`~iwork_mc.client.TransportError`.
    """

    def __init__(
        self,
        base_url: str,
        app_key: str,
        secret: str,
        *,
        timeout: float | None = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.time,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._app_key = app_key
        self._secret = secret
        self._clock = clock
        self._http = httpx.Client(
            timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT}
        )

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the signed request -------------------------------------------------

    def signed_headers(
        self, method: str, path: str, query: Iterable[tuple[str, str]], body: bytes
    ) -> dict[str, str]:
        """The four authentication headers of one request.

        Args:
            method: the HTTP method.
            path: the path as the server sees it, percent-decoded (``/v1/messages/a b``).
            query: the query parameters, decoded, in order.
            body: the raw body (``b""`` for none).
        """
        timestamp = str(int(self._clock() * 1000))
        params = signing_params(
            query, app_key=self._app_key, timestamp=timestamp, http_method=method, path=path,
            body=body,
        )  # fmt: skip
        return {
            "X-App-Key": self._app_key,
            "X-Timestamp": timestamp,
            "X-Sign-Method": SIGN_METHOD,
            "X-Sign": signing.sign(params, self._secret, SIGN_METHOD),
        }

    def request(
        self,
        method: str,
        segments: Iterable[str],
        *,
        query: Query | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """Send one signed request to ``/v1/<segments...>``; the raw response, any status.

        Each segment is percent-encoded, so a msg_key may hold ``/`` or ``?``.
        """
        names = list(segments)
        decoded = self._prefix + "/v1/" + "/".join(names)
        encoded = self._prefix + "/v1/" + "/".join(_segment(name) for name in names)
        pairs = _pairs(query)
        body = b"" if json_body is None else json.dumps(json_body).encode()
        headers = self.signed_headers(method, decoded, pairs, body)
        if body:
            headers["Content-Type"] = "application/json"
        url = self._origin + encoded + (f"?{urlencode(pairs)}" if pairs else "")
        with map_httpx_exceptions():
            return self._http.request(method, url, content=body, headers=headers)

    def _call(
        self,
        method: str,
        *segments: str,
        query: Query | None = None,
        json_body: Any = None,
    ) -> Any:
        response = self.request(method, segments, query=query, json_body=json_body)
        if response.status_code == 204:
            return None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success:
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            error = {"code": "http_error", "message": response.text[:200]}
        raise RestAPIError(
            response.status_code, str(error.get("code")), str(error.get("message")), error
        )

    # -- messages -------------------------------------------------------------

    def get_message(self, msg_key: str) -> dict[str, Any]:
        """The message and its timeline."""
        result: dict[str, Any] = self._call("GET", "messages", msg_key)
        return result

    def find_messages(self, **filters: Any) -> dict[str, Any]:
        """A page: ``status`` (one or a list), ``receiver``, ``accepted_from``,
        ``accepted_until``, ``before_id``, ``limit``."""
        result: dict[str, Any] = self._call("GET", "messages", query=filters)
        return result

    def count_messages(self, **filters: Any) -> dict[str, Any]:
        """Counts by status: ``accepted_from``, ``accepted_until``."""
        result: dict[str, Any] = self._call("GET", "messages", "counts", query=filters)
        return result

    def retry_message(self, msg_key: str) -> dict[str, Any]:
        """Queue a failed or expired message again."""
        result: dict[str, Any] = self._call("POST", "messages", msg_key, "retry")
        return result

    # -- templates ------------------------------------------------------------

    def list_templates(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "templates")
        return result

    def get_template(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "templates", name)
        return result

    def create_template(self, name: str, body: str, **fields: Any) -> dict[str, Any]:
        """Fields: ``source``, ``action``, ``event_type``, ``urgent``, ``limits``."""
        payload = {"name": name, "body": body, **fields}
        result: dict[str, Any] = self._call("POST", "templates", json_body=payload)
        return result

    def replace_template(self, name: str, body: str, **fields: Any) -> dict[str, Any]:
        payload = {"body": body, **fields}
        result: dict[str, Any] = self._call("PUT", "templates", name, json_body=payload)
        return result

    def delete_template(self, name: str) -> None:
        self._call("DELETE", "templates", name)

    def render_template(
        self, event: Mapping[str, Any] | str, *, body: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """A dry run: the template chosen, the text, its encoding and segments."""
        payload: dict[str, Any] = {"event": event}
        if body is not None:
            payload["body"] = body
        if name is not None:
            payload["name"] = name
        result: dict[str, Any] = self._call("POST", "templates", "render", json_body=payload)
        return result

    # -- opt-outs and callback --------------------------------------------------

    def list_opt_outs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "opt-outs")
        return result

    def opt_out(self, receiver: str, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "PUT", "opt-outs", receiver, json_body={"reason": reason}
        )
        return result

    def opt_in(self, receiver: str) -> None:
        self._call("DELETE", "opt-outs", receiver)

    def get_callback_url(self) -> str | None:
        result: str | None = self._call("GET", "callback")["url"]
        return result

    def set_callback_url(self, url: str) -> str | None:
        result: str | None = self._call("PUT", "callback", json_body={"url": url})["url"]
        return result

    def clear_callback_url(self) -> None:
        self._call("DELETE", "callback")

    # -- channels -----------------------------------------------------------------

    def list_channels(self) -> list[dict[str, Any]]:
        """The configured channels, each with its circuit breaker (``None`` without a worker)."""
        result: list[dict[str, Any]] = self._call("GET", "channels")["channels"]
        return result
