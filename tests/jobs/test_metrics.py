"""Jobs metrics: the collector against a store, on a registry of the test's own."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from meterhouse import records as r
from meterhouse.jobs.metrics import JobsCollector, MonotonicDailyCounts
from meterhouse.jobs.stuck import StuckPolicy
from meterhouse.store.base import Store
from tests.jobs.helpers import T0, definition, log_line, run_story, write

NOW = T0 + timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples[(name, tuple(sorted(labels.items())))]


def _fill(store: Store) -> None:
    events: list[r.Event] = [
        definition("acme", "acme-a", "asset", typical_ms=60_000),
        definition("acme", "acme-b", "asset", status="paused"),
        definition("acme", "acme-h", "webhook", typical_ms=2_000),
    ]
    for i, (seconds, final) in enumerate([(3, "succeeded"), (40, "succeeded"), (700, "failed")]):
        events += run_story("acme", "acme-a", f"a{i}", "asset", queued_at=T0 + timedelta(hours=i),
                            seconds=Decimal(seconds), final=final)  # type: ignore[arg-type]  # fmt: skip
    events += run_story("acme", "acme-h", "h0", "webhook", queued_at=T0, seconds=Decimal("0.5"),
                        final="timed_out")  # fmt: skip
    events += run_story("acme", "acme-a", "a-long", "asset", queued_at=NOW - timedelta(hours=1),
                        seconds=Decimal(1), final=None)  # fmt: skip
    events += [
        log_line("acme", "acme-a", "a2", "asset", T0 + timedelta(hours=2), "error", "boom"),
        log_line("acme", "acme-h", "h0", "webhook", T0, "warning", "slow"),
    ]
    write(store, events)


def test_collector_reports_runs_durations_jobs_running_stuck_and_errors(
    migrated_store: Store,
) -> None:
    _fill(migrated_store)
    clock = Clock()
    collector = JobsCollector(
        migrated_store, StuckPolicy(), max_age_seconds=15, clock=clock, now=lambda: NOW
    )
    registry = CollectorRegistry()
    registry.register(collector)
    s = _samples(registry)

    assert _value(s, "meterhouse_job_runs_total", kind="asset", status="succeeded") == 2
    assert _value(s, "meterhouse_job_runs_total", kind="asset", status="failed") == 1
    assert _value(s, "meterhouse_job_runs_total", kind="webhook", status="timed_out") == 1
    assert _value(s, "meterhouse_job_runs_total", kind="scheduler", status="succeeded") == 0
    # Durations 3 s, 40 s, 700 s for assets: cumulative buckets and the sum.
    bucket = "meterhouse_job_run_duration_seconds_bucket"
    assert _value(s, bucket, kind="asset", le="5.0") == 1
    assert _value(s, bucket, kind="asset", le="60.0") == 2
    assert _value(s, bucket, kind="asset", le="600.0") == 2
    assert _value(s, bucket, kind="asset", le="900.0") == 3
    assert _value(s, bucket, kind="asset", le="+Inf") == 3
    assert _value(s, "meterhouse_job_run_duration_seconds_count", kind="asset") == 3
    assert _value(s, "meterhouse_job_run_duration_seconds_sum", kind="asset") == 743
    assert _value(s, bucket, kind="webhook", le="1.0") == 1
    assert _value(s, "meterhouse_jobs_active", kind="asset") == 1  # acme-b is paused
    assert _value(s, "meterhouse_jobs_active", kind="webhook") == 1
    assert _value(s, "meterhouse_job_runs_running", kind="asset") == 1
    # a-long runs 1 h; the median of a0, a1 (2 runs) is too little history, so its
    # declared 60 s applies: stuck after 3 min.
    assert _value(s, "meterhouse_job_runs_stuck", kind="asset") == 1
    assert _value(s, "meterhouse_job_runs_stuck", kind="webhook") == 0
    # The error counter starts at 0 when the service first looks ...
    assert _value(s, "meterhouse_job_log_errors_total", kind="asset") == 0
    assert _value(s, "meterhouse_jobs_metrics_refresh_failures_total") == 0

    # ... and counts errors stored after that, once the snapshot is older than 15 s.
    write(migrated_store, [
        log_line("acme", "acme-h", "h0", "webhook", T0, "error", "hook down"),
        log_line("acme", "acme-h", "h0", "webhook", T0 - timedelta(days=3), "error", "late"),
        log_line("acme", "acme-a", "a2", "asset", T0, "info", "not an error"),
    ])  # fmt: skip
    assert _value(_samples(registry), "meterhouse_job_log_errors_total", kind="webhook") == 0
    clock.now = 16
    s = _samples(registry)
    assert _value(s, "meterhouse_job_log_errors_total", kind="webhook") == 2
    assert _value(s, "meterhouse_job_log_errors_total", kind="asset") == 0


def test_a_failing_store_keeps_the_last_snapshot_and_counts_the_failure(
    migrated_store: Store,
) -> None:
    _fill(migrated_store)
    clock = Clock()
    collector = JobsCollector(migrated_store, StuckPolicy(), clock=clock, now=lambda: NOW)
    registry = CollectorRegistry()
    registry.register(collector)
    assert _value(_samples(registry), "meterhouse_jobs_active", kind="asset") == 1

    migrated_store.command("RENAME TABLE job_logs TO job_logs_away")
    clock.now = 100
    s = _samples(registry)  # a scrape still answers
    assert _value(s, "meterhouse_jobs_metrics_refresh_failures_total") == 1
    assert _value(s, "meterhouse_jobs_active", kind="asset") == 1
    migrated_store.command("RENAME TABLE job_logs_away TO job_logs")


def test_error_counter_never_goes_down_when_the_ttl_drops_days() -> None:
    counts = MonotonicDailyCounts()
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    counts.observe({("asset", d1): 50, ("asset", d2): 5})
    assert counts.totals["asset"] == 0  # the baseline
    counts.observe({("asset", d1): 50, ("asset", d2): 7, ("webhook", d2): 1})
    assert counts.totals == {"scheduler": 0, "asset": 2, "webhook": 1, "notification": 0}
    counts.observe({("asset", d2): 7, ("asset", d3): 4, ("webhook", d2): 1})  # d1 expired
    assert counts.totals["asset"] == 6
    counts.observe({("asset", d3): 4})
    assert counts.totals["asset"] == 6 and counts.totals["webhook"] == 1
