-- Jobs and events: one row per job in user-facing queries, and error search that an index
-- can answer whatever field the text is in.

-- The latest definition of every job that is not deleted. `jobs` is a ReplacingMergeTree
-- on updated_at, so FINAL keeps the newest version whatever order the definitions arrived
-- in, and repeated deliveries collapse into one row.
CREATE VIEW IF NOT EXISTS jobs_current AS
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
    updated_at
FROM jobs FINAL
WHERE is_deleted = 0;

-- One search index over message, error type and error message together. 0004's two
-- indexes (on message and on error_message) cannot skip anything for a search that asks
-- for either field with OR on ClickHouse 25.x, and their 8 KiB filters over 4 granules
-- (32768 rows) are saturated by the n-grams of that many log lines. This one is 32 KiB
-- per granule (8192 rows): a few false positives per thousand n-grams for tens of
-- thousands of distinct n-grams. Queries must use exactly this expression
-- (meterhouse/jobs/events.py SEARCH_EXPRESSION).
ALTER TABLE job_logs ADD INDEX IF NOT EXISTS idx_search
    lower(concat(message, '\n', error_type, '\n', error_message))
    TYPE ngrambf_v1(3, 32768, 3, 0) GRANULARITY 1;

-- Build it for the parts that exist already (in the background; searches stay correct
-- meanwhile, they just skip less).
ALTER TABLE job_logs MATERIALIZE INDEX idx_search;
