"""Structured logging: structlog on top of the standard library's logging."""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import structlog

from meterhouse.settings import Settings, mask_passwords


def configure_logging(settings: Settings) -> None:
    """Send every log line, ours and libraries', to stderr in the configured format."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        readable_values,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # JSON gets the traceback as text under "exception" (a bare exc_info=true
                # says nothing); the console renderer prints it by itself.
                *([structlog.processors.format_exc_info] if settings.log_format == "json" else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name, level in _CHATTY.items():
        logging.getLogger(name).setLevel(logging.DEBUG if settings.log_level == "debug" else level)


# Libraries that talk too much at info or warning: APScheduler logs two lines per job run
# (every 15 s in `meterhouse run`), urllib3 and clickhouse-connect warn about each retry of
# a connection the caller reports anyway. They are heard at --log-level debug.
_CHATTY = {
    "apscheduler": logging.WARNING,
    "urllib3": logging.ERROR,
    "clickhouse_connect.driver": logging.ERROR,
}


def readable_values(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Values as people and log shippers read them, not Python reprs.

    ``synced_at=2026-12-06T06:01:03+00:00`` rather than ``datetime.datetime(2026, 12, …)``:
    times in ISO 8601, Decimals exact, paths and enums as their text, URL passwords masked.
    """
    for key, value in event.items():
        if isinstance(value, str):
            if "://" in value:  # a URL's password never reaches a log
                event[key] = mask_passwords(value)
        elif key != "event" and not isinstance(value, (int, float, bool, type(None))):
            event[key] = _readable(value)
    return event


def _readable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return _readable(value.value)
    if isinstance(value, (PurePath, UUID)):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_readable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _readable(v) for k, v in value.items()}
    return value


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
