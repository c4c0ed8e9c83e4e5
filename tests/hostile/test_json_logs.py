"""Issue 13, item 12: JSON logs keep the exception: its type, message and traceback, from
our loggers and from libraries' standard logging alike."""

from __future__ import annotations

import json
import logging

import pytest

from meterhouse.logs import configure_logging, get_logger
from meterhouse.settings import Settings


def test_json_logs_carry_the_exception(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="info"))
    try:
        try:
            raise ValueError("the disk said no")
        except ValueError:
            get_logger("hostile.test").exception("spool drain crashed; retrying")
            logging.getLogger("some.library").exception("library failure")
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    finally:
        configure_logging(Settings(log_format="console", log_level="warning"))
    assert len(lines) == 2
    for line in lines:
        assert "ValueError: the disk said no" in line["exception"], line
        assert "Traceback" in line["exception"]
        assert line.get("exc_info") is not True
