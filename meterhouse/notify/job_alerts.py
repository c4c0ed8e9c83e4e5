"""Per-job alerts that name the account and the job, evaluated on ClickHouse.

Which job of which account failed, or is stuck, does not belong in Prometheus (job ids
would make its series unbounded), so `meterhouse run` evaluates these two alerts on the
store every MH_ALERTS_PUSH_INTERVAL_SECONDS and posts them to Alertmanager's v2 API (the
way Prometheus itself does). From there on they are ordinary alerts: Alertmanager
groups, silences, inhibits and routes them to the meterhouse receiver like the rest.

* ``MeterhouseJobRunFailed`` (warning): the job had runs that failed or timed out in the
  last hour; labels account, job, kind.
* ``MeterhouseJobRunStuck`` (warning): a run of the job is running far longer than the job
  usually takes (meterhouse/jobs/stuck.py); labels account, job, kind, run.

Each push gives the alerts an end three intervals ahead, so an alert that stops being
pushed resolves by itself even if meterhouse stops; one that clears is resolved at once
by a push with its end set to now. At most :data:`MAX_ALERTS` of each are pushed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import requests

from meterhouse.errors import MeterhouseError
from meterhouse.jobs.stuck import StuckPolicy, find_stuck_runs
from meterhouse.logs import get_logger
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from meterhouse.tenants import now_utc

log = get_logger(__name__)

MAX_ALERTS: Final = 200
RUNBOOK: Final = "docs/alerts.md#"
_FAILED = """
SELECT account_id, job_id, any(kind) AS kind, count() AS failed,
       argMax(error_message, finished_at) AS last_error
FROM job_runs_current
WHERE status IN ('failed', 'timed_out') AND finished_at >= {since:DateTime64(3)}
GROUP BY account_id, job_id
ORDER BY failed DESC, account_id, job_id
LIMIT {n:UInt32}
"""


@dataclass(frozen=True)
class PushedAlert:
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))


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


def _wire(alert: PushedAlert, ends: datetime, generator: str) -> dict[str, Any]:
    return {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "endsAt": ends.isoformat().replace("+00:00", "Z"),
        "generatorURL": generator,
    }


class JobAlertPusher:
    """Evaluates the per-job alerts and posts them to Alertmanager; one push at a time."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.url = settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        self.interval = settings.alerts_push_interval_seconds
        self.policy = StuckPolicy.from_settings(settings)
        self.generator = settings.grafana_url.rstrip("/") + "/d/meterhouse-jobs"
        self._active: dict[tuple[tuple[str, str], ...], PushedAlert] = {}
        self._lock = threading.Lock()

    def evaluate(self, now: datetime) -> list[PushedAlert]:
        return failed_job_alerts(self.store, now) + stuck_job_alerts(self.store, self.policy, now)

    def push_once(self) -> int:
        """Push the firing alerts (and resolve the cleared ones); the number firing."""
        with self._lock:
            now = now_utc()
            try:
                firing = {a.key: a for a in self.evaluate(now)}
            except MeterhouseError as exc:
                log.warning("job alerts not evaluated", error=str(exc))
                return -1
            ends = now + timedelta(seconds=3 * self.interval)
            body = [_wire(a, ends, self.generator) for a in firing.values()]
            body += [
                _wire(a, now, self.generator)
                for key, a in self._active.items()
                if key not in firing
            ]
            if body:
                try:
                    answer = requests.post(self.url, json=body, timeout=10)
                    answer.raise_for_status()
                except requests.RequestException as exc:
                    log.warning("job alerts not pushed", url=self.url, error=str(exc))
                    return -1
            self._active = firing
            return len(firing)
