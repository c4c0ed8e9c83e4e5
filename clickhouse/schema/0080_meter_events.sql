-- Free-form events (docs/events.md, "Meters"): CloudEvents of any type outside
-- meterhouse's namespace, kept raw. Meters aggregate them at query time, so a meter added
-- later counts the events stored before it, as in OpenMeter.
--
-- Written by the same batch writer as every event table: keyed by (account_id, source,
-- event_id) through event_claims, and deduplicated per batch token (the window below).
CREATE TABLE IF NOT EXISTS meter_events
(
    account_id  String,
    team_id     String DEFAULT '',
    project_id  String DEFAULT '',
    user_id     String DEFAULT '',
    subject     String,                               -- OpenMeter's subject, within the account
    event_type  LowCardinality(String),               -- the CloudEvents type
    source      LowCardinality(String),
    event_id    String,
    event_time  DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    data        String DEFAULT ''                     -- the CloudEvents data: a JSON object as sent
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, account_id, event_time, subject)
SETTINGS non_replicated_deduplication_window = 10000;
