-- Exactly once with many writers (docs/durability.md, "Exactly once").
--
-- An event is identified by (account_id, source, event_id) per keyed table. Before a writer
-- inserts a batch, it records a claim for every key of the batch here, in one INSERT whose
-- insert_deduplication_token names the batch. The claim that reached the table first wins:
-- `_block_number` orders the committed inserts of a table (kept through merges by
-- enable_block_number_column), so every writer that reads the claims of a key after its
-- own claim committed sees the same first one. Only the winner inserts the event's rows.
-- A key claimed by one writer is dropped by every other, whichever replica a re-delivery
-- reached; a replayed batch has the same token, so its claims and its rows are dropped by
-- the engine's block deduplication (the window below) instead of being written twice.
--
-- Ordered by key: the winners query probes the keys of one batch.
CREATE TABLE IF NOT EXISTS event_claims
(
    table_name  LowCardinality(String),               -- the keyed table the event goes to
    account_id  String,
    source      LowCardinality(String),
    event_id    String,
    claim       String,                               -- the claiming batch: its dedup token
    attempt     String DEFAULT '',                    -- which write of that batch claimed
    claimed_at  DateTime64(3, 'UTC') DEFAULT now64(3) -- when the claim was first written
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(claimed_at)
ORDER BY (table_name, account_id, source, event_id)
SETTINGS index_granularity = 1024, enable_block_number_column = 1,
    enable_block_offset_column = 1, non_replicated_deduplication_window = 10000;

-- Claims for the events stored before this migration, as the first claim of each key.
INSERT INTO event_claims (table_name, account_id, source, event_id, claim)
SELECT DISTINCT 'usage_events', account_id, source, event_id, 'stored before 0050'
FROM usage_events;

INSERT INTO event_claims (table_name, account_id, source, event_id, claim)
SELECT DISTINCT 'job_run_events', account_id, source, event_id, 'stored before 0050'
FROM job_run_events;

INSERT INTO event_claims (table_name, account_id, source, event_id, claim)
SELECT DISTINCT 'job_logs', account_id, source, event_id, 'stored before 0050'
FROM job_logs;

INSERT INTO event_claims (table_name, account_id, source, event_id, claim)
SELECT DISTINCT 'job_definition_events', account_id, source, event_id, 'stored before 0050'
FROM job_definition_events;

-- The (source, event_id) keys and their views are replaced by the claims above.
DROP VIEW IF EXISTS event_keys_usage_events_mv;
DROP VIEW IF EXISTS event_keys_job_run_events_mv;
DROP VIEW IF EXISTS event_keys_job_logs_mv;
DROP VIEW IF EXISTS event_keys_job_definition_events_mv;
DROP TABLE IF EXISTS event_keys;

-- Nothing looks events up by id in the event tables any more: their bloom filters cost
-- every insert (about 0.7 µs a row) for nothing.
ALTER TABLE usage_events DROP INDEX IF EXISTS idx_event_id;
ALTER TABLE job_run_events DROP INDEX IF EXISTS idx_event_id;
ALTER TABLE job_logs DROP INDEX IF EXISTS idx_event_id;
ALTER TABLE job_definition_events DROP INDEX IF EXISTS idx_event_id;

-- Block deduplication on every table a drain batch writes, and on every table a
-- materialized view fills from them: a replayed batch (same token) is dropped per table
-- and per view, so a rollup whose part was missing when the process died is completed by
-- the replay while the tables that have the batch already skip it.
ALTER TABLE usage_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE usage_daily MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE job_run_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE job_runs MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE job_logs MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE job_definition_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE jobs MODIFY SETTING non_replicated_deduplication_window = 10000;
