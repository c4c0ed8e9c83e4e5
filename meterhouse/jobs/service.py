"""The jobs part of `meterhouse run`: the jobs metrics.

A scheduler that starts with the server and stops before it refreshes the metrics snapshot
every ``REFRESH_SECONDS`` so scrapes never wait for the store. The platform poller, which
takes data in, is a collector with its own hook (collectors/poller.py, ``install_poller``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meterhouse.service.schedule import interval_scheduler

if TYPE_CHECKING:
    from meterhouse.service.context import ServiceContext


def install_jobs(ctx: ServiceContext) -> None:
    """Service hook (meterhouse/service/wiring.py)."""
    from meterhouse.jobs.metrics import REFRESH_SECONDS, JobsCollector
    from meterhouse.jobs.stuck import StuckPolicy

    collector = JobsCollector(ctx.store, StuckPolicy.from_settings(ctx.settings))
    ctx.registry.register(collector)
    scheduler = interval_scheduler(collector.refresh, REFRESH_SECONDS, "jobs-metrics")
    ctx.on_startup.append(scheduler.start)
    ctx.on_shutdown.append(lambda: scheduler.shutdown(wait=True))
