"""Background work on a timer inside `meterhouse run`: the one APScheduler 3.x set-up.

Each part (jobs metrics, the platform poller) gets its own scheduler that starts with the
server and stops before it. A job runs one at a time; a run that came due while the last
one was still going is skipped, not queued (coalesce), so a slow store never piles work up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def interval_scheduler(job: Callable[[], object], seconds: float, job_id: str) -> Any:
    """A BackgroundScheduler (not started) that runs ``job`` now and every ``seconds``."""
    # Imported here: every CLI command imports the service hooks, only `run` schedules.
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
    )
    scheduler.add_job(job, "interval", seconds=seconds, id=job_id, next_run_time=datetime.now(UTC))
    return scheduler
