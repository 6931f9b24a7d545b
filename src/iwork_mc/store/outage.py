"""Store outages in the log: one warning with its cause, one line when it is over.

During an outage every call and every worker poll fails the same way; a line
(or a traceback) per failure would bury the cause.  Each store reports the
first failure of an outage and its end; callers log at debug level only.
"""

from __future__ import annotations

import logging
import time

import structlog

from iwork_mc.privacy import mask_digits
from iwork_mc.store.base import StoreError, StoreUnavailable

__all__ = ["OutageLog", "describe", "log_failure"]

log = structlog.get_logger("iwork_mc.store")


def describe(exc: StoreError) -> dict[str, str | None]:
    """What kind of store failure this is, fit for a log line.

    Driver messages can quote the failing row, a phone number included: the
    text is kept (it names the cause) with every long run of digits masked.
    """
    cause = exc.__cause__
    return {
        "error": type(exc).__name__,
        "cause": type(cause).__name__ if cause is not None else None,
        "sqlstate": getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None),
        "reason": mask_digits(str(exc).splitlines()[0] if str(exc) else ""),
    }


def log_failure(
    logger: structlog.typing.FilteringBoundLogger, event: str, exc: StoreError, **fields: object
) -> None:
    """A caller's line about a store failure: debug for an outage (the store said it
    once), a warning with what failed otherwise; never a traceback."""
    level = logging.DEBUG if isinstance(exc, StoreUnavailable) else logging.WARNING
    logger.log(level, event, **fields, **describe(exc))


class OutageLog:
    """Tracks whether the store is failing, and logs only the changes."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: StoreError) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("store_unavailable", backend=self.backend, **describe(exc))

    def succeeded(self) -> None:
        if self._down_since is not None:
            down_s = round(time.monotonic() - self._down_since, 3)
            self._down_since = None
            log.info("store_recovered", backend=self.backend, down_s=down_s)
