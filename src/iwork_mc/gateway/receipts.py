"""``POST /receipts/{channel}/{token}``: delivery receipts the cloud SMS providers push.

Alibaba Cloud (SmsReport) and Tencent Cloud (status report callback) can push
receipts to a URL instead of, or besides, being polled.  Neither signs its
pushes, so the URL carries the channel's ``receipt_token``: a channel without
one has no endpoint, and a wrong token is answered 404 like an unknown
channel.  Each report goes through ``Store.apply_receipt``, exactly as a
polled one (late, duplicate and early receipts included); the answer, in the
provider's own shape, is sent only once all are durable, so a push that fails
(503) is pushed again by the provider.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from iwork_mc import metrics, tracing
from iwork_mc.channels import providers
from iwork_mc.config import Settings
from iwork_mc.gateway.wire import BodyTooLarge, read_body
from iwork_mc.store import outage
from iwork_mc.store.base import Store, StoreError

__all__ = ["MAX_REPORTS", "receipt_route"]

log = structlog.get_logger("iwork_mc.gateway.receipts")

#: Reports one push may carry (the providers send up to a few hundred).
MAX_REPORTS = 1000


def receipt_route(
    settings: Settings, store: Store, clock: Callable[[], float] = time.time
) -> Route:
    """The route, serving the cloud SMS channels of ``settings`` that have a receipt_token."""
    tokens: dict[str, tuple[str, str]] = {}
    for spec in settings.channel_specs:
        if spec.kind in providers.KINDS:
            token = providers.options_for(spec.kind, dict(spec.options)).receipt_token
            if token:
                tokens[spec.name] = (spec.kind, token)

    def refuse(status: int, error: str) -> JSONResponse:
        return JSONResponse({"error": error}, status_code=status)

    async def endpoint(request: Request) -> JSONResponse:
        channel = request.path_params["channel"]
        kind, token = tokens.get(channel, ("", ""))
        # Compared in constant time even for an unknown channel.
        if (
            not hmac.compare_digest(token.encode(), request.path_params["token"].encode())
            or not kind
        ):
            return refuse(404, "no receipt endpoint here")
        try:
            body = await read_body(
                request.stream(), request.headers.get("content-length"), settings.max_body_bytes
            )
        except BodyTooLarge:
            return refuse(413, f"body over {settings.max_body_bytes} bytes")
        parse, answer = providers.PUSHES[kind]
        try:
            receipts = parse(json.loads(body))
        except ValueError as exc:  # JSONDecodeError included
            return refuse(400, f"not a {kind} receipt push: {exc}")
        if len(receipts) > MAX_REPORTS:
            return refuse(413, f"more than {MAX_REPORTS} reports")
        try:
            for receipt in receipts:
                now_ms = int(clock() * 1000)
                outcome = await store.apply_receipt(
                    channel=channel,
                    carrier_id=receipt.carrier_id,
                    state=receipt.state,
                    error=receipt.error,
                    now_ms=now_ms,
                    detail=receipt.detail,
                )
                metrics.count_receipt(channel, outcome, now_ms)
                await tracing.receipt(store, channel, outcome, receipt.state.value)
        except StoreError as exc:
            outage.log_failure(log, "pushed_receipts_not_stored", exc, channel=channel)
            return refuse(503, "the store is unavailable; push again later")
        log.info("pushed_receipts", channel=channel, count=len(receipts))
        return JSONResponse(dict(answer))

    return Route("/receipts/{channel}/{token}", endpoint, methods=["POST"])
