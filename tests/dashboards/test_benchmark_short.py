"""The dashboards benchmark still runs (short mode; no timing thresholds: figures vary with
the machine and its load, docs/dashboards.md has measured ones)."""

from __future__ import annotations

import pytest

from meterhouse.dashboards import build_boards
from tests.dashboards.engine import STATES
from tests.support.benchmarks import run_short

# slow: the benchmark in a subprocess (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

TIMES = {"p50_ms", "p95_ms", "max_ms", "samples"}


def test_benchmark_short_prints_every_panel_and_dashboard() -> None:
    lines = run_short("dashboards.py", timeout=600)
    store = lines[-1]
    assert store["record"] == "store"
    # The store holds every row the growth generated, table by table.
    assert store["stored"] == store["generated"]
    assert store["events"] == store["generated"]["usage_events"] >= 60_000
    assert store["generated"]["job_run_events"] > 0 and store["generated"]["job_logs"] > 0
    panels = {(x["dashboard"], x["panel"]) for x in lines if x["record"] == "panel"}
    dashboards = {x["dashboard"] for x in lines if x["record"] == "dashboard"}
    for board in build_boards():
        assert board.spec.uid in dashboards
        for query in board.spec.sql:
            if not query.variable:
                assert (board.spec.uid, query.panel) in panels, query.panel
    for line in lines[:-1]:
        assert set(line) >= TIMES | {"record", "dashboard", "events"}
        assert line["samples"] == len(STATES)  # one repeat per variable state
        assert 0 <= line["p50_ms"] <= line["p95_ms"] <= line["max_ms"]
