"""``/v1/channels``: the configured channels and the health of each (its circuit breaker)."""

from __future__ import annotations

from fastapi import APIRouter

from iwork_mc.gateway.rest_common import CallerDep, ContextDep
from iwork_mc.gateway.rest_models import BreakerOut, ChannelList, ChannelOut, OpeningOut, iso

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/channels", response_model=ChannelList, tags=["channels"], summary="List channels")
async def list_channels(caller: CallerDep, context: ContextDep) -> ChannelList:
    """Every configured channel with its breaker state, in the order configured.

    Breakers live in each worker process: the state is that of the worker in
    the process that answered (``iwork-mc run``); a gateway without a worker
    (``iwork-mc serve``) shows ``breaker: null``.  ``opening`` is read from the
    store: an opening a worker shared, while it lasts, whichever process answers.
    No secret or URL is shown.
    """
    breakers = context.channel_breakers() if context.channel_breakers is not None else {}
    openings = {
        opening.channel: OpeningOut(
            opened_at_ms=opening.opened_at_ms,
            opened_at=iso(opening.opened_at_ms),
            open_until_ms=opening.open_until_ms,
            open_until=iso(opening.open_until_ms),
        )
        for opening in await context.store.open_channels(now_ms=caller.now_ms)
    }
    return ChannelList(
        channels=[
            ChannelOut(
                name=spec.name,
                kind=spec.kind,
                breaker=BreakerOut(**breakers[spec.name]) if spec.name in breakers else None,
                opening=openings.get(spec.name),
            )
            for spec in context.settings.channel_specs
        ]
    )
