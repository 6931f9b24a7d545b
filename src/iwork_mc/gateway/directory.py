"""App lookups for the hot path: a short-lived cache in front of the store.

Every call needs its app (to verify the signature), and apps change rarely, so
each gateway process keeps what it read for ``ttl`` seconds.  A disabled app
or a rotated secret therefore takes effect in every process within ``ttl``.
Unknown keys are cached too, so a flood of bad keys does not reach the database,
and a key no app can have (a NUL in it, say) never reaches it at all.
"""

from __future__ import annotations

from iwork_mc.apps import App, could_be_app_key
from iwork_mc.store.base import Store
from iwork_mc.templates import Template

__all__ = ["AppDirectory", "TemplateCatalog"]

_MAX_ENTRIES = 10_000


class AppDirectory:
    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._entries: dict[str, tuple[float, App | None]] = {}

    async def get(self, app_key: str, now: float) -> App | None:
        if not could_be_app_key(app_key):
            return None
        cached = self._entries.get(app_key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        app = await self._store.get_app(app_key)
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[app_key] = (now, app)
        return app


class TemplateCatalog:
    """Every template, read from the store at most once per ``ttl`` seconds.

    Templates are few and change rarely; a change reaches every gateway
    process within ``ttl`` (``0``: read on every call, for tests).
    """

    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._read_at: float | None = None
        self._templates: tuple[Template, ...] = ()

    async def current(self, now: float) -> tuple[Template, ...]:
        if self._read_at is None or now - self._read_at >= self._ttl:
            self._templates = tuple(await self._store.list_templates())
            self._read_at = now
        return self._templates
