"""The per-job alerts meterhouse evaluates on ClickHouse name the account and the job."""

from __future__ import annotations

from datetime import timedelta

from meterhouse.notify.job_alerts import failed_job_alerts
from meterhouse.store.base import Store
from meterhouse.tenants import now_utc


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
