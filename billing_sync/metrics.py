"""Prometheus metrics of the billing sync, on the registry the service injects.

Labels are bounded: ``pass`` is incremental or full, ``reason`` one of a few failure
classes, ``kind`` a reconciliation issue kind, ``outcome`` a webhook outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from billing_sync.reconcile import ISSUE_KINDS

PASSES: Final = ("incremental", "full")
FAILURE_REASONS: Final = ("auth", "unavailable", "error")
WEBHOOK_OUTCOMES: Final = (
    "applied",
    "duplicate",
    "bad_signature",
    "bad_request",
    "not_configured",
    "error",
)


class BillingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "meterhouse_billing_sync_last_success_timestamp_seconds",
            "Unix time the last successful billing sync pass of this kind finished.",
            ["pass"],
            registry=registry,
        )
        self.last_duration = Gauge(
            "meterhouse_billing_sync_last_duration_seconds",
            "How long the last successful billing sync pass of this kind took.",
            ["pass"],
            registry=registry,
        )
        self.failures = Counter(
            "meterhouse_billing_sync_failures",
            "Billing sync passes that failed, by pass and reason (auth = bad API key).",
            ["pass", "reason"],
            registry=registry,
        )
        self.enabled = Gauge(
            "meterhouse_billing_sync_enabled",
            "1 while scheduled billing syncs run; 0 when off (no key) or stopped (key refused).",
            registry=registry,
        )
        self.issues = Gauge(
            "meterhouse_reconciliation_issues",
            "Open reconciliation issues between meterhouse and Stripe, by kind.",
            ["kind"],
            registry=registry,
        )
        self.webhooks = Counter(
            "meterhouse_stripe_webhooks",
            "Stripe webhook deliveries received, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for kind in ISSUE_KINDS:
            self.issues.labels(kind=kind).set(0)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome=outcome)
        for name in PASSES:
            for reason in FAILURE_REASONS:
                self.failures.labels(**{"pass": name, "reason": reason})

    def succeeded(self, name: str, finished: datetime, seconds: float) -> None:
        self.last_success.labels(**{"pass": name}).set(finished.timestamp())
        self.last_duration.labels(**{"pass": name}).set(seconds)

    def failed(self, name: str, reason: str) -> None:
        self.failures.labels(**{"pass": name, "reason": reason}).inc()

    def open_issues(self, counts: dict[str, int]) -> None:
        for kind in ISSUE_KINDS:
            self.issues.labels(kind=kind).set(counts.get(kind, 0))

    def webhook(self, outcome: str) -> None:
        self.webhooks.labels(outcome=outcome).inc()
