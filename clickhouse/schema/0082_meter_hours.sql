-- Hourly rollups of the meters that roll up (SUM, COUNT, AVG, MIN, MAX): what a meter
-- query reads instead of parsing every event's JSON, when its range is whole hours
-- (meterhouse/meters/rollup.py). One materialized view per meter and definition,
-- `meter_hours_<slug>_<hash>_mv`, created when the meter is defined, after the events
-- stored before it were rolled up (with no insert in flight), fills it from meter_events.
-- Replayed batches are dropped per view by the batch token (the window below), so the
-- rollup stays exact.
CREATE TABLE IF NOT EXISTS meter_hours
(
    rollup      String,                               -- the meter's id and definition hash
    account_id  String,
    team_id     String,
    project_id  String,
    subject     String,
    groups      Array(String),                        -- group values, in the meter's order
    hour        DateTime64(3, 'UTC'),
    value_sum   SimpleAggregateFunction(sum, Decimal(38, 12)),
    value_min   SimpleAggregateFunction(min, Decimal(38, 12)),
    value_max   SimpleAggregateFunction(max, Decimal(38, 12)),
    events      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (rollup, account_id, hour, subject, groups, team_id, project_id)
SETTINGS non_replicated_deduplication_window = 10000;
