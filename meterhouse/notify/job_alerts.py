"""Per-job alerts that name the account and the job, evaluated on ClickHouse.

Which job of which account failed, or is stuck, does not belong in Prometheus (job ids
would make its series unbounded), so `meterhouse run` evaluates these two alerts on the
store and pushes them to Alertmanager (pusher.py).

* ``MeterhouseJobRunFailed`` (warning): the job had runs that failed or timed out in the
  last hour; labels account, job, kind.
* ``MeterhouseJobRunStuck`` (warning): a run of the job is running far longer than the job
  usually takes (meterhouse/jobs/stuck.py); labels account, job, kind, run.

At most :data:`MAX_ALERTS` of each are pushed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from meterhouse.jobs.stuck import StuckPolicy, find_stuck_runs
from meterhouse.notify.pusher import RUNBOOK, PushedAlert
from meterhouse.store.base import Store

MAX_ALERTS: Final = 200
_FAILED = """
SELECT account_id, job_id, any(kind) AS kind, count() AS failed,
       argMax(error_message, finished_at) AS last_error
FROM job_runs_current
WHERE status IN ('failed', 'timed_out') AND finished_at >= {since:DateTime64(3)}
GROUP BY account_id, job_id
ORDER BY failed DESC, account_id, job_id
LIMIT {n:UInt32}
"""


def failed_job_alerts(store: Store, now: datetime) -> list[PushedAlert]:
    rows = store.query(_FAILED, {"since": now - timedelta(hours=1), "n": MAX_ALERTS}).dicts()
    alerts = []
    for row in rows:
        account, job, count = str(row["account_id"]), str(row["job_id"]), int(row["failed"])
        name = "MeterhouseJobRunFailed"
        alerts.append(
            PushedAlert(
                {
                    "alertname": name,
                    "severity": "warning",
                    "account": account,
                    "job": job,
                    "kind": str(row["kind"]),
                },
                {
                    "summary": f"Job {job} of account {account} failed {count} time(s) in the "
                    "last hour",
                    "description": f"Last error: {str(row['last_error'] or '(none)')[:300]}",
                    "figure": f"{count} failed run(s)",
                    "threshold": "any failed or timed-out run in the last hour",
                    "runbook_url": RUNBOOK + name.lower(),
                },
            )
        )
    return alerts


def stuck_job_alerts(store: Store, policy: StuckPolicy, now: datetime) -> list[PushedAlert]:
    name = "MeterhouseJobRunStuck"
    alerts = []
    for stuck in find_stuck_runs(store, policy, now)[:MAX_ALERTS]:
        run = stuck.run
        minutes = stuck.running_seconds / 60
        alerts.append(
            PushedAlert(
                {
                    "alertname": name,
                    "severity": "warning",
                    "account": run.account_id,
                    "job": run.job_id,
                    "kind": run.kind,
                    "run": run.run_id,
                },
                {
                    "summary": f"Run {run.run_id} of job {run.job_id} (account "
                    f"{run.account_id}) has been running for {minutes:.0f} minutes",
                    "description": stuck.reason,
                    "figure": f"running {minutes:.0f} min",
                    "threshold": f"{stuck.limit_seconds / 60:.0f} min",
                    "runbook_url": RUNBOOK + name.lower(),
                },
            )
        )
    return alerts
