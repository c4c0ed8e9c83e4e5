"""3 Jobs: active jobs, runs by status, durations, stuck and failed runs (links to Events)."""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import Board, link
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import ACCOUNT_FILTER, OPEN_RUNS, TENANT_FILTER, runs

UID = links.JOBS

JOB_KIND_FILTER = "$__conditionalAll(kind IN (${job_kind:singlequote}), $job_kind)"
JOB_FILTER = f"{TENANT_FILTER} AND {JOB_KIND_FILTER}"

EVENTS_OF_RUN = links.url(links.EVENTS, values={"run": "${__data.fields.run_id}"})

ACTIVE_SQL = f"""SELECT
    countIf(kind = 'scheduler') AS scheduler,
    countIf(kind = 'asset') AS asset,
    countIf(kind = 'webhook') AS webhook,
    countIf(kind = 'notification') AS notification
FROM jobs_current
WHERE {TENANT_FILTER} AND status = 'active'
"""

FINISHED_IN_RANGE = "status_rank = 3 AND $__timeFilter(event_time)"
FAILED_IN_RANGE = "status IN ('failed', 'timed_out') AND $__timeFilter(event_time)"

RUNS_NOW_SQL = f"""SELECT
    (SELECT countIf(status = 'running') FROM {OPEN_RUNS} WHERE {JOB_FILTER}) AS "Running",
    (SELECT countIf(status = 'queued') FROM {OPEN_RUNS} WHERE {JOB_FILTER}) AS "Queued",
    finished.1 AS "Failed in range",
    finished.1 / greatest(finished.2, 1) AS "Failure rate"
FROM (
    SELECT tuple(countIf(status IN ('failed', 'timed_out')), count()) AS finished
    FROM {runs(FINISHED_IN_RANGE)}
    WHERE {JOB_FILTER} AND $__timeFilter(finished_at)
)
"""

RUNS_BY_STATUS_SQL = f"""SELECT
    $__timeInterval(event_time) AS time,
    status,
    count() AS runs
FROM job_run_events
WHERE {JOB_FILTER} AND status_rank = 3 AND $__timeFilter(event_time)
GROUP BY time, status
ORDER BY time, status
"""

DURATION_SQL = f"""SELECT
    $__timeInterval(assumeNotNull(finished_at)) AS time,
    kind,
    quantile(0.95)(duration_ms) / 1000 AS p95_seconds
FROM {runs(FINISHED_IN_RANGE)}
WHERE {JOB_FILTER} AND duration_ms IS NOT NULL AND $__timeFilter(finished_at)
GROUP BY time, kind
ORDER BY time, kind
"""

# Stuck, as `meterhouse jobs stuck` and the meterhouse_job_runs_stuck gauge judge it
# (meterhouse/jobs/stuck.py, default policy): running for more than STUCK_MULTIPLE times
# what the job usually takes (median of its last successful runs when there are at least
# STUCK_MIN_HISTORY, else its declared typical duration), or for more than STUCK_MAX_SECONDS.
STUCK_MULTIPLE = 3
STUCK_MAX_SECONDS = 86_400
STUCK_HISTORY = 20
STUCK_MIN_HISTORY = 3

# The last successful runs of the jobs that have a run running: the run events are ordered
# by job, so this finds them without reading the other jobs' runs.
SUCCEEDED_OF_RUNNING_JOBS = (
    "status = 'succeeded' AND event_time <= $__toTime AND job_id IN (SELECT job_id FROM running)"
)

STUCK_SQL = f"""WITH
running AS (
    SELECT run_id, job_id, kind, assumeNotNull(started_at) AS started
    FROM {OPEN_RUNS}
    WHERE {JOB_FILTER} AND status = 'running' AND started_at <= $__toTime
),
history AS (
    SELECT job_id, median(duration_ms) AS median_ms, count() AS runs
    FROM (
        SELECT CAST(job_id AS String) AS job_id, duration_ms
        FROM {runs(SUCCEEDED_OF_RUNNING_JOBS)}
        WHERE status = 'succeeded' AND duration_ms IS NOT NULL
          AND finished_at <= $__toTime
        ORDER BY finished_at DESC
        LIMIT {STUCK_HISTORY} BY job_id
    )
    GROUP BY job_id
)
SELECT
    r.run_id AS run_id,
    r.job_id AS job_id,
    j.name AS job,
    r.kind AS kind,
    r.started AS started_at,
    dateDiff('second', r.started, $__toTime) AS running_seconds,
    if(h.runs >= {STUCK_MIN_HISTORY}, h.median_ms, j.typical_duration_ms) / 1000
        AS expected_seconds,
    if(expected_seconds > 0, least({STUCK_MULTIPLE} * expected_seconds, {STUCK_MAX_SECONDS}),
       {STUCK_MAX_SECONDS}) AS limit_seconds
FROM running AS r
LEFT JOIN (SELECT job_id, name, typical_duration_ms FROM jobs_current WHERE {ACCOUNT_FILTER}) AS j
    ON j.job_id = r.job_id
LEFT JOIN history AS h ON h.job_id = r.job_id
WHERE running_seconds > limit_seconds
ORDER BY running_seconds DESC
"""

FAILED_SQL = f"""SELECT
    finished_at,
    run_id,
    CAST(job_id AS String) AS job_id,
    kind,
    status,
    CAST(error_type AS String) AS error_type,
    CAST(error_message AS String) AS error_message,
    duration_ms / 1000 AS duration_seconds
FROM {runs(FAILED_IN_RANGE)}
WHERE {JOB_FILTER} AND status IN ('failed', 'timed_out') AND $__timeFilter(finished_at)
ORDER BY finished_at DESC
LIMIT 200
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 3 Jobs",
        "Scheduler, asset, webhook and notification jobs: what is active and running, how "
        "runs end, how long they take, and which are stuck. Run ids link to their logs.",
        file_name="03-jobs.json",
        refresh="1m",
    )
    variables.tenant(board, time_zone=False)
    variables.pick_list(board, "job_kind", "Job kind", variables.JOB_KINDS)
    board.stat(
        "Active jobs by kind",
        ACTIVE_SQL,
        cols=columns(
            scheduler=Kind.NUMBER, asset=Kind.NUMBER, webhook=Kind.NUMBER, notification=Kind.NUMBER
        ),
        description="Jobs defined and not paused, per kind.",
        w=12,
    )
    board.stat(
        "Runs",
        RUNS_NOW_SQL,
        cols=columns(
            Running=Kind.NUMBER,
            Queued=Kind.NUMBER,
            **{"Failed in range": Kind.NUMBER, "Failure rate": Kind.NUMBER},
        ),
        description="Runs running or queued now, runs that failed or timed out in the time "
        "range, and their share of the runs that finished in it.",
        w=12,
        units={"Failure rate": "percentunit"},
    )
    board.timeseries(
        "Runs by status",
        RUNS_BY_STATUS_SQL,
        cols=columns(time=Kind.TIME, status=Kind.STRING, runs=Kind.NUMBER),
        description="Runs that reached a final state, per interval: succeeded, failed, "
        "cancelled, timed out.",
        unit="short",
        bars=True,
        stacked=True,
        series_label="status",
    )
    board.timeseries(
        "Run duration (p95)",
        DURATION_SQL,
        cols=columns(time=Kind.TIME, kind=Kind.STRING, p95_seconds=Kind.NUMBER),
        description="95th percentile of the duration of the runs that finished, per kind.",
        unit="s",
        series_label="kind",
    )
    board.table(
        "Stuck runs",
        STUCK_SQL,
        cols=columns(
            run_id=Kind.STRING,
            job_id=Kind.STRING,
            job=Kind.STRING,
            kind=Kind.STRING,
            started_at=Kind.TIME,
            running_seconds=Kind.NUMBER,
            expected_seconds=Kind.NUMBER,
            limit_seconds=Kind.NUMBER,
        ),
        description=f"Runs running, at the end of the time range, for more than "
        f"{STUCK_MULTIPLE}x what their job usually takes (median of its last successful "
        f"runs, else its declared duration) or more than {STUCK_MAX_SECONDS // 3600} hours. "
        "Click a run id for its logs.",
        units={"running_seconds": "s", "expected_seconds": "s", "limit_seconds": "s"},
        cell_links={"run_id": link("Logs of this run", EVENTS_OF_RUN)},
        h=7,
    )
    board.table(
        "Failed runs",
        FAILED_SQL,
        cols=columns(
            finished_at=Kind.TIME,
            run_id=Kind.STRING,
            job_id=Kind.STRING,
            kind=Kind.STRING,
            status=Kind.STRING,
            error_type=Kind.STRING,
            error_message=Kind.STRING,
            duration_seconds=Kind.NUMBER,
        ),
        description="Runs that failed or timed out in the time range, newest first. Click "
        "a run id for its logs.",
        units={"duration_seconds": "s"},
        cell_links={"run_id": link("Logs of this run", EVENTS_OF_RUN)},
        h=12,
    )
    return board
