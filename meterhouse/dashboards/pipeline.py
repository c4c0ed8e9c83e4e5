"""7 Pipeline health: ingest, store writes, spool, freshness of syncs and gauges (Prometheus).

Metric names are the ones `meterhouse run` exports (docs/dashboards.md lists each with its
producer); the spool and unpriced-event series are agreed names not produced yet, and
their panels stay empty until they are.
"""

from __future__ import annotations

from meterhouse.dashboards import links
from meterhouse.dashboards.grafana import Board

UID = links.PIPELINE

# Down targets, and the service missing from the scrape altogether (absent() is 1 then).
TARGETS_DOWN = '(count(up == 0) or vector(0)) + (sum(absent(up{job="meterhouse"})) or vector(0))'

RATE = "$__rate_interval"


def _quantile(q: str) -> str:
    buckets = f"rate(meterhouse_ingest_insert_seconds_bucket[{RATE}])"
    return f"histogram_quantile({q}, sum by (le) ({buckets}))"


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 7 Pipeline health",
        "Is usage flowing in and landing in ClickHouse? Ingest rates and rejects, insert "
        "latency and errors, the spool, and how fresh the billing sync and the gauges are.",
        file_name="07-pipeline-health.json",
        time_from="now-6h",
        refresh="30s",
    )
    board.row("Ingest")
    board.prom_timeseries(
        "Events accepted",
        [(f"sum by (type) (rate(meterhouse_ingest_events_accepted_total[{RATE}]))", "{{type}}")],
        description="Events accepted per second (stored, or dropped as duplicates of stored "
        "events), by event type.",
        unit="ops",
    )
    board.prom_timeseries(
        "Events and requests rejected",
        [
            (
                f"sum by (reason) (rate(meterhouse_ingest_events_rejected_total[{RATE}]))",
                "event: {{reason}}",
            ),
            (
                "sum by (endpoint, reason) "
                f"(rate(meterhouse_ingest_requests_rejected_total[{RATE}]))",
                "request {{endpoint}}: {{reason}}",
            ),
        ],
        description="Events refused per second by reason, and whole requests answered with "
        "an error by endpoint and reason.",
        unit="ops",
    )
    board.prom_stat(
        "Reject ratio (1h)",
        "sum(increase(meterhouse_ingest_events_rejected_total[1h])) / clamp_min("
        "sum(increase(meterhouse_ingest_events_accepted_total[1h])) + "
        "sum(increase(meterhouse_ingest_events_rejected_total[1h])), 1)",
        description="Share of the events of the last hour that were refused.",
        unit="percentunit",
        thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
    )
    board.prom_stat(
        "Duplicate rows (1h)",
        "sum(increase(meterhouse_ingest_duplicate_rows_total[1h]))",
        description="Rows not written in the last hour because the same event was stored "
        "already (senders retrying: harmless, but a large number means a sender loops).",
        unit="short",
    )
    board.prom_stat(
        "Auth failures (1h)",
        "sum(increase(meterhouse_ingest_auth_failures_total[1h]))",
        description="Ingest requests with a missing, unknown, revoked or expired API key in "
        "the last hour.",
        unit="short",
        thresholds=((None, "green"), (1, "orange")),
    )
    board.prom_stat(
        "Targets down",
        TARGETS_DOWN,
        description="Scrape targets Prometheus cannot reach (up == 0), plus 1 when the "
        "meterhouse service is not scraped at all. Green only at 0: a sum of `up` stays "
        "green while one target of several is down.",
        thresholds=((None, "green"), (1, "red")),
    )
    board.row("Store and spool")
    board.prom_timeseries(
        "Insert latency",
        [
            (_quantile("0.5"), "p50"),
            (_quantile("0.95"), "p95"),
            (_quantile("0.99"), "p99"),
        ],
        description="Time to write one ingest request's rows to ClickHouse.",
        unit="s",
    )
    board.prom_timeseries(
        "Insert and rating errors",
        [
            (f"sum(rate(meterhouse_ingest_insert_errors_total[{RATE}]))", "insert errors"),
            (f"sum(rate(meterhouse_ingest_rating_errors_total[{RATE}]))", "rating errors"),
        ],
        description="Writes to ClickHouse that failed, and requests refused because the "
        "rater failed (both answered 503: senders retry).",
        unit="ops",
    )
    board.prom_timeseries(
        "Spool size",
        [("sum(meterhouse_spool_bytes)", "bytes waiting")],
        description="Bytes of events written to the local spool and not yet in ClickHouse.",
        unit="bytes",
    )
    board.prom_timeseries(
        "Oldest spooled event",
        [("max(meterhouse_spool_oldest_age_seconds)", "age")],
        description="Age of the oldest event still in the spool: grows while ClickHouse "
        "does not accept writes.",
        unit="s",
    )
    board.row("Freshness and data quality")
    board.prom_stat(
        "Billing sync age",
        "time() - max by (pass) (meterhouse_billing_sync_last_success_timestamp_seconds)",
        legend="{{pass}}",
        description="Time since each Stripe sync pass last succeeded.",
        unit="s",
        thresholds=((None, "green"), (3600, "orange"), (21600, "red")),
    )
    board.prom_stat(
        "Ledger gauges age",
        "time() - max(meterhouse_ledger_metrics_refreshed_timestamp_seconds)",
        description="Time since the budget and balance gauges were last computed.",
        unit="s",
        thresholds=((None, "green"), (600, "orange")),
    )
    board.prom_stat(
        "Jobs metrics age",
        "time() - max(meterhouse_jobs_metrics_refreshed_timestamp_seconds)",
        description="Time since the job metrics were last read from the store.",
        unit="s",
        thresholds=((None, "green"), (600, "orange")),
    )
    board.prom_stat(
        "Open reconciliation issues",
        "sum(meterhouse_reconciliation_issues)",
        description="Differences between Stripe and meterhouse waiting for a decision.",
        thresholds=((None, "green"), (1, "orange")),
    )
    board.prom_timeseries(
        "Unpriced events",
        [
            (
                f"sum by (kind, reason) (rate(meterhouse_unpriced_events_total[{RATE}]))",
                "{{kind}}: {{reason}}",
            )
        ],
        description="Usage stored without a price (unknown model, no price book entry), per "
        "second, by kind and reason.",
        unit="ops",
    )
    board.prom_timeseries(
        "Stuck runs and job errors",
        [
            ("sum by (kind) (meterhouse_job_runs_stuck)", "stuck {{kind}}"),
            (
                f"sum by (kind) (rate(meterhouse_job_log_errors_total[{RATE}]))",
                "error logs/s {{kind}}",
            ),
        ],
        description="Runs running far longer than usual, and error log lines per second, "
        "by job kind.",
    )
    board.prom_timeseries(
        "Alerts firing",
        [
            (
                'sum by (alertname, severity) (ALERTS{alertstate="firing"})',
                "{{alertname}} ({{severity}})",
            )
        ],
        description="meterhouse alerts firing now (details in Alertmanager).",
        w=24,
    )
    return board
