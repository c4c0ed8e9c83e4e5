-- Meters defined through the API or `meterhouse meters add` (docs/events.md, "Meters").
-- Meters of the versioned file (MH_METERS_FILE) are not stored: the file is read at start.
-- Platform-wide configuration, like the price book: no account column, no tenant reads it
-- in SQL (the read API lists meters to every reader).
-- Latest version wins (ReplacingMergeTree on updated_at); query with FINAL.
CREATE TABLE IF NOT EXISTS meters
(
    slug            String,
    meter_id        String,                           -- ULID, as OpenMeter's ids
    name            String DEFAULT '',
    description     String DEFAULT '',
    event_type      String,
    aggregation     LowCardinality(String),           -- SUM COUNT UNIQUE_COUNT AVG MIN MAX LATEST
    value_property  String DEFAULT '',                -- JSONPath into data
    group_by        String DEFAULT '{}',              -- JSON object: name -> JSONPath
    unit            String DEFAULT '',                -- what one unit of the value is (statement lines)
    event_from      Nullable(DateTime64(3, 'UTC')),
    created_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY slug;
