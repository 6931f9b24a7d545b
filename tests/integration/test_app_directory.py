"""The app cache in front of the store: unknown keys cannot grow it without bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from iwork_mc.apps import App
from iwork_mc.gateway.directory import MAX_UNKNOWN_KEYS, AppDirectory
from iwork_mc.store import Store, create_store


async def test_distinct_unknown_keys_stay_within_the_negative_cache_cap(
    store: Store, app: App
) -> None:
    """Thousands of distinct well-shaped unknown keys keep at most MAX_UNKNOWN_KEYS entries."""
    directory = AppDirectory(store, ttl=60)
    assert app == await directory.get(app.app_key, 0.0)
    for n in range(MAX_UNKNOWN_KEYS + 500):
        assert None is await directory.get(f"unknown-{n:08d}", 1.0)
    assert len(directory) <= MAX_UNKNOWN_KEYS + 1
    # The known app is not pushed out by the flood.
    assert app == await directory.get(app.app_key, 2.0)


@pytest.mark.parametrize(
    "key",
    ["k" * 65, "k" * 60_000, "12345678 ", "1234<script>", "键12345678", "12345678\x00"],
    ids=["65-chars", "60-KB", "space", "markup", "non-ascii", "nul"],
)
async def test_a_key_that_cannot_name_an_app_is_refused_without_a_store_lookup(
    tmp_path: Path, key: str
) -> None:
    """A malformed key answers "unknown" from a closed store: the store is never asked."""
    closed = create_store(f"sqlite:///{tmp_path / 'never-opened.db'}")
    directory = AppDirectory(closed, ttl=60)
    assert None is await directory.get(key, 0.0)
    assert 0 == len(directory)
