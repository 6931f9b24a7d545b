"""App lookups for the hot path: a short-lived cache in front of the store.

Every call needs its app (to verify the signature), and apps change rarely, so
each gateway process keeps what it read for ``ttl`` seconds.  A disabled app
or a rotated secret therefore takes effect in every process within ``ttl``.

Unknown keys are what an attacker controls, so they never grow memory without
bound: a key that cannot name an app (:func:`~iwork_mc.apps.is_app_key_shaped`:
too long, odd characters) is answered "unknown" without a store lookup and is
not cached; a well-shaped unknown key is remembered in a small negative cache
of at most :data:`MAX_UNKNOWN_KEYS` entries (oldest dropped first), so a flood
of bad keys reaches the database at most once per key and ``ttl``.
"""

from __future__ import annotations

from collections import OrderedDict

from iwork_mc.apps import App, is_app_key_shaped
from iwork_mc.store.base import Store
from iwork_mc.templates import Template

__all__ = ["MAX_KNOWN_APPS", "MAX_UNKNOWN_KEYS", "AppDirectory", "TemplateCatalog"]

#: Apps kept at most (apps are created by the operator, so this is rarely reached).
MAX_KNOWN_APPS = 10_000
#: Unknown (well-shaped) keys remembered at most: 4096 × ~200 bytes ≈ 1 MB.
MAX_UNKNOWN_KEYS = 4_096


class AppDirectory:
    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._known: dict[str, tuple[float, App]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Entries held, known and unknown (bounded by the two caps)."""
        return len(self._known) + len(self._unknown)

    async def get(self, app_key: str, now: float) -> App | None:
        known = self._known.get(app_key)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        if not is_app_key_shaped(app_key):
            return None
        seen_unknown_at = self._unknown.get(app_key)
        if seen_unknown_at is not None and now - seen_unknown_at < self._ttl:
            return None
        app = await self._store.get_app(app_key)
        if app is None:
            self._known.pop(app_key, None)
            self._unknown[app_key] = now
            self._unknown.move_to_end(app_key)
            while len(self._unknown) > MAX_UNKNOWN_KEYS:
                self._unknown.popitem(last=False)
        else:
            self._unknown.pop(app_key, None)
            if len(self._known) >= MAX_KNOWN_APPS and app_key not in self._known:
                self._known.clear()
            self._known[app_key] = (now, app)
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
