"""The ingest benchmark still runs (short mode; no timing thresholds: figures vary with the
machine and its load, see docs/durability.md for measured ones)."""

from __future__ import annotations

import pytest

from tests.support.benchmarks import run_short

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

KEYS = {
    "events",
    "events_per_s",
    "ceiling_rows_per_s",
    "ceiling_bare_rows_per_s",
    "ceiling_rows_stored",
    "peak_anon_mb",
    "ratio",
    "p99_ack_ms",
    "p99_visible_ms",
    "peak_rss_mb",
}


def test_benchmark_short_prints_its_figures() -> None:
    figures = run_short("ingest.py")[-1]
    assert set(figures) >= KEYS
    assert figures["events"] > 0
    assert figures["events_per_s"] > 0
    assert figures["ceiling_rows_per_s"] > 0
    # The ceiling stored every row it timed (the script fails otherwise); 20,000 events
    # make more than 16,000 usage rows.
    assert figures["ceiling_rows_stored"] > 16_000
    assert figures["ratio"] > 0
    assert figures["peak_rss_mb"] > 0
    assert figures["p99_ack_ms"] > 0
