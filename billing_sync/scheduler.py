"""The billing sync on a schedule inside `meterhouse run` (APScheduler 3, one thread pool).

Jobs: an incremental pass every MH_BILLING_SYNC_INTERVAL_SECONDS (the first right at
start), a full pass every MH_BILLING_FULL_SYNC_INTERVAL_SECONDS (due from the last full
success stored in the database, so a restart neither skips nor repeats one). Every job
has max_instances=1 and coalesce=True, and all share BillingSync's lock, so no two passes
ever run at once. Webhooks schedule one grant-and-reconcile job 15 s after the first of a
burst. If Stripe refuses the API key, the jobs stop after ONE error log line
(retrying a refused key every few minutes would only fill the logs); fix the key and
restart.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from apscheduler.schedulers.background import BackgroundScheduler

from billing_sync.client import StripeAuthError, StripeUnavailableError
from billing_sync.metrics import BillingMetrics
from billing_sync.sync import BillingSync, PassReport, SyncStopped, last_successes
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger

log = get_logger(__name__)

AFTER_WEBHOOK_SECONDS: Final = 15
AFTER_WEBHOOKS_JOB: Final = "billing-after-webhooks"


class BillingScheduler:
    def __init__(
        self,
        sync: BillingSync,
        metrics: BillingMetrics,
        *,
        interval_seconds: int,
        full_interval_seconds: int,
        after_webhook_seconds: float = AFTER_WEBHOOK_SECONDS,
    ) -> None:
        self.sync = sync
        self.after_webhook = after_webhook_seconds
        self.metrics = metrics
        self.interval = interval_seconds
        self.full_interval = full_interval_seconds
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600},
        )
        self._webhook_lock = threading.Lock()
        self.stopped_reason = ""

    def start(self) -> None:
        now = datetime.now(UTC)
        states = last_successes(self.sync.store)
        for name, state in states.items():
            if state.last_success_at is not None:
                self.metrics.succeeded(name, state.last_success_at, state.last_duration_ms / 1000)
        last_full = states["full"].last_success_at
        # Never synced: the first incremental pass is a full one, so the next is an interval on.
        since = last_full if last_full is not None else now
        full_due = since + timedelta(seconds=self.full_interval)
        common: dict[str, Any] = {"replace_existing": True}
        self._scheduler.add_job(
            self.run_pass,
            "interval",
            seconds=self.interval,
            args=[False],
            id="billing-incremental",
            next_run_time=now,
            **common,
        )
        self._scheduler.add_job(
            self.run_pass,
            "interval",
            seconds=self.full_interval,
            args=[True],
            id="billing-full",
            next_run_time=max(now + timedelta(seconds=1), full_due),
            **common,
        )
        self._scheduler.start()
        self.metrics.enabled.set(1)
        log.info(
            "billing sync scheduled",
            every_seconds=self.interval,
            full_every_seconds=self.full_interval,
        )

    def shutdown(self) -> None:
        """Ask a running pass to stop at its next page (progress is kept), then wait."""
        self.sync.stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.metrics.enabled.set(0)

    def jobs(self) -> list[str]:
        """Ids of the jobs scheduled now."""
        return sorted(job.id for job in self._scheduler.get_jobs())

    def webhook_applied(self) -> None:
        """Grant and reconcile a little after webhooks changed the mirror (one job for a burst)."""
        with self._webhook_lock:
            if not self._scheduler.running or self._scheduler.get_job(AFTER_WEBHOOKS_JOB):
                return
            self._scheduler.add_job(
                self._after_webhooks,
                "date",
                run_date=datetime.now(UTC) + timedelta(seconds=self.after_webhook),
                id=AFTER_WEBHOOKS_JOB,
            )

    def run_pass(self, full: bool) -> PassReport | None:
        """One pass as the scheduler runs it: failures logged and counted, not raised."""
        name = "full" if full else "incremental"
        began = time.monotonic()
        try:
            report = self.sync.run(full=full)
        except SyncStopped:
            log.info("billing sync pass stopped for shutdown", kind=name)
            return None
        except StripeAuthError as exc:
            self.metrics.failed(name, "auth")
            self._stop_jobs(str(exc))
            return None
        except StripeUnavailableError as exc:
            self.metrics.failed(name, "unavailable")
            log.warning("billing sync pass failed; the next one retries", kind=name, error=str(exc))
            return None
        except MeterhouseError as exc:
            self.metrics.failed(name, "error")
            log.error("billing sync pass failed", kind=name, error=str(exc))
            return None
        if report.kind == "skipped":
            return report
        self.metrics.succeeded(report.kind, self.sync.clock(), time.monotonic() - began)
        if report.issues is not None:
            self.metrics.open_issues(report.issues.open_by_kind)
        log.info(
            "billing sync pass done",
            kind=report.kind,
            seconds=round(report.seconds, 2),
            events=report.events_applied,
            grants=report.grants_created,
            issues=sum(report.issues.open_by_kind.values()) if report.issues else 0,
        )
        return report

    def _after_webhooks(self) -> None:
        report = PassReport("webhooks", self.sync.clock())
        try:
            with self.sync.exclusive() as got:
                if not got:
                    return  # a pass is running: it grants and reconciles at its end
                self.sync.after_mirror(report)
        except MeterhouseError as exc:
            log.error("reconciling after webhooks failed", error=str(exc))
            return
        if report.issues is not None:
            self.metrics.open_issues(report.issues.open_by_kind)

    def _stop_jobs(self, reason: str) -> None:
        self.stopped_reason = reason
        self.metrics.enabled.set(0)
        log.error("billing sync stopped until restart", reason=reason)
        # Remove (not pause) so nothing can resume them by accident; webhooks still work.
        for job_id in ("billing-incremental", "billing-full"):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
