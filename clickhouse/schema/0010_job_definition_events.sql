-- Job definition events, keyed by (source, event_id) like every other event table, so a
-- re-delivered definition is dropped by the writer instead of adding a version to jobs.
-- The materialized view keeps `jobs` (latest definition per job, query with FINAL) fed
-- from the accepted events; the writer no longer inserts into `jobs` directly.

CREATE TABLE IF NOT EXISTS job_definition_events
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
    is_deleted   UInt8 DEFAULT 0,
    event_time   DateTime64(3, 'UTC'),
    source       LowCardinality(String),
    event_id     String,
    ingested_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, job_id, event_time);

CREATE MATERIALIZED VIEW IF NOT EXISTS jobs_from_definitions_mv TO jobs AS
SELECT
    account_id,
    team_id,
    project_id,
    job_id,
    kind,
    name,
    schedule,
    status,
    typical_duration_ms,
    event_time AS updated_at,
    is_deleted
FROM job_definition_events;
