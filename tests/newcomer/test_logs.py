"""Item 10 of issue 15: logs read like text, libraries keep quiet, installs print nothing."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from meterhouse.logs import configure_logging, get_logger
from meterhouse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_values_are_rendered_for_people_not_as_reprs(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format=log_format, log_level="info"))  # type: ignore[arg-type]
    at = datetime(2026, 12, 6, 6, 1, 3, 486000, tzinfo=UTC)
    get_logger("meterhouse.test").info(
        "model prices synced", synced_at=at, credits=Decimal("0.00000825"), where=ROOT
    )
    said = capsys.readouterr().err
    assert "2026-12-06T06:01:03.486000+00:00" in said
    assert "datetime.datetime" not in said and "Decimal(" not in said
    assert "0.00000825" in said and "PosixPath" not in said


def test_url_passwords_never_reach_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"))
    url = "https://mh:s3cret@clickhouse.example:8443/prod"
    get_logger("meterhouse.test").warning(f"cannot reach {url}", store=url)
    said = capsys.readouterr().err
    assert "s3cret" not in said and said.count("mh:***@clickhouse.example") == 2


def _scheduler_lines(level: str, capsys: pytest.CaptureFixture[str]) -> str:
    configure_logging(Settings(log_level=level))  # type: ignore[arg-type]
    scheduler = BackgroundScheduler()
    scheduler.add_job(lambda: None, "interval", seconds=0.05, id="tick")
    scheduler.start()
    time.sleep(0.4)
    scheduler.shutdown()
    return capsys.readouterr().err


def test_periodic_scheduler_chatter_only_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = _scheduler_lines("info", capsys)
    assert "Running job" not in quiet and "executed successfully" not in quiet
    loud = _scheduler_lines("debug", capsys)
    assert "Running job" in loud


@pytest.mark.slow
def test_bootstrap_prints_no_build_backend_banner() -> None:
    done = subprocess.run(
        ["scripts/bootstrap.sh", "--test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "!!" not in said and "BuildBackendWarning" not in said and "*****" not in said
