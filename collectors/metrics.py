"""The ingest path's own metrics, on the registry the service injects.

Labels are bounded: ``type`` is one of the known event types or "unknown" (or "span" for
OTLP spans that are not model calls), ``reason`` one of collectors.problems.REASONS or
of the request-level reasons below, ``endpoint`` one of "cloudevents" and "otlp".
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

REQUEST_REASONS: Final = (
    "unauthorized",
    "forbidden",
    "rate_limited",
    "too_large",
    "unsupported_media_type",
    "malformed",
    "invalid",
    "unavailable",
)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "meterhouse_ingest_events_accepted_total",
            "Events accepted (stored, or dropped as a duplicate of a stored event), by type.",
            ["type"],
            registry=registry,
        )
        self.rejected = Counter(
            "meterhouse_ingest_events_rejected_total",
            "Events refused, by type and reason; batch_rejected counts valid events of a "
            "batch refused for another event's error (batches are all-or-nothing).",
            ["type", "reason"],
            registry=registry,
        )
        self.spans_ignored = Counter(
            "meterhouse_ingest_spans_ignored_total",
            "OTLP spans accepted but not stored: not a model call (no model, or an agent or "
            "tool span whose usage its model-call spans already carry).",
            registry=registry,
        )
        self.duplicates = Counter(
            "meterhouse_ingest_duplicate_rows_total",
            "Rows not written because their (source, event id) was stored already, by table.",
            ["table"],
            registry=registry,
        )
        self.requests_rejected = Counter(
            "meterhouse_ingest_requests_rejected_total",
            "Ingest requests answered with an error, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "meterhouse_ingest_auth_failures_total",
            "Failed API key checks, by reason (missing, malformed, unknown, bad_secret, "
            "revoked, expired, purpose).",
            ["reason"],
            registry=registry,
        )
        self.batch_events = Histogram(
            "meterhouse_ingest_batch_events",
            "Events (or spans) per ingest request.",
            ["endpoint"],
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000),
            registry=registry,
        )
        self.insert_seconds = Histogram(
            "meterhouse_ingest_insert_seconds",
            "Time of one write to ClickHouse, duplicate check included: a drain batch of the "
            "spool, or one request's rows with MH_INGEST_DURABILITY=direct.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.insert_errors = Counter(
            "meterhouse_ingest_insert_errors_total",
            "Writes to ClickHouse that failed (spool: the batch stays spooled and is retried; "
            "direct: the request was answered 503 and nothing was acknowledged).",
            registry=registry,
        )
        self.rating_errors = Counter(
            "meterhouse_ingest_rating_errors_total",
            "Requests refused with 503 because the rater failed.",
            registry=registry,
        )
        self.unpriced = Counter(
            "meterhouse_unpriced_events_total",
            "Usage events accepted without a price, by kind (model, job, api) and reason "
            "(the unpriced_reason stored on the event, e.g. unknown_model).",
            ["kind", "reason"],
            registry=registry,
        )
        for endpoint in ("cloudevents", "otlp"):
            for reason in REQUEST_REASONS:
                self.requests_rejected.labels(endpoint, reason)
