"""`meterhouse demo` on a fresh directory: every part of the platform, and an overview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import meterhouse

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

END = "2026-11-20T12:00:00+00:00"


def test_demo_fills_a_fresh_store_and_prints_an_overview(tmp_path: Path) -> None:
    data = tmp_path / "store"
    result = meterhouse(data, "demo", "--end", END, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "This month, in each account's time zone" in result.stdout
    for account in ("acme", "globex", "initech", "umbrella", "tinyco"):
        assert account in result.stdout
    assert "storing events" in result.stderr  # progress on the long step

    def sql(query: str) -> list[dict[str, object]]:
        answer = meterhouse(data, "sql", query, "--format", "json")
        assert answer.returncode == 0, answer.stderr
        rows: list[dict[str, object]] = json.loads(answer.stdout)
        return rows

    kinds = sql("SELECT DISTINCT kind FROM jobs FINAL ORDER BY kind")
    assert [k["kind"] for k in kinds] == ["asset", "notification", "scheduler", "webhook"]
    statuses = {r["status"] for r in sql("SELECT DISTINCT status FROM job_runs_current")}
    assert {"succeeded", "failed", "running"} <= statuses
    errors = sql("SELECT count() AS n FROM job_logs WHERE level = 'error'")
    assert int(str(errors[0]["n"])) > 0
    models = sql("SELECT uniqExact(item) AS n FROM usage_events WHERE kind = 'model'")
    assert int(str(models[0]["n"])) >= 5

    # Issue 15, item 2: run again later, as docker-compose does at every `up` (no --end):
    # nothing is added, no run is left half-played, no credit is counted twice.
    totals = """SELECT
        (SELECT count() FROM usage_events) AS usage,
        (SELECT toString(sum(credits)) FROM usage_events WHERE account_id = 'acme') AS acme,
        (SELECT count() FROM job_run_events) AS run_events,
        (SELECT countIf(status = 'running') FROM job_runs_current) AS running,
        (SELECT count() FROM credit_grants FINAL) AS grants"""
    before = sql(totals)
    again = meterhouse(data, "demo", timeout=180)
    assert again.returncode == 0, again.stderr
    assert "the demo ran before" in again.stderr
    assert sql(totals) == before
    counts = sql("SELECT count() AS n, uniqExact(source, event_id) AS u FROM usage_events")
    assert counts[0]["n"] == counts[0]["u"]
