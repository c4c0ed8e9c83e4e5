"""Prometheus metrics about jobs, read from the store (not counted in memory).

Runs and logs reach the store by several paths (ingest API, poller, demo, backfills), so
the store is the one place that sees them all. ``JobsCollector`` takes a snapshot with a
handful of GROUP BY queries and serves it to every scrape until it is older than
``max_age_seconds``; the service also refreshes it in the background, so a scrape never
waits for ClickHouse. A failed refresh keeps the previous snapshot and counts the failure.

Labels are bounded: ``kind`` is one of the four job kinds, ``status`` one of the final run
states; rows with other values (inserted by hand) are left out.

The log error counter must never go down, yet job_logs loses old days to its TTL. It is
therefore the sum of increases of per-(kind, day) counts between snapshots, starting at 0
when the collector first looks: "errors stored since this service started". Days the TTL
dropped simply stop being compared.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from meterhouse import records as r
from meterhouse.errors import StoreError
from meterhouse.jobs.stuck import StuckPolicy, find_stuck_runs
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)

# Seconds; from webhooks (a few seconds) to long asset materialisations (hours).
DURATION_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
REFRESH_SECONDS: Final = 15.0

_BUCKET_COLUMNS = ", ".join(f"countIf(duration_ms <= {b * 1000})" for b in DURATION_BUCKETS)
_RUNS = f"""
SELECT
    kind,
    status,
    count() AS runs,
    countIf(duration_ms IS NOT NULL) AS timed,
    coalesce(sum(duration_ms), 0) AS total_ms,
    [{_BUCKET_COLUMNS}] AS buckets
FROM job_runs_current
WHERE kind IN {{kinds:Array(String)}}
GROUP BY kind, status
"""
_ACTIVE = """
SELECT kind, count() AS jobs FROM jobs_current
WHERE status = 'active' AND kind IN {kinds:Array(String)}
GROUP BY kind
"""
_ERRORS = """
SELECT kind, toDate(log_time) AS day, count() AS errors FROM job_logs
WHERE level = 'error' AND kind IN {kinds:Array(String)}
GROUP BY kind, day
"""


@dataclass
class Durations:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    total_ms: int = 0


@dataclass
class Snapshot:
    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, Durations] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    active_jobs: dict[str, int] = field(default_factory=dict)
    stuck: dict[str, int] = field(default_factory=dict)
    errors_by_day: dict[tuple[str, date], int] = field(default_factory=dict)


class MonotonicDailyCounts:
    """A counter per kind fed with per-(kind, day) totals that may lose whole days."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, date], int] | None = None
        self.totals: dict[str, int] = dict.fromkeys(r.JOB_KINDS, 0)

    def observe(self, counts: Mapping[tuple[str, date], int]) -> None:
        if self._last is not None:
            for key, count in counts.items():
                grown = count - self._last.get(key, 0)
                if grown > 0:
                    self.totals[key[0]] = self.totals.get(key[0], 0) + grown
        self._last = dict(counts)


def take_snapshot(store: Store, policy: StuckPolicy, now: datetime) -> Snapshot:
    kinds = {"kinds": list(r.JOB_KINDS)}
    snap = Snapshot()
    for row in store.query(_RUNS, kinds).dicts():
        kind, status, runs = str(row["kind"]), str(row["status"]), int(row["runs"])
        if status == "running":
            snap.running[kind] = runs
        if status not in r.FINAL_RUN_STATUSES:
            continue
        snap.runs[(kind, status)] = runs
        durations = snap.durations.setdefault(kind, Durations())
        durations.count += int(row["timed"])
        durations.total_ms += int(row["total_ms"])
        durations.buckets = [
            a + int(b) for a, b in zip(durations.buckets, row["buckets"], strict=True)
        ]
    for row in store.query(_ACTIVE, kinds).dicts():
        snap.active_jobs[str(row["kind"])] = int(row["jobs"])
    snap.stuck = dict(Tally(s.run.kind for s in find_stuck_runs(store, policy, now)))
    for row in store.query(_ERRORS, kinds).dicts():
        snap.errors_by_day[(str(row["kind"]), row["day"])] = int(row["errors"])
    return snap


class JobsCollector(Collector):
    def __init__(
        self,
        store: Store,
        policy: StuckPolicy,
        *,
        max_age_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.policy = policy
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self.now = now
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._taken_at: float | None = None  # None: never tried
        self._refreshed_unix = 0.0
        self._failures = 0
        self.errors = MonotonicDailyCounts()

    def refresh(self) -> bool:
        """Take a new snapshot; False (and the old one kept) when the store failed."""
        try:
            snapshot = take_snapshot(self.store, self.policy, self.now())
        except StoreError as exc:
            with self._lock:
                self._failures += 1
                self._taken_at = self.clock()  # retry after max_age, not on every scrape
            log.warning("jobs metrics not refreshed", error=str(exc))
            return False
        with self._lock:
            self.errors.observe(snapshot.errors_by_day)
            self._snapshot = snapshot
            self._taken_at = self.clock()
            self._refreshed_unix = time.time()
        return True

    def describe(self) -> Iterable[Metric]:
        # Names only: registering the collector must not query the store.
        return list(self._families(Snapshot(), {}))

    def collect(self) -> Iterable[Metric]:
        if self._taken_at is None or self.clock() - self._taken_at >= self.max_age_seconds:
            self.refresh()
        with self._lock:
            snapshot = self._snapshot or Snapshot()
            errors = dict(self.errors.totals)
            families = list(self._families(snapshot, errors))
            failures = CounterMetricFamily(
                "meterhouse_jobs_metrics_refresh_failures",
                "Times the jobs metrics could not be read from the store.",
                value=self._failures,
            )
            refreshed = GaugeMetricFamily(
                "meterhouse_jobs_metrics_refreshed_timestamp_seconds",
                "When the jobs metrics were last read from the store (Unix time).",
                value=self._refreshed_unix,
            )
        return [*families, failures, refreshed]

    def _families(self, snap: Snapshot, errors: Mapping[str, int]) -> Iterable[Metric]:
        runs = CounterMetricFamily(
            "meterhouse_job_runs",
            "Finished job runs stored, by job kind and final status.",
            labels=["kind", "status"],
        )
        durations = HistogramMetricFamily(
            "meterhouse_job_run_duration_seconds",
            "Run time of finished job runs, by job kind.",
            labels=["kind"],
        )
        active = GaugeMetricFamily(
            "meterhouse_jobs_active", "Active job definitions, by kind.", labels=["kind"]
        )
        running = GaugeMetricFamily(
            "meterhouse_job_runs_running", "Job runs running now, by kind.", labels=["kind"]
        )
        stuck = GaugeMetricFamily(
            "meterhouse_job_runs_stuck",
            "Runs running far longer than their job usually takes (meterhouse jobs stuck).",
            labels=["kind"],
        )
        log_errors = CounterMetricFamily(
            "meterhouse_job_log_errors",
            "Error log lines of job runs stored since this service started, by job kind.",
            labels=["kind"],
        )
        for kind in r.JOB_KINDS:
            for status in r.FINAL_RUN_STATUSES:
                runs.add_metric([kind, status], snap.runs.get((kind, status), 0))
            seen = snap.durations.get(kind, Durations())
            buckets = [
                (str(float(b)), float(n))
                for b, n in zip(DURATION_BUCKETS, seen.buckets, strict=True)
            ]
            durations.add_metric(
                [kind], [*buckets, ("+Inf", float(seen.count))], seen.total_ms / 1000
            )
            active.add_metric([kind], snap.active_jobs.get(kind, 0))
            running.add_metric([kind], snap.running.get(kind, 0))
            stuck.add_metric([kind], snap.stuck.get(kind, 0))
            log_errors.add_metric([kind], errors.get(kind, 0))
        return [runs, durations, active, running, stuck, log_errors]
