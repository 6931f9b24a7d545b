"""``/v1/channels``: the configured channels and the health of each (its circuit breaker)."""

from __future__ import annotations

from fastapi import APIRouter

from iwork_mc.gateway.rest_common import CallerDep, ContextDep
from iwork_mc.gateway.rest_models import BreakerOut, ChannelList, ChannelOut

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/channels", response_model=ChannelList, tags=["channels"], summary="List channels")
async def list_channels(caller: CallerDep, context: ContextDep) -> ChannelList:
    """Every configured channel with its breaker state, in the order configured.

    Breakers live in each worker process: the state is that of the worker in
    the process that answered (``iwork-mc run``); a gateway without a worker
    (``iwork-mc serve``) shows ``breaker: null``.  No secret or URL is shown.
    """
    breakers = context.channel_breakers() if context.channel_breakers is not None else {}
    return ChannelList(
        channels=[
            ChannelOut(
                name=spec.name,
                kind=spec.kind,
                breaker=BreakerOut(**breakers[spec.name]) if spec.name in breakers else None,
            )
            for spec in context.settings.channel_specs
        ]
    )
