-- Hourly rollups for the dashboards (docs/dashboards.md, "Fast at scale").
--
-- A panel over a time range reads whole hours from these tables and only the partial
-- hours at the two edges of the range from usage_events, so its cost follows the number
-- of hours, not the number of events. Both are fed by materialized views on insert; the
-- ingest path writes every event once (event_claims) and a replayed batch is dropped per
-- table by block deduplication (the window below), so they stay exact under replays.
-- `meterhouse reprice` deletes and rebuilds an account's rows by local_date, which is in
-- the key for that reason (an hour of a zone with a half-hour offset spans two dates).

-- Statement lines: one row per (hour, item, usage type, unit price, team, project).
-- SimpleAggregateFunction columns: read them with sum/min/max ... GROUP BY.
CREATE TABLE IF NOT EXISTS usage_lines_hourly
(
    account_id          String,
    hour                DateTime('UTC'),
    local_date          Date,
    kind                LowCardinality(String),
    item                LowCardinality(String),
    usage_type          LowCardinality(String),
    unit                LowCardinality(String),
    unit_price_credits  Decimal(38, 12),
    unit_price_usd      Decimal(38, 12),
    team_id             String,
    project_id          String,
    quantity            SimpleAggregateFunction(sum, Decimal(38, 12)),
    credits             SimpleAggregateFunction(sum, Decimal(38, 12)),
    usd                 SimpleAggregateFunction(sum, Decimal(38, 12)),
    events              SimpleAggregateFunction(sum, UInt64),
    first_event_at      SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_event_at       SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (account_id, hour, local_date, kind, item, usage_type, unit, unit_price_credits,
          unit_price_usd, team_id, project_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- An event's lines have distinct usage types (the rater keys them by usage type), so the
-- count of lines in a group is the number of events in it.
CREATE MATERIALIZED VIEW IF NOT EXISTS usage_lines_hourly_mv TO usage_lines_hourly AS
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date,
    kind,
    item,
    lines.usage_type AS usage_type,
    lines.unit AS unit,
    lines.unit_price_credits AS unit_price_credits,
    lines.unit_price_usd AS unit_price_usd,
    team_id,
    project_id,
    sum(lines.quantity) AS quantity,
    sum(lines.credits) AS credits,
    sum(lines.usd) AS usd,
    count() AS events,
    min(event_time) AS first_event_at,
    max(event_time) AS last_event_at
FROM usage_events
ARRAY JOIN lines
GROUP BY account_id, hour, local_date, kind, item, usage_type, unit, unit_price_credits,
         unit_price_usd, team_id, project_id;

-- Events per hour (an event without lines counts too): totals and transactions.
CREATE TABLE IF NOT EXISTS usage_events_hourly
(
    account_id      String,
    hour            DateTime('UTC'),
    local_date      Date,
    kind            LowCardinality(String),
    item            LowCardinality(String),
    team_id         String,
    project_id      String,
    credits         SimpleAggregateFunction(sum, Decimal(38, 12)),
    usd             SimpleAggregateFunction(sum, Decimal(38, 12)),
    events          SimpleAggregateFunction(sum, UInt64),
    unpriced_events SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (account_id, hour, local_date, kind, item, team_id, project_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_events_hourly_mv TO usage_events_hourly AS
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date,
    kind,
    item,
    team_id,
    project_id,
    sum(credits) AS credits,
    sum(usd) AS usd,
    count() AS events,
    countIf(priced = 0) AS unpriced_events
FROM usage_events
GROUP BY account_id, hour, local_date, kind, item, team_id, project_id;

-- Fill both from the events stored before this migration.
INSERT INTO usage_lines_hourly
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date, kind, item,
    lines.usage_type AS usage_type, lines.unit AS unit,
    lines.unit_price_credits AS unit_price_credits, lines.unit_price_usd AS unit_price_usd,
    team_id, project_id,
    sum(lines.quantity), sum(lines.credits), sum(lines.usd), count(),
    min(event_time), max(event_time)
FROM usage_events
ARRAY JOIN lines
GROUP BY account_id, hour, local_date, kind, item, usage_type, unit, unit_price_credits,
         unit_price_usd, team_id, project_id;

INSERT INTO usage_events_hourly
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date, kind, item, team_id, project_id,
    sum(credits), sum(usd), count(), countIf(priced = 0)
FROM usage_events
GROUP BY account_id, hour, local_date, kind, item, team_id, project_id;
