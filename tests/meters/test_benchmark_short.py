"""The meter query benchmark still runs and stays exact (short mode; no timing thresholds:
figures vary with the machine and its load, docs/events.md has measured ones)."""

from __future__ import annotations

import pytest

from tests.support.benchmarks import run_short

# slow: the benchmark in a subprocess (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def test_benchmark_short_prints_exact_figures() -> None:
    figures = run_short("meters.py")[-1]
    assert figures["events"] == 200_000
    assert figures["exact"] is True
    assert figures["rows"] > 0
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
