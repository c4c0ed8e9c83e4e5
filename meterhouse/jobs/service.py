"""The jobs part of `meterhouse run`: the jobs metrics.

An APScheduler 3.x BackgroundScheduler that starts with the server and stops before it
refreshes the metrics snapshot every ``REFRESH_SECONDS`` so scrapes never wait for the
store. The platform poller, which takes data in, is a collector with its own hook
(collectors/poller.py, ``install_poller``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from meterhouse.logs import get_logger

if TYPE_CHECKING:
    from meterhouse.service.context import ServiceContext

log = get_logger(__name__)


def install_jobs(ctx: ServiceContext) -> None:
    """Service hook (meterhouse/service/wiring.py)."""
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
    ctx.on_startup.append(scheduler.start)
    ctx.on_shutdown.append(lambda: scheduler.shutdown(wait=True))
