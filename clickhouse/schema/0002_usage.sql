-- One row per priced usage event, and daily rollups kept by a materialized view.
-- The writer removes duplicate (source, event_id) deliveries before insert, so every row
-- here counts; the rollup therefore never double counts either.

CREATE TABLE IF NOT EXISTS usage_events
(
    source          LowCardinality(String),
    event_id        String,
    event_type      LowCardinality(String),
    kind            LowCardinality(String),          -- model | job | api
    event_time      DateTime64(3, 'UTC'),
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    local_date      Date,                            -- event_time's date in the account's time zone
    account_id      String,
    team_id         String DEFAULT '',
    project_id      String DEFAULT '',
    user_id         String DEFAULT '',
    item            LowCardinality(String),          -- model id, job kind or API route
    provider        LowCardinality(String) DEFAULT '',
    job_id          String DEFAULT '',
    run_id          String DEFAULT '',
    lines           Nested
    (
        usage_type          LowCardinality(String),  -- input, output, cache_read, cache_write, reasoning, compute_seconds, call
        quantity            Decimal(38, 12),
        unit                LowCardinality(String),  -- token, second, call
        unit_price_credits  Decimal(38, 12),
        unit_price_usd      Decimal(38, 12),
        credits             Decimal(38, 12),
        usd                 Decimal(38, 12)
    ),
    credits         Decimal(38, 12),
    usd             Decimal(38, 12),
    priced          UInt8,
    unpriced_reason LowCardinality(String) DEFAULT '',
    price_version   LowCardinality(String) DEFAULT '',
    attributes      String DEFAULT '',               -- the event's data as JSON, for ad-hoc SQL
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_time, source, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage_daily
(
    account_id  String,
    team_id     String,
    project_id  String,
    local_date  Date,
    kind        LowCardinality(String),
    item        LowCardinality(String),
    usage_type  LowCardinality(String),
    unit        LowCardinality(String),
    quantity    Decimal(38, 12),
    credits     Decimal(38, 12),
    usd         Decimal(38, 12),
    events      UInt64
)
ENGINE = SummingMergeTree((quantity, credits, usd, events))
PARTITION BY toYYYYMM(local_date)
ORDER BY (account_id, local_date, kind, item, usage_type, unit, team_id, project_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv TO usage_daily AS
SELECT
    account_id,
    team_id,
    project_id,
    local_date,
    kind,
    item,
    lines.usage_type AS usage_type,
    lines.unit AS unit,
    sum(lines.quantity) AS quantity,
    sum(lines.credits) AS credits,
    sum(lines.usd) AS usd,
    count() AS events
FROM usage_events
ARRAY JOIN lines
GROUP BY account_id, team_id, project_id, local_date, kind, item, usage_type, unit;
