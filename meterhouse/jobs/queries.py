"""Jobs and their runs as people ask for them: one row per job, one row per run.

Every query reads the deduplicated views: ``jobs_current`` (latest definition, FINAL) and
``job_runs_current`` (one row per run, merged from every state event whatever order they
arrived in). Filters are added as fixed SQL fragments with ``{name:Type}`` parameters;
no user text is ever spliced into SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from meterhouse import records as r
from meterhouse.jobs.errors import JobsError
from meterhouse.store.base import Store

MAX_LIMIT: Final = 10_000
FAILED_STATUSES: Final = ("failed", "timed_out")
FAILURE_WINDOW: Final = timedelta(hours=24)
# LEFT JOIN misses are NULL (shown empty), not 0 or 1970-01-01.
JOIN_SETTINGS: Final = {"join_use_nulls": 1}


def check_kind(kind: str) -> str:
    if kind and kind not in r.JOB_KINDS:
        raise JobsError(f"unknown job kind {kind!r}; use one of {', '.join(r.JOB_KINDS)}")
    return kind


def check_status(status: str) -> str:
    if status and status not in r.RUN_STATUSES:
        raise JobsError(f"unknown run status {status!r}; use one of {', '.join(r.RUN_STATUSES)}")
    return status


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise JobsError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


_ACTIVE = """
WITH runs AS
(
    SELECT
        account_id,
        job_id,
        argMax(run_id, run_at) AS last_run_id,
        argMax(status, run_at) AS last_status,
        max(run_at) AS last_run_at,
        countIf(status = 'running') AS running,
        countIf(status IN {failed:Array(String)}
                AND finished_at >= {failures_since:DateTime64(3, 'UTC')}) AS failed_24h,
        maxIf(finished_at, status IN {failed:Array(String)}) AS last_failed_at,
        argMaxIf(error_type, finished_at, status IN {failed:Array(String)}) AS last_error_type,
        argMaxIf(error_message, finished_at, status IN {failed:Array(String)}) AS last_error
    FROM
    (
        SELECT account_id, job_id, run_id, status, finished_at, error_type, error_message,
               coalesce(started_at, queued_at, last_event_at) AS run_at
        FROM job_runs_current
        __RUN_FILTER__
    )
    GROUP BY account_id, job_id
)
SELECT
    j.account_id AS account,
    j.job_id AS job,
    j.kind AS kind,
    j.name AS name,
    j.schedule AS schedule,
    j.status AS job_status,
    r.last_status AS last_status,
    r.last_run_at AS last_run_at,
    r.last_run_id AS last_run,
    coalesce(r.running, 0) AS running,
    coalesce(r.failed_24h, 0) AS failed_24h,
    multiIf(r.last_failed_at IS NULL, NULL,
            r.last_error_type = '', r.last_error,
            concat(r.last_error_type, ': ', r.last_error)) AS last_error
FROM jobs_current AS j
LEFT JOIN runs AS r ON r.account_id = j.account_id AND r.job_id = j.job_id
__JOB_FILTER__
ORDER BY account, kind, name, job
"""


def active_jobs(
    store: Store,
    now: datetime,
    *,
    account_id: str = "",
    kind: str = "",
    include_paused: bool = False,
) -> list[dict[str, Any]]:
    """Job definitions with their last run, runs running now and failures in the last 24 h.

    ``last_error`` is the error of the job's latest failed run, however old, so a job that
    fails now and then shows what went wrong last time; None when it never failed.
    """
    check_kind(kind)
    run_filter: list[str] = []
    job_filter: list[str] = []
    if account_id:
        run_filter.append("account_id = {account:String}")
        job_filter.append("j.account_id = {account:String}")
    if kind:
        run_filter.append("kind = {kind:String}")
        job_filter.append("j.kind = {kind:String}")
    if not include_paused:
        job_filter.append("j.status = 'active'")
    sql = _ACTIVE.replace("__RUN_FILTER__", _where(run_filter)).replace(
        "__JOB_FILTER__", _where(job_filter)
    )
    params = {
        "account": account_id,
        "kind": kind,
        "failed": list(FAILED_STATUSES),
        "failures_since": now - FAILURE_WINDOW,
    }
    return list(store.query(sql, params, settings=JOIN_SETTINGS).dicts())


_RUNS = """
SELECT
    r.account_id AS account,
    r.run_id AS run,
    r.kind AS kind,
    r.status AS status,
    r.queued_at AS queued_at,
    r.started_at AS started_at,
    r.finished_at AS finished_at,
    toDecimal64(r.duration_ms, 3) / 1000 AS duration_s,
    u.credits AS credits,
    r.error_type AS error_type,
    r.error_message AS error_message
FROM
(
    SELECT *
    FROM job_runs_current
    WHERE run_id IN (SELECT run_id FROM job_run_events WHERE __EVENT_FILTER__)
) AS r
LEFT JOIN
(
    SELECT account_id, run_id, sum(credits) AS credits
    FROM usage_events
    WHERE kind = 'job' AND job_id = {job:String}
    GROUP BY account_id, run_id
) AS u ON u.account_id = r.account_id AND u.run_id = r.run_id
WHERE __RUN_FILTER__
ORDER BY coalesce(r.started_at, r.queued_at, r.last_event_at) DESC, r.run_id
LIMIT {limit:UInt32}
"""


def job_runs(
    store: Store,
    job_id: str,
    *,
    account_id: str = "",
    status: str = "",
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The latest runs of one job, newest first, with their price when rating priced them.

    ``credits`` is empty for a run no usage row prices (still running, or not rated).
    The run ids are looked up in ``job_run_events`` first: it is ordered by job, so only
    this job's runs are merged, not every run of the store.
    """
    if not job_id:
        raise JobsError("give the job id, e.g. --job acme-nightly-aggregates")
    check_status(status)
    check_limit(limit)
    event_filter = ["job_id = {job:String}"]
    run_filter = ["r.job_id = {job:String}"]
    if account_id:
        event_filter.append("account_id = {account:String}")
        run_filter.append("r.account_id = {account:String}")
    if status:
        run_filter.append("r.status = {status:String}")
    sql = _RUNS.replace("__EVENT_FILTER__", " AND ".join(event_filter)).replace(
        "__RUN_FILTER__", " AND ".join(run_filter)
    )
    params = {"job": job_id, "account": account_id, "status": status, "limit": limit}
    return list(store.query(sql, params, settings=JOIN_SETTINGS).dicts())
