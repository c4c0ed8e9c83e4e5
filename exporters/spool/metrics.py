"""The spool's series, on the registry the service injects (names: docs/alerts.md)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class SpoolMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        pending_bytes: Callable[[], float],
        segments: Callable[[], float],
        oldest_age: Callable[[], float],
        kept: Callable[[], float],
    ) -> None:
        Gauge(
            "meterhouse_spool_bytes",
            "Bytes of accepted events in the local spool and not yet in ClickHouse.",
            registry=registry,
        ).set_function(pending_bytes)
        Gauge(
            "meterhouse_spool_segments",
            "Segment files of the local spool (drained ones are deleted).",
            registry=registry,
        ).set_function(segments)
        Gauge(
            "meterhouse_spool_oldest_age_seconds",
            "Age of the oldest accepted event not yet in ClickHouse (0 when none waits).",
            registry=registry,
        ).set_function(oldest_age)
        self.drain_lag = Gauge(
            "meterhouse_spool_drain_lag_seconds",
            "For the last batch written to ClickHouse: seconds from the acceptance of its "
            "oldest event to the end of the insert.",
            registry=registry,
        )
        self.drained_events = Counter(
            "meterhouse_spool_drained_events_total",
            "Accepted events whose rows the drainer wrote to ClickHouse (or found stored).",
            registry=registry,
        )
        self.drain_errors = Counter(
            "meterhouse_spool_drain_errors_total",
            "Drain batches ClickHouse refused; the same batch is retried with backoff.",
            registry=registry,
        )
        self.refused = Counter(
            "meterhouse_spool_full_total",
            "Requests answered 503 because the spool was full.",
            registry=registry,
        )
        self.quarantined = Counter(
            "meterhouse_spool_quarantined_records_total",
            "Damaged spool records moved to the quarantine (the records around them drain "
            "on); each is logged at error with its segment and offset.",
            registry=registry,
        )
        Gauge(
            "meterhouse_spool_kept_files",
            "Items in the spool's quarantine (damaged records) and dead-letter folders, "
            "waiting for an operator: `meterhouse spool list`.",
            registry=registry,
        ).set_function(kept)
        self.disk_errors = Counter(
            "meterhouse_spool_disk_errors_total",
            "Requests answered 503 because the spool's disk failed (full, or an I/O error); "
            "nothing of them was kept, and the write was undone.",
            registry=registry,
        )
        self.dead_letters = Counter(
            "meterhouse_spool_dead_letters_total",
            "Spool records ClickHouse refused for good (their rows, not an outage), moved to "
            "the dead-letter folder so the drain goes on: `meterhouse spool list`.",
            registry=registry,
        )
