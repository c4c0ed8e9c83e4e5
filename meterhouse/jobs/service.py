"""The jobs part of `meterhouse run`: metrics, and the platform poller when configured.

Both run on one APScheduler 3.x BackgroundScheduler that starts with the server and stops
before it: the metrics snapshot is refreshed every ``REFRESH_SECONDS`` so scrapes never
wait for the store, and with MH_POLLER_URL set the poller pulls every
MH_POLLER_INTERVAL_SECONDS (one poll at a time; a late one is skipped, not queued).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from meterhouse.logs import get_logger

if TYPE_CHECKING:
    from meterhouse.service.app import ServiceContext

log = get_logger(__name__)


def install_jobs(ctx: ServiceContext) -> None:
    """Service hook (meterhouse/service/plugins.py)."""
    # Imported here: every CLI command imports the hook list, only `run` installs it.
    from apscheduler.schedulers.background import BackgroundScheduler

    from meterhouse.jobs.metrics import REFRESH_SECONDS, JobsCollector
    from meterhouse.jobs.stuck import StuckPolicy

    collector = JobsCollector(ctx.store, StuckPolicy.from_settings(ctx.settings))
    ctx.registry.register(collector)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    scheduler.add_job(
        collector.refresh,
        "interval",
        seconds=REFRESH_SECONDS,
        id="jobs-metrics",
        next_run_time=datetime.now(UTC),
    )
    poller = None
    if ctx.settings.poller_url:
        from collectors.poller import Poller

        poller = Poller.from_settings(ctx.settings, ctx.store, registry=ctx.registry)
        scheduler.add_job(
            poller.poll_once,
            "interval",
            seconds=ctx.settings.poller_interval_seconds,
            id="jobs-poller",
            next_run_time=datetime.now(UTC),
        )
        log.info(
            "polling job platform",
            url=poller.base_url,
            every_seconds=ctx.settings.poller_interval_seconds,
        )

    def stop() -> None:
        if poller is not None:
            poller.stop()  # a poll waiting to retry gives up now
        scheduler.shutdown(wait=True)
        if poller is not None:
            poller.close()

    ctx.on_startup.append(scheduler.start)
    ctx.on_shutdown.append(stop)
