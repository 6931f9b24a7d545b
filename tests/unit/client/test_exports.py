"""The public surface of iwork_mc.client is exactly its __all__."""

from __future__ import annotations

import iwork_mc.client


def test_all_lists_every_public_name() -> None:
    """Every public attribute of the package is in __all__, and every __all__ name exists."""
    public = {
        name for name in dir(iwork_mc.client) if not name.startswith("_") and name != "annotations"
    }

    assert public == set(iwork_mc.client.__all__)


def test_classes_show_the_public_module() -> None:
    """Public classes report iwork_mc.client as their module, not a private one."""
    for name in iwork_mc.client.__all__:
        value = getattr(iwork_mc.client, name)
        if isinstance(value, type):
            assert "iwork_mc.client" == value.__module__, name
