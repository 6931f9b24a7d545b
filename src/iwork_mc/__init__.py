"""iwork-mc: a self-hosted message center for ``alibaba.iwork.mc.msg.sendmobile``."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
