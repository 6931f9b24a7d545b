"""Rendering tenants' templates without holding the event loop.

A render is bounded (template_sandbox.Limits) but may take up to its time
limit, 100 ms by default: far too long to hold the loop that serves every
other caller.  Handing every render to a thread costs about 0.25 ms per accept
(measured against an 0.08 ms render of the default template), so a render is
tried inline with a few milliseconds, and only one that does not finish in
them (or whose template is not compiled yet) is run again in a thread with the
full limit.  Renders change nothing, so running one again is harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from iwork_mc.templates import RenderTooSlow

__all__ = ["INLINE_SECONDS", "render_off_loop_if_slow"]

T = TypeVar("T")

#: How long a render may hold the event loop before it is moved to a thread.
INLINE_SECONDS = 0.005


async def render_off_loop_if_slow(work: Callable[[float | None], T]) -> T:
    """``work(INLINE_SECONDS)`` on the loop; on RenderTooSlow, ``work(None)`` in a thread."""
    try:
        return work(INLINE_SECONDS)
    except RenderTooSlow:
        return await asyncio.to_thread(work, None)
