"""Structured logs: events with fields, never sentences; never secrets or phone numbers.

iwork-mc's own events go through structlog.  Lines from libraries that log with
the standard library (uvicorn, psycopg, asyncio) are routed through the same
processors by structlog's ``ProcessorFormatter`` on the root logger, so in
``json`` mode every line on stderr is one JSON object.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["LIBRARY_LEVELS", "configure_logging"]

#: The least level logged for these libraries' own loggers: the one policy for them.
#: The store reports an outage once, with its cause (store_unavailable, then
#: store_recovered); psycopg's pool warns on every failed connect, several times a
#: second while PostgreSQL is down (it retries without backoff).
LIBRARY_LEVELS = {"psycopg": logging.ERROR, "psycopg.pool": logging.ERROR}


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stderr`` as it is at each line, not as it was when set up.

    Test runners (pytest, the CLI's runner) swap ``sys.stderr`` for a buffer they
    close afterwards; a handler holding that buffer would fail on every later line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # emit runs under the handler's lock
        super().emit(record)


def configure_logging(log_format: str = "console", level: str = "info") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    if log_format not in ("console", "json"):
        raise ValueError(f"unknown log format {log_format!r}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name, least in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(numeric, least))
