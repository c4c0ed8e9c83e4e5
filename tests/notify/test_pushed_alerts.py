"""Alerts meterhouse evaluates on ClickHouse name the account and the job or invoice."""

from __future__ import annotations

from datetime import timedelta

from meterhouse.access.tenants import now_utc
from meterhouse.jobs.stuck import StuckPolicy
from meterhouse.notify.billing_alerts import unpaid_invoice_alerts
from meterhouse.notify.job_alerts import failed_job_alerts, stuck_job_alerts
from meterhouse.store.base import Store


def run_events(store: Store, account: str, job: str, run: str, status: str, ago_min: int) -> None:
    at = now_utc() - timedelta(minutes=ago_min)
    rank = 2 if status == "running" else 3
    store.insert(
        "job_run_events",
        {
            "account_id": [account, account],
            "job_id": [job, job],
            "run_id": [run, run],
            "kind": ["scheduler", "scheduler"],
            "status": ["running", status],
            "status_rank": [2, rank],
            "event_time": [at - timedelta(minutes=1), at],
            "error_message": ["", "disk full"],
        },
    )


def test_failures_of_the_last_hour_are_one_alert_per_account_and_job(world: Store) -> None:
    run_events(world, "acme", "nightly-etl", "r1", "failed", 5)
    run_events(world, "acme", "nightly-etl", "r2", "timed_out", 10)
    run_events(world, "globex", "report", "r3", "failed", 20)
    run_events(world, "globex", "old", "r4", "failed", 120)  # over an hour ago
    run_events(world, "acme", "fine", "r5", "succeeded", 5)

    alerts = {
        (a.labels["account"], a.labels["job"]): a for a in failed_job_alerts(world, now_utc())
    }
    assert set(alerts) == {("acme", "nightly-etl"), ("globex", "report")}
    acme = alerts[("acme", "nightly-etl")]
    assert acme.labels == {
        "alertname": "MeterhouseJobRunFailed",
        "severity": "warning",
        "account": "acme",
        "job": "nightly-etl",
        "kind": "scheduler",
    }
    assert acme.annotations["summary"] == (
        "Job nightly-etl of account acme failed 2 time(s) in the last hour"
    )
    assert acme.annotations["figure"] == "2 failed run(s)"
    assert acme.annotations["description"] == "Last error: disk full"


def test_a_run_running_past_the_limit_is_a_stuck_alert_naming_account_job_and_run(
    world: Store,
) -> None:
    start = now_utc() - timedelta(hours=3)
    world.insert(
        "job_run_events",
        {
            "account_id": ["acme"],
            "job_id": ["nightly-etl"],
            "run_id": ["r9"],
            "kind": ["asset"],
            "status": ["running"],
            "status_rank": [2],
            "event_time": [start],
        },
    )
    alerts = stuck_job_alerts(world, StuckPolicy(max_seconds=3600), now_utc())
    assert [a.labels for a in alerts] == [
        {
            "alertname": "MeterhouseJobRunStuck",
            "severity": "warning",
            "account": "acme",
            "job": "nightly-etl",
            "kind": "asset",
            "run": "r9",
        }
    ]
    assert "r9" in alerts[0].annotations["summary"]
    assert "account acme" in alerts[0].annotations["summary"]


def test_open_unpaid_invoice_issues_are_alerts_of_their_account(world: Store) -> None:
    rows = [
        ("past_due_invoice", "acme", "in_1", "open"),
        ("uncollectible_invoice", "globex", "in_2", "open"),
        ("past_due_invoice", "acme", "in_3", "resolved"),
        ("plan_mismatch", "acme", "acme", "open"),
        ("past_due_invoice", "", "in_4", "open"),  # no account: the operators' business
    ]
    world.insert(
        "reconciliation_issues",
        {
            "issue_id": [f"{k}:{s}" for k, _, s, _ in rows],
            "account_id": [a for _, a, _, _ in rows],
            "kind": [k for k, _, _, _ in rows],
            "subject": [s for _, _, s, _ in rows],
            "status": [st for _, _, _, st in rows],
            "meterhouse_value": ["ok"] * len(rows),
            "stripe_value": [f"{s} open, 120.00 USD due" for _, _, s, _ in rows],
            "suggested_action": ["ask the customer to pay"] * len(rows),
            "first_seen": [now_utc()] * len(rows),
            "last_seen": [now_utc()] * len(rows),
            "version": [1] * len(rows),
        },
    )
    alerts = unpaid_invoice_alerts(world, now_utc())
    assert [(a.labels["account"], a.labels["invoice"], a.labels["severity"]) for a in alerts] == [
        ("acme", "in_1", "warning"),
        ("globex", "in_2", "critical"),
    ]
    assert alerts[0].annotations["summary"] == "Invoice in_1 of account acme is unpaid"
    assert alerts[0].annotations["figure"] == "in_1 open, 120.00 USD due"
