"""Structured logging: structlog on top of the standard library's logging."""

from __future__ import annotations

import logging
import sys

import structlog

from meterhouse.settings import Settings


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
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    quiet = logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    for name, level in _CHATTY.items():
        logging.getLogger(name).setLevel(max(level, quiet))


# Libraries that talk too much at info or warning: APScheduler logs two lines per job run
# (every 15 s in `meterhouse run`), urllib3 and clickhouse-connect warn about each retry of
# a connection the caller reports anyway. They are heard at --log-level debug.
_CHATTY = {
    "apscheduler": logging.WARNING,
    "urllib3": logging.ERROR,
    "clickhouse_connect.driver": logging.ERROR,
}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
