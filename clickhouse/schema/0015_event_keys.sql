-- Keys of the stored events, so the writer's "is (source, event_id) stored already?" check
-- is answered by a primary key instead of a bloom filter over every event table. Each keyed
-- table feeds it through its own materialized view, in the same INSERT as the rows, so
-- every path that writes events (ingest, the poller, the demo, reprice) keeps it complete.
-- ReplacingMergeTree: a key written twice (a reprice re-inserts rows) collapses in merges;
-- readers only ask whether a key exists, so the copies before a merge do no harm.
-- Small granules: lookups probe random keys, and each probe reads one granule.

CREATE TABLE IF NOT EXISTS event_keys
(
    table_name  LowCardinality(String),               -- the keyed table the event was written to
    source      LowCardinality(String),
    event_id    String
)
ENGINE = ReplacingMergeTree
ORDER BY (table_name, source, event_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_keys_usage_events_mv TO event_keys AS
SELECT 'usage_events' AS table_name, source, event_id FROM usage_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_keys_job_run_events_mv TO event_keys AS
SELECT 'job_run_events' AS table_name, source, event_id FROM job_run_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_keys_job_logs_mv TO event_keys AS
SELECT 'job_logs' AS table_name, source, event_id FROM job_logs;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_keys_job_definition_events_mv TO event_keys AS
SELECT 'job_definition_events' AS table_name, source, event_id FROM job_definition_events;

-- Keys of the events stored before this migration (the views only see new inserts).
INSERT INTO event_keys (table_name, source, event_id)
SELECT 'usage_events', source, event_id FROM usage_events
WHERE (source, event_id) NOT IN (SELECT source, event_id FROM event_keys WHERE table_name = 'usage_events');

INSERT INTO event_keys (table_name, source, event_id)
SELECT 'job_run_events', source, event_id FROM job_run_events
WHERE (source, event_id) NOT IN (SELECT source, event_id FROM event_keys WHERE table_name = 'job_run_events');

INSERT INTO event_keys (table_name, source, event_id)
SELECT 'job_logs', source, event_id FROM job_logs
WHERE (source, event_id) NOT IN (SELECT source, event_id FROM event_keys WHERE table_name = 'job_logs');

INSERT INTO event_keys (table_name, source, event_id)
SELECT 'job_definition_events', source, event_id FROM job_definition_events
WHERE (source, event_id) NOT IN (SELECT source, event_id FROM event_keys WHERE table_name = 'job_definition_events');
