"""What every ``/v1`` route shares: the context, the authenticated caller, input parsing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated

from fastapi import Depends, Header, Request

from iwork_mc import messages
from iwork_mc.apps import App
from iwork_mc.compose import AcceptRules
from iwork_mc.config import Settings
from iwork_mc.events import InvalidNumber, e164
from iwork_mc.gateway.rest_auth import RestAuthenticator, RestError
from iwork_mc.store.base import Store

__all__ = [
    "Caller",
    "CallerDep",
    "ContextDep",
    "RestContext",
    "normalise_receiver",
    "parse_instant",
]


@dataclass(frozen=True, slots=True)
class RestContext:
    settings: Settings
    store: Store
    auth: RestAuthenticator
    #: The accept-time rules: the dry run renders and measures exactly as an accept does.
    rules: AcceptRules
    clock: Callable[[], float]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated app of one request, and the request's instant (epoch ms)."""

    app: App
    now_ms: int

    @property
    def app_key(self) -> str:
        return self.app.app_key


def _context(request: Request) -> RestContext:
    context: RestContext = request.app.state.rest
    return context


ContextDep = Annotated[RestContext, Depends(_context)]


async def _caller(
    request: Request,
    context: ContextDep,
    x_app_key: Annotated[str | None, Header(description="The app's app_key.")] = None,
    x_timestamp: Annotated[
        str | None, Header(description="Epoch milliseconds, within the server's window.")
    ] = None,
    x_sign_method: Annotated[str | None, Header(description="`hmac-sha256`.")] = None,
    x_sign: Annotated[
        str | None, Header(description="Upper-case hex HMAC-SHA256; see docs/reference/rest.md.")
    ] = None,
) -> Caller:
    # The header parameters are declared for the OpenAPI schema; the
    # authenticator reads them itself so that a missing one is a 401, not a 422.
    del x_app_key, x_timestamp, x_sign_method, x_sign
    body = await request.body()  # within max_body_bytes: rest._body_limited saw to it
    app, now_ms = await context.auth.authenticate(
        request.headers,
        request.query_params.multi_items(),
        http_method=request.method,
        # The decoded path as the server routes it (request.url would cut it at a "?"
        # that was sent as %3F inside a msg_key).
        path=request.scope["path"],
        body=body,
    )
    _refuse_nul(request)
    return Caller(app, now_ms)


CallerDep = Annotated[Caller, Depends(_caller)]


def _refuse_nul(request: Request) -> None:
    # No store keeps a NUL character: refuse it as bad input before any lookup
    # (request bodies are checked by their models, rest_models._Input).
    if "\x00" in request.scope["path"]:
        raise RestError(422, "invalid_parameter", "the path must not contain NUL characters")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise RestError(422, "invalid_parameter", f"{name!r}: must not contain NUL characters")


def parse_instant(text: str | None, name: str) -> int | None:
    """An instant given as epoch milliseconds or ISO 8601 (UTC when no offset), as epoch ms.

    Raises:
        RestError: 422 naming the parameter.
    """
    if text is None or not text.strip():
        return None
    try:
        return messages.parse_instant(text, naive_zone=UTC)
    except ValueError:
        raise RestError(
            422, "invalid_parameter", f"{name}: expected epoch milliseconds or ISO 8601"
        ) from None


def normalise_receiver(text: str, default_region: str, name: str = "receiver") -> str:
    """A phone number in E.164 (``13888888888`` → ``+8613888888888`` in region CN).

    Raises:
        RestError: 422 if it is not a valid phone number.
    """
    try:
        return e164(text, default_region)
    except InvalidNumber as exc:
        raise RestError(422, "invalid_parameter", f"{name}: {exc}") from None
