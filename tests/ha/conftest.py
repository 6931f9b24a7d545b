from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from processes import Server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; each is ended by its PID when the test ends."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill(signal.SIGKILL)
