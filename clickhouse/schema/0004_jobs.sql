-- Jobs (scheduler, asset, webhook, notification), their runs and their execution logs.
-- Run state arrives as events in any order; job_runs keeps per-run aggregate states so the
-- latest state of a run is one GROUP BY away (view job_runs_current), with no FINAL.

CREATE TABLE IF NOT EXISTS jobs
(
    account_id   String,
    team_id      String DEFAULT '',
    project_id   String DEFAULT '',
    job_id       String,
    kind         LowCardinality(String),              -- scheduler | asset | webhook | notification
    name         String,
    schedule     String DEFAULT '',
    status       LowCardinality(String),              -- active | paused
    typical_duration_ms  UInt64 DEFAULT 0,
    updated_at   DateTime64(3, 'UTC'),
    is_deleted   UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, job_id);

CREATE TABLE IF NOT EXISTS job_run_events
(
    account_id   String,
    team_id      String DEFAULT '',
    project_id   String DEFAULT '',
    job_id       String,
    run_id       String,
    kind         LowCardinality(String),
    status       LowCardinality(String),              -- queued | running | succeeded | failed | cancelled | timed_out
    status_rank  UInt8,                               -- queued 1, running 2, final states 3
    event_time   DateTime64(3, 'UTC'),
    source       LowCardinality(String) DEFAULT '',
    event_id     String DEFAULT '',
    error_type   String DEFAULT '',
    error_message String DEFAULT '',
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, job_id, run_id, event_time);

CREATE TABLE IF NOT EXISTS job_runs
(
    account_id     String,
    run_id         String,
    team_id        SimpleAggregateFunction(any, String),
    project_id     SimpleAggregateFunction(any, String),
    job_id         SimpleAggregateFunction(any, String),
    kind           SimpleAggregateFunction(any, LowCardinality(String)),
    state          AggregateFunction(argMax, String, Tuple(UInt8, DateTime64(3, 'UTC'))),
    queued_at      SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    started_at     SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    finished_at    SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    error_type     SimpleAggregateFunction(max, String),
    error_message  SimpleAggregateFunction(max, String),
    last_event_at  SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (account_id, run_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS job_runs_mv TO job_runs AS
SELECT
    account_id,
    run_id,
    any(team_id) AS team_id,
    any(project_id) AS project_id,
    any(job_id) AS job_id,
    any(kind) AS kind,
    argMaxState(status, (status_rank, event_time)) AS state,
    minIf(toNullable(event_time), status = 'queued') AS queued_at,
    minIf(toNullable(event_time), status = 'running') AS started_at,
    maxIf(toNullable(event_time), status_rank = 3) AS finished_at,
    max(error_type) AS error_type,
    max(error_message) AS error_message,
    max(event_time) AS last_event_at
FROM job_run_events
GROUP BY account_id, run_id;

CREATE VIEW IF NOT EXISTS job_runs_current AS
SELECT
    account_id,
    run_id,
    any(team_id) AS team_id,
    any(project_id) AS project_id,
    any(job_id) AS job_id,
    any(kind) AS kind,
    argMaxMerge(state) AS status,
    min(queued_at) AS queued_at,
    min(started_at) AS started_at,
    max(finished_at) AS finished_at,
    if(status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND started_at IS NOT NULL,
       dateDiff('millisecond', started_at, finished_at), NULL) AS duration_ms,
    max(error_type) AS error_type,
    max(error_message) AS error_message,
    max(last_event_at) AS last_event_at
FROM job_runs
GROUP BY account_id, run_id;

CREATE TABLE IF NOT EXISTS job_logs
(
    log_time       DateTime64(3, 'UTC'),
    account_id     String,
    team_id        String DEFAULT '',
    project_id     String DEFAULT '',
    job_id         String,
    run_id         String,
    kind           LowCardinality(String),
    level          LowCardinality(String),            -- debug | info | warning | error
    message        String,
    error_type     String DEFAULT '',
    error_message  String DEFAULT '',
    stack_trace    String DEFAULT '',
    source         LowCardinality(String) DEFAULT '',
    event_id       String DEFAULT '',
    INDEX idx_level level TYPE set(8) GRANULARITY 1,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_run run_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_message lower(message) TYPE ngrambf_v1(3, 8192, 3, 0) GRANULARITY 4,
    INDEX idx_error lower(error_message) TYPE ngrambf_v1(3, 8192, 3, 0) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(log_time)
ORDER BY (account_id, log_time, run_id)
TTL toDateTime(log_time) + INTERVAL 30 DAY DELETE
SETTINGS ttl_only_drop_parts = 1;
